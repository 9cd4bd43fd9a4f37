"""Games, users, health and metrics endpoints, and bad input: always a 4xx that says what is wrong."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import polars as pl
import pytest
from litestar.testing import TestClient

from gamerec_api.app import create_app
from gamerec_assets import backends
from gamerec_assets.settings import StorageSettings
from tests.gamerec_api.conftest import LONG_ID
from tests.gamerec_api.support import Home, wait_ready


def test_similar_games_are_the_models_neighbours(client: TestClient, home: Home) -> None:
    model = home.model()
    game = 3498
    body = client.get(f"/games/{game}/similar", params={"k": 5}).json()
    assert body["game"]["game_id"] == game and body["game"]["name"] == "Grand Theft Auto V"
    assert body["model_version"] == home.seeded.version
    ids, scores = model.similar([game], 5)
    expected = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
    assert [i["game_id"] for i in body["items"]] == [i for i, _ in expected]
    assert [i["score"] for i in body["items"]] == pytest.approx([s for _, s in expected], rel=1e-5)
    assert game not in [i["game_id"] for i in body["items"]]


def test_unknown_game_is_a_404_with_a_message(client: TestClient) -> None:
    for path in ("/games/1/similar", "/games/1"):
        r = client.get(path)
        assert r.status_code == 404
        assert "unknown game id 1" in r.json()["detail"]


def test_search_is_case_insensitive_substring_with_limit(client: TestClient, home: Home) -> None:
    body = client.get("/games", params={"search": "WITCHER", "limit": 50}).json()
    names = [g["name"] for g in body["items"]]
    features = home.seeded.features
    expected = set(features.filter(pl.col("name").str.to_lowercase().str.contains("witcher", literal=True))["name"])
    assert names and set(names) == expected
    assert len(client.get("/games", params={"search": "the", "limit": 3}).json()["items"]) == 3
    assert client.get("/games", params={"search": "no such game zzz"}).json()["items"] == []
    popular = client.get("/games", params={"limit": 5}).json()["items"]
    assert len(popular) == 5


def test_single_game_card(client: TestClient) -> None:
    card = client.get("/games/3328").json()
    assert card["name"] == "The Witcher 3: Wild Hunt"
    assert "RPG" in card["genres"] and card["rating"] > 0 and card["released"] == "2015-05-18"


def test_users_and_history(client: TestClient, home: Home) -> None:
    """Ids are strings, listed in UTF-8 byte order ("10" before "7"), from the served version's own histories."""
    logs = home.seeded.logs.with_columns(pl.col("user_id").cast(pl.Utf8))
    body = client.get("/users", params={"limit": 5, "offset": 2}).json()
    users = sorted(set(logs["user_id"].to_list()))
    assert body["total"] == len(users) and body["model_version"] == home.seeded.version
    assert [u["user_id"] for u in body["items"]] == users[2:7]
    for u in body["items"]:
        assert u["games_played"] == logs.filter(pl.col("user_id") == u["user_id"]).height
    history = client.get("/users/4/history").json()
    assert history["user_id"] == "4" and history["model_version"] == home.seeded.version
    assert {g["game_id"] for g in history["items"]} == set(logs.filter(pl.col("user_id") == "4")["game_id"])
    assert client.get("/users/123456/history").status_code == 404
    assert client.get("/users/abc/history").status_code == 404


def test_users_by_prefix_and_where_they_come_from(client: TestClient, home: Home) -> None:
    """Any player can be found by id prefix (two binary searches), and the listing says where players come from."""
    users = sorted({str(u) for u in home.seeded.logs["user_id"].to_list()})
    body = client.get("/users", params={"prefix": "1", "limit": 1000}).json()
    assert [u["user_id"] for u in body["items"]] == [u for u in users if u.startswith("1")]
    assert body["total"] == len(body["items"]) and body["prefix"] == "1"
    assert client.get("/users", params={"prefix": "19", "limit": 2, "offset": 1}).json()["items"] == [
        {"user_id": u, "games_played": home.seeded.logs.filter(pl.col("user_id") == int(u)).height}
        for u in [u for u in users if u.startswith("19")][1:3]
    ]
    assert client.get("/users", params={"prefix": "zzz"}).json() | {"items": []} == {
        **client.get("/users", params={"prefix": "zzz"}).json(),
        "total": 0,
    }
    # where the players come from: the served version's manifest (`data`), as the demo's simulated default records it
    assert (body["interaction_source"], body["simulated"], body["catalog_source"]) == ("simulated", True, "rawg")


def test_users_from_own_files_say_so(file_home: Home) -> None:
    """A version trained on a catalogue file and an interaction file: each file's name (no directories), and the
    players are not simulated."""
    data = file_home.registry().manifest(file_home.seeded.version)["data"]
    files = file_home.path.parent / "data"
    assert (data["interactions"], data["catalog"]) == (
        f"file:{files / 'interactions.csv'}",
        f"file:{files / 'games.csv'}",
    )
    with TestClient(create_app(file_home.settings, reload_interval=0, env={})) as c:
        wait_ready(c)
        body = c.get("/users", params={"prefix": "player0"}).json()
    assert (body["interaction_source"], body["simulated"], body["catalog_source"]) == (
        "file:interactions.csv",
        False,
        "file:games.csv",
    )
    assert [u["user_id"] for u in body["items"]] == [LONG_ID] and body["total"] == 1


