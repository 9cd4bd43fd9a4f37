"""Forgetting a player, on both table backends, checked on every store and answer path afterwards: two API workers
on one database, the forget sent to one of them (`DELETE /admin/users/{id}`) and one by the CLI (`gamerec users
forget ID`); both workers mask each user (their realtime overlay too), and the user's events and rows are gone."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from litestar.testing import TestClient

from gamerec_api.app import create_app
from gamerec_assets import backends
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store.event_store import EventStore
from gamerec_assets.store.forgotten_users import ForgottenUsers
from tests.gamerec_api.support import ADMIN_TOKEN, Home, wait_ready
from tests.gamerec_assets.test_models_cli import gamerec, gamerec_main

APP_ENV = {"GAMEREC_EVENTS_OPEN": "true"}
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
NEW_USER = "never-seen-before"


@pytest.fixture(params=["sqlite", "mysql"])
def forget_home(request: pytest.FixtureRequest, home: Home, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A copy of the seeded home; on MariaDB its tables (user_logs, batch_recommendations keyed by integer ids)
    are copied into a fresh database. Yields the environment that points the CLI at it."""
    path = tmp_path / "home"
    shutil.copytree(home.path, path)
    env = {"GAMEREC_HOME": str(path)}
    if request.param == "mysql":
        env["GAMEREC_MYSQL_URL"] = str(request.getfixturevalue("mysql_db")["url"])
        source, target = backends.table_store(home.settings), backends.table_store(StorageSettings.from_env(env))
        for name, key in (("user_logs", ["user_id", "game_id"]), ("batch_recommendations", ["user_id", "rank"])):
            target.write(name, source.read(name), primary_key=key)
        target.engine.dispose()
    yield env


def _client(settings: StorageSettings) -> TestClient:
    app = create_app(
        settings, reload_interval=0, admin_token=ADMIN_TOKEN, env=APP_ENV, predict_cache=100, events_poll=0.1
    )
    return TestClient(app)


