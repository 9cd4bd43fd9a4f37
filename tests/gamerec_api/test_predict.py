"""POST /predict: the three sources, exclusion of seen and liked games, `because`, and agreement with the batch
path (ServingModel.recommend) that writes batch_recommendations."""

from __future__ import annotations

import re

import msgspec
import numpy as np
import pytest
from litestar.testing import TestClient

from gamerec_api.app import create_app
from gamerec_api.schemas import PredictResponse
from gamerec_api.state import ServingState, load_state
from tests.gamerec_api.support import Home, wait_ready


@pytest.fixture(scope="module")
def state(home: Home) -> ServingState:
    registry = home.registry()
    return load_state(registry)


def played(home: Home, user_id: int) -> set[int]:
    logs = home.seeded.logs
    return set(logs.filter(logs["user_id"] == user_id)["game_id"].to_list())


def test_known_user_gets_item_cf_over_their_history(client: TestClient, home: Home) -> None:
    user = 7
    r = client.post("/predict", json={"user_id": user, "k": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    history = played(home, user)
    assert body["source"] == "item_cf"
    assert body["model_version"] == home.seeded.version
    ids = [i["game_id"] for i in body["items"]]
    assert len(ids) == 10 and len(set(ids)) == 10
    assert not history & set(ids)
    cf = [i for i in body["items"] if i["source"] == "item_cf"]
    assert cf, "a user with history should get item-CF items"
    scores = [i["score"] for i in cf]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    for item in cf:
        assert 1 <= len(item["because"]) <= 3 and set(item["because"]) <= history
    assert {g["game_id"] for g in body["because_games"]} == {b for i in cf for b in i["because"]}
    assert all(i["name"] for i in body["items"])


def test_because_is_the_most_similar_history_items(client: TestClient, home: Home) -> None:
    model = home.model()
    sim = model.similarity.toarray()
    for user in (2, 3, 11, 40):
        history = sorted(played(home, user))
        h = model.index_of(history)
        body = client.post("/predict", json={"user_id": user, "k": 20}).json()
        for item in body["items"]:
            if item["source"] != "item_cf":
                assert item["because"] == []
                continue
            j = int(model.index_of([item["game_id"]])[0])
            contrib = sim[h, j]
            assert item["score"] == pytest.approx(float(contrib.sum()), rel=1e-5)
            expected = [history[n] for n in np.lexsort((h, -contrib)) if contrib[n] > 0][:3]
            assert item["because"] == expected


def test_agrees_with_the_batch_model_for_every_user(state: ServingState, home: Home) -> None:
    """The request-path scorer (ServingModel.recommend_history) ranks exactly as ServingModel.recommend (the batch
    path that writes batch_recommendations) does, popularity fill included."""
    model = state.model
    users = state.user_ids(range(state.n_users))
    logs = home.seeded.logs
    assert users == sorted(str(u) for u in set(logs["user_id"].to_list()))
    rows = np.asarray([state.user_row(str(u).encode()) for u in logs["user_id"].to_list()])
    batch = model.recommend(model.history_matrix(rows, logs["game_id"].to_numpy(), len(users)), 30)
    for row, user in enumerate(users):
        rec = model.recommend_history(state.history(user.encode()), 30)
        np.testing.assert_array_equal(model.item_ids[rec.idx], batch.game_ids[row], err_msg=f"user {user}")
        assert rec.because[rec.n_cf :] == [[]] * (len(rec.idx) - rec.n_cf)
        np.testing.assert_allclose(rec.scores, batch.scores[row], rtol=1e-5)
        np.testing.assert_array_equal(rec.from_cf, batch.from_cf[row])


def test_liked_games_add_to_a_known_users_history(client: TestClient, home: Home) -> None:
    user = 5
    liked = [3498, 4200]
    body = client.post("/predict", json={"user_id": user, "k": 30, "liked_game_ids": liked}).json()
    ids = {i["game_id"] for i in body["items"]}
    assert body["source"] == "item_cf"
    assert not ids & (played(home, user) | set(liked))
    because = {b for i in body["items"] for b in i["because"]}
    assert because & set(liked), "liked games should contribute to the scores"


def test_cold_start_with_liked_games_is_a_basket(client: TestClient) -> None:
    liked = [3328, 4200, 3498]
    body = client.post("/predict", json={"user_id": 10**9, "k": 12, "liked_game_ids": liked}).json()
    assert body["source"] == "basket"
    ids = [i["game_id"] for i in body["items"]]
    assert len(ids) == 12 and not set(ids) & set(liked)
    for item in body["items"]:
        if item["source"] == "item_cf":
            assert item["because"] and set(item["because"]) <= set(liked)


def test_nothing_known_gives_the_most_popular_games(client: TestClient, home: Home) -> None:
    model = home.model()
    body = client.post("/predict", json={"user_id": 0, "k": 5}).json()
    assert body["source"] == "popular"
    assert [i["game_id"] for i in body["items"]] == model.item_ids[model.popular_order[:5]].tolist()
    assert all(i["source"] == "popular" and i["because"] == [] for i in body["items"])
    # a fill item's score: its plays relative to the most played game's, so the most popular game scores 1.0
    top = model.popularity.max()
    expected = [round(float(model.popularity[j] / top), 6) for j in model.popular_order[:5]]
    assert [i["score"] for i in body["items"]] == expected and expected[0] == 1.0
    assert all(0 < s <= 1 for s in expected) and expected == sorted(expected, reverse=True)
    assert body["because_games"] == []


def test_k_is_honoured_and_popularity_fills_the_tail(client: TestClient, home: Home) -> None:
    user = 1
    body = client.post("/predict", json={"user_id": user, "k": 100}).json()
    ids = [i["game_id"] for i in body["items"]]
    assert len(ids) == 100 and len(set(ids)) == 100
    assert not played(home, user) & set(ids)
    sources = [i["source"] for i in body["items"]]
    # item-CF first, then the popularity fill, never interleaved
    assert sources == sorted(sources, key=lambda s: s != "item_cf")
    assert "popular" in sources
    model = home.model()
    fill = [i for i in body["items"] if i["source"] == "popular"]
    pop = model.popularity / model.popularity.max()
    assert [i["score"] for i in fill] == [round(float(pop[model.item_index(i["game_id"])]), 6) for i in fill]
    assert all(0 < i["score"] <= 1 for i in fill)


def test_default_k_is_10(client: TestClient) -> None:
    assert len(client.post("/predict", json={"user_id": 3}).json()["items"]) == 10


def test_body_decodes_strictly_to_the_response_struct(client: TestClient) -> None:
    """The fragment-built JSON is exactly a PredictResponse (no missing, extra or mistyped fields)."""
    for body in ({"user_id": 3}, {"user_id": 0}, {"user_id": 0, "liked_game_ids": [3328]}, {"user_id": 1, "k": 100}):
        r = client.post("/predict", json=body)
        decoded = msgspec.json.decode(r.content, type=PredictResponse, strict=True)
        assert decoded.user_id == str(body["user_id"]) and r.headers["content-type"] == "application/json"


def _answer(content: bytes) -> bytes:
    """The body without its per-request `request_id` and `event_token` (unique to each answer)."""
    return re.sub(rb',"request_id":"[^"]+","event_token":"[^"]+"', b"", content, count=1)


def test_cached_answers_equal_computed_ones(home: Home, client: TestClient) -> None:
    """The answer cache (on in `client`) returns byte-identical bodies to an app without it (but for the answer's
    own request_id and event_token)."""
    with TestClient(create_app(home.settings, reload_interval=0, env={}, predict_cache=0)) as uncached:
        wait_ready(uncached)
        for body in [{"user_id": u, "k": k} for u in (1, 2, 3, 50, 0, 10**9, 10**9 + 1) for k in (1, 10, 25)]:
            first = _answer(client.post("/predict", json=body).content)
            again = _answer(client.post("/predict", json=body).content)  # served from the cache
            assert first == again == _answer(uncached.post("/predict", json=body).content), body
