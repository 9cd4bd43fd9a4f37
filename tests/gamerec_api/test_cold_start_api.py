"""A served Hybrid answers for games nobody has played: similar games by attributes, flagged new, and
recommendations that say which of the player's games they are similar to."""

from __future__ import annotations

import numpy as np
import polars as pl
from litestar.testing import TestClient

from gamerec_api.app import create_app
from gamerec_assets.recsys import training
from tests.gamerec_api.support import Home, wait_ready

HYBRID = {"model": "Hybrid", "cf": {"model": "ItemCF", "neighbors": 100}, "serving_neighbors": 300}


def test_an_unplayed_game_has_similar_games_and_recommendations(fresh_home: Home) -> None:
    features, logs = fresh_home.seeded.features, fresh_home.seeded.logs
    played = set(logs["game_id"].to_list())
    unplayed = features.filter(~pl.col("game_id").is_in(list(played)) & (pl.col("genres").list.len() > 0))
    new_game = int(unplayed["game_id"][0])
    genres, tags = set(unplayed["genres"][0]), set(unplayed["tags"][0])
    tags_of = dict(zip(features["game_id"].to_list(), features["tags"].to_list(), strict=True))
    artifact, _ = training.fit_artifact(logs, features, HYBRID)
    registry = fresh_home.registry()
    version = registry.publish(artifact)
    registry.promote(version, reason="test: hybrid")

    with TestClient(create_app(fresh_home.settings, reload_interval=0, env={})) as client:
        wait_ready(client)
        body = client.get(f"/games/{new_game}/similar", params={"k": 8}).json()
        assert body["model_version"] == version and body["new_game"] is True
        items = body["items"]
        assert len(items) == 8 and all(item["score"] > 0 for item in items)
        assert new_game not in {item["game_id"] for item in items}
        shares_genre = [bool(genres & set(item["genres"])) for item in items]
        assert np.mean(shares_genre) >= 0.75  # attributes, not popularity
        assert all(
            g or len(tags & set(tags_of[item["game_id"]])) >= 5 for g, item in zip(shares_genre, items, strict=True)
        )
        assert [item["new"] for item in items] == [item["game_id"] not in played for item in items]

        # a player who likes only the new game gets games similar to it, each saying so
        answer = client.post("/predict", json={"user_id": "nobody-yet", "k": 5, "liked_game_ids": [new_game]})
        assert answer.status_code == 200, answer.text
        rec = answer.json()
        assert rec["source"] == "basket" and len(rec["items"]) == 5
        assert all(item["source"] == "item_cf" and item["because"] == [new_game] for item in rec["items"])
        assert {g["game_id"]: g["name"] for g in rec["because_games"]} == {new_game: unplayed["name"][0]}

        # and the new game itself is recommended to someone who likes its nearest played neighbour
        neighbour = next(item["game_id"] for item in items if item["game_id"] in played)
        again = client.post("/predict", json={"user_id": "nobody-yet", "k": 100, "liked_game_ids": [neighbour]})
        recommended = {item["game_id"]: item for item in again.json()["items"]}
        assert new_game in recommended and recommended[new_game]["because"] == [neighbour]