def _wait(check, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _known(client: TestClient, user: str) -> None:
    """The user is known to the worker: history (with a realtime game), batch rows, listed, scored from history."""
    history = client.get(f"/users/{user}/history")
    assert history.status_code == 200 and history.json()["realtime_game_ids"], history.text
    assert client.get(f"/users/{user}/recommendations").json()["source"] == "batch"
    assert user in [u["user_id"] for u in client.get("/users", params={"prefix": user}).json()["items"]]
    assert client.post("/predict", json={"user_id": user, "k": 5}).json()["source"] == "item_cf"


def _forgotten(client: TestClient, user: str) -> None:
    """Every answer path treats the user as one never seen."""
    assert client.get(f"/users/{user}/history").status_code == 404
    assert client.get(f"/users/{user}/recommendations").status_code == 404  # no batch rows, no history
    listing = client.get("/users", params={"prefix": user, "limit": 1000}).json()
    assert user not in [u["user_id"] for u in listing["items"]] and listing["total"] == len(listing["items"])
    everyone = client.get("/users", params={"limit": 1000}).json()
    assert user not in [u["user_id"] for u in everyone["items"]]
    forgotten = client.post("/predict", json={"user_id": user, "k": 5}).json()
    new = client.post("/predict", json={"user_id": NEW_USER, "k": 5}).json()
    assert forgotten["source"] == new["source"] == "popular"
    assert [i["game_id"] for i in forgotten["items"]] == [i["game_id"] for i in new["items"]]


def _stored(settings: StorageSettings, user: str) -> dict[str, int]:
    """The user's rows left in each store."""
    tables = backends.table_store(settings)
    try:
        events = EventStore(tables).read()
        return {
            "interaction_events": events.filter(pl.col("user_id") == user).height,
            "user_logs": tables.read("user_logs").filter(pl.col("user_id").cast(pl.Utf8) == user).height,
            "batch_recommendations": tables.read("batch_recommendations")
            .filter(pl.col("user_id").cast(pl.Utf8) == user)
            .height,
        }
    finally:
        tables.engine.dispose()


def test_forget_erases_every_store_and_masks_every_worker(forget_home: dict[str, str], home: Home) -> None:
    settings = StorageSettings.from_env(forget_home)
    game = int(home.seeded.features["game_id"][-1])
    with _client(settings) as a, _client(settings) as b:
        wait_ready(a, timeout=120)
        wait_ready(b, timeout=120)
        assert a.delete("/admin/users/7").status_code == 401  # the admin token is required
        sent = a.post(
            "/events",
            json={
                "events": [
                    {"event_id": f"e-{u}", "user_id": u, "game_id": game, "type": "play"} for u in ("7", "8", "keep")
                ]
            },
        )
        assert sent.status_code == 202, sent.text
        for client in (a, b):  # the events reached both overlays
            _wait(lambda c=client: c.get("/users/8/history").json().get("realtime_game_ids"), "the overlay")
            _known(client, "7")
            _known(client, "8")
        before = _stored(settings, "7")
        assert all(before.values()), before

        # through the API, on worker a
        r = a.delete("/admin/users/7", headers=AUTH)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["user_id"] == "7" and body["model_version"] == a.get("/readyz").json()["model_version"]
        assert body["deleted"]["interaction_events"] == 1
        assert body["deleted"]["user_logs"] == before["user_logs"]
        assert body["deleted"]["batch_recommendations"] == before["batch_recommendations"]
        _forgotten(a, "7")  # at once on the worker that was asked
        _wait(lambda: b.get("/users/7/history").status_code == 404, "worker b to read the forget")
        _forgotten(b, "7")
        assert _stored(settings, "7") == {"interaction_events": 0, "user_logs": 0, "batch_recommendations": 0}

        # through the CLI: no worker was asked; both read it from forgotten_users within their poll
        out = gamerec(forget_home, "users", "forget", "8")
        assert out.returncode == 0 and "user '8' forgotten" in out.stdout, out.stderr
        for client in (a, b):
            _wait(lambda c=client: c.get("/users/8/history").status_code == 404, "the workers to read the forget")
            _forgotten(client, "8")
        assert _stored(settings, "8") == {"interaction_events": 0, "user_logs": 0, "batch_recommendations": 0}
        again = gamerec_main(forget_home, "users", "forget", "8", "--json")  # safe to repeat: nothing left
        assert again.returncode == 0 and '"deleted": {}' in again.stdout, again.stderr

        # other players are untouched; the forgotten player coming back is a new player
        assert a.get("/users/9/history").status_code == 200
        assert a.get("/users/keep/history").status_code == 200
        assert a.post(
            "/events", json={"events": [{"event_id": "back", "user_id": "7", "game_id": game, "type": "play"}]}
        ).is_success
        _wait(lambda: a.get("/users/7/history").status_code == 200, "the player's new event")
        history = a.get("/users/7/history").json()
        assert history["realtime_game_ids"] == [game] and len(history["items"]) == 1  # only what came after
        # a worker started after the forget masks the user before it serves anything
        with _client(settings) as c:
            wait_ready(c, timeout=120)
            _forgotten(c, "8")
    tables = backends.table_store(settings)
    assert [f.user_id for f in ForgottenUsers(tables).since()] == ["7", "8"]
    tables.engine.dispose()


def test_a_worker_without_the_events_tail_reads_forgets_at_its_reload_poll(fresh_home: Home) -> None:
    """GAMEREC_EVENTS_POLL=0 (no overlay): the forget still reaches the worker, at its alias poll."""
    app = create_app(fresh_home.settings, reload_interval=0.2, admin_token=ADMIN_TOKEN, env=APP_ENV, events_poll=0)
    with TestClient(app) as client:
        wait_ready(client, timeout=120)
        assert client.get("/users/11/history").status_code == 200
        tables = backends.table_store(fresh_home.settings)
        assert ForgottenUsers(tables).forget("11").deleted["user_logs"] > 0
        tables.engine.dispose()
        _wait(lambda: client.get("/users/11/history").status_code == 404, "the reload poll to read the forget")
        _forgotten(client, "11")