def test_batch_recommendations_come_from_the_table(client: TestClient, home: Home) -> None:
    table = backends.table_store(home.settings).read("batch_recommendations", where={"user_id": 9}, order_by=["rank"])
    body = client.get("/users/9/recommendations").json()
    assert body["source"] == "batch"
    assert body["model_version"] == home.seeded.version
    assert [i["game_id"] for i in body["items"]] == table["game_id"].to_list()
    assert [i["rank"] for i in body["items"]] == list(range(1, table.height + 1))
    assert all(i["name"] for i in body["items"])


def test_batch_recommendations_for_an_unknown_user_is_a_404(client: TestClient) -> None:
    for user in ("999999", "not-a-user", "é"):
        r = client.get(f"/users/{user}/recommendations")
        assert r.status_code == 404
        assert f"unknown user {user}" in r.json()["detail"]


def test_health_and_readiness(client: TestClient, home: Home) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["model_version"] == home.seeded.version


def test_not_ready_without_a_production_model(tmp_path) -> None:
    """An empty home: alive, not ready (503 saying why), and /predict answers 503 instead of failing."""
    settings = StorageSettings.from_env({"GAMEREC_HOME": str(tmp_path)})
    with TestClient(create_app(settings, reload_interval=0, env={})) as c:
        deadline = time.monotonic() + 10
        while (r := c.get("/readyz")).json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert r.status_code == 503
        assert r.json()["status"] == "unavailable" and "no production item_similarity model" in r.json()["detail"]
        assert c.get("/healthz").status_code == 200
        p = c.post("/predict", json={"user_id": 1})
        assert p.status_code == 503 and "not ready" in p.json()["detail"]


def test_metrics_expose_requests_latency_model_and_sources(client: TestClient, home: Home) -> None:
    client.post("/predict", json={"user_id": 3})
    client.post("/predict", json={"user_id": 0})
    model = home.model()
    with_neighbours = int(model.item_ids[np.argmax(np.diff(model.similarity.indptr))])
    client.post("/predict", json={"user_id": 0, "liked_game_ids": [with_neighbours]})
    client.get("/games/4200/similar")
    text = client.get("/metrics").text
    assert f'gamerec_model_info{{version="{home.seeded.version}"}} 1.0' in text
    for source in ("item_cf", "basket", "popular"):
        line = next(x for x in text.splitlines() if x.startswith(f'gamerec_predictions_total{{source="{source}"}}'))
        assert float(line.split()[-1]) >= 1
    assert 'gamerec_http_requests_total{app_name="gamerec_api",method="POST",path="/predict",status_code="200"}' in text
    assert "gamerec_http_request_duration_seconds_bucket" in text
    # grouped by route template, so ids do not explode the label set
    assert 'path="/games/{game_id}/similar"' in text and 'path="/games/4200/similar"' not in text


BAD_PREDICT = [
    ({"k": 3}, "user_id"),  # missing field
    ({"user_id": ""}, "length >= 1"),
    ({"user_id": "x" * 129}, "length <= 128"),
    ({"user_id": 1.5}, "Expected `int | str`, got `float`"),
    ({"user_id": True}, "Expected `int | str`, got `bool`"),
    ({"user_id": 1, "k": 0}, ">= 1"),
    ({"user_id": 1, "k": 101}, "<= 100"),
    ({"user_id": -1}, ">= 0"),
    ({"user_id": 2**70}, "user_id"),
    ({"user_id": 1, "liked_game_ids": "3498"}, "Expected `array`"),
    ({"user_id": 1, "liked_game_ids": [3498, "x"]}, "liked_game_ids"),
    ({"user_id": 1, "liked_game_ids": [1, 2, 3498]}, "unknown game ids in liked_game_ids: [1, 2]"),
    ({"user_id": 1, "liked": [3498]}, "unknown field"),
    ([1, 2], "Expected `object`"),
]


@pytest.mark.parametrize(("body", "message"), BAD_PREDICT)
def test_bad_predict_bodies_are_400_with_the_reason(client: TestClient, body: object, message: str) -> None:
    r = client.post("/predict", json=body)
    assert r.status_code == 400, r.text
    assert message.lower() in r.text.lower()


def test_malformed_json_and_oversized_bodies(client: TestClient) -> None:
    for body, message in ((b'{"user_id": 1,', "truncated"), (b"{user_id: 1}", "malformed"), (b"", "body is empty")):
        r = client.post("/predict", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400 and message in r.text.lower(), (body, r.text)
    big = b'{"user_id": 1, "liked_game_ids": [' + b"3498, " * 12_000 + b"3498]}"
    assert len(big) > 64 * 1024
    r = client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "too large" in r.json()["detail"].lower()


def test_bad_query_and_path_parameters(client: TestClient) -> None:
    cases = [
        ("/games/3498/similar?k=0", ">= 1"),
        ("/games/3498/similar?k=abc", "k"),
        ("/games/abc/similar", None),  # no route matches a non-integer id
        (f"/games/{2**64}/similar", "<= 9223372036854775807"),
        ("/games?limit=1000", "<= 100"),
        (f"/users/{'x' * 129}/recommendations", "<= 128"),
    ]
    for path, message in cases:
        r = client.get(path)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
        if message:
            assert message in r.text, (path, r.text)


def test_module_import_is_cheap_and_cli_has_workers() -> None:
    """Importing the package must not pull in Litestar or numpy (the CLI parses arguments first)."""
    code = "import sys, gamerec_api; print('litestar' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
    help_text = subprocess.run(
        [sys.executable, "-m", "gamerec_api", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--workers" in help_text and "--port" in help_text
