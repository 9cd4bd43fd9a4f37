"""The trailing-space cases of issue 22 through the API, on SQLite and MariaDB: `POST /events` stores 'padbob' and
'padbob ' as two users and 'pad-p1 ' beside 'pad-p1' (not a duplicate), and `GET /users/7%20/recommendations` is not
user 7's list."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from litestar.testing import TestClient

from gamerec_api.app import create_app
from gamerec_assets import backends
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store.event_store import EventStore
from tests.gamerec_api.support import Home, wait_ready

# A local demo's open ingestion (issue 22's setting; unknown settings are ignored by the app until it exists)
APP_ENV = {"GAMEREC_EVENTS_OPEN": "true"}


@pytest.fixture(params=["sqlite", "mysql"])
def text_home(request: pytest.FixtureRequest, home: Home, tmp_path: Path) -> Iterator[StorageSettings]:
    """A copy of the seeded home whose table database (its own SQLite file, or a fresh MariaDB database) holds
    batch_recommendations keyed by text user ids, as a refresh with players' events writes it."""
    path = tmp_path / "home"
    shutil.copytree(home.path, path)
    env = {"GAMEREC_HOME": str(path)}
    if request.param == "mysql":
        env["GAMEREC_MYSQL_URL"] = str(request.getfixturevalue("mysql_db")["url"])
    settings = StorageSettings.from_env(env)
    batch = backends.table_store(home.settings).read("batch_recommendations")
    tables = backends.table_store(settings)
    assert tables.dialect == ("mysql" if request.param == "mysql" else "sqlite")
    tables.write(
        "batch_recommendations", batch.with_columns(pl.col("user_id").cast(pl.Utf8)), primary_key=["user_id", "rank"]
    )
    yield settings
    tables.engine.dispose()


@pytest.fixture
def text_client(text_home: StorageSettings) -> Iterator[TestClient]:
    with TestClient(create_app(text_home, reload_interval=0, env=APP_ENV)) as c:
        wait_ready(c, timeout=120)  # a loaded machine may take a while to load the model
        yield c


def test_recommendations_of_7_with_a_trailing_space_are_not_user_7s(text_client: TestClient) -> None:
    seven = text_client.get("/users/7/recommendations")
    assert seven.status_code == 200, seven.text
    assert seven.json()["source"] == "batch" and len(seven.json()["items"]) > 0
    for other in ("7%20", "%207", "7%09"):
        r = text_client.get(f"/users/{other}/recommendations")
        assert r.status_code == 404, (other, r.text)  # no such user, in the table or the model


def test_posted_ids_differing_by_a_trailing_space_stay_apart(
    text_client: TestClient, text_home: StorageSettings, home: Home
) -> None:
    game = int(home.seeded.features["game_id"][0])
    first = {"event_id": "pad-p1", "user_id": "padbob", "game_id": game, "type": "play", "value": 1.0}
    r = text_client.post("/events", json={"events": [first]})
    assert r.status_code == 202, r.text
    second = [
        {"event_id": "pad-p1 ", "user_id": "padbob ", "game_id": game, "type": "play", "value": 2.0},
        first,  # the same id again: a duplicate
    ]
    r = text_client.post("/events", json={"events": second})
    assert r.status_code == 202, r.text
    assert [x["result"] for x in r.json()["results"]] == ["accepted", "duplicate"]
    store = EventStore(backends.table_store(text_home))
    stored = store.read()
    assert stored["event_id"].to_list() == ["pad-p1", "pad-p1 "]
    assert stored["user_id"].to_list() == ["padbob", "padbob "]
    assert stored["value"].to_list() == [1.0, 2.0]
    store.engine.dispose()
