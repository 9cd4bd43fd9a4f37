"""No doubled events (issue 22, item 5): a retry with the same `Idempotency-Key` returns the first outcome when the
first attempt committed, and stores once when it did not, on SQLite and MariaDB; the connection is killed during
the append and during the COMMIT (a TCP proxy in front of MariaDB), and the 503 says what is safe."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from gamerec_api.app import create_app
from gamerec_assets import backends
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store.event_store import EventStore
from tests.gamerec_api.mysql_fault import MySQLFaultProxy
from tests.gamerec_api.support import Home, wait_ready
from tests.gamerec_api.test_events import write_key


def _batch(home: Home, n: int, tag: str) -> list[dict]:
    """Events without event_id: only the Idempotency-Key can keep a retry from storing them twice."""
    game = int(home.seeded.features["game_id"][0])
    return [{"user_id": f"{tag}-{i % 40}", "game_id": game, "type": "play", "value": float(i)} for i in range(n)]


@pytest.fixture(params=["sqlite", "mysql"])
def settings(request: pytest.FixtureRequest, fresh_home: Home) -> StorageSettings:
    env = {"GAMEREC_HOME": str(fresh_home.path)}
    if request.param == "mysql":
        env["GAMEREC_MYSQL_URL"] = str(request.getfixturevalue("mysql_db")["url"])
    return StorageSettings.from_env(env)


def _client(settings: StorageSettings) -> TestClient:
    return TestClient(create_app(settings, reload_interval=0, env={}, events_poll=0))


def _count(settings: StorageSettings) -> int:
    store = EventStore(backends.table_store(settings))
    try:
        return store.read().height
    finally:
        store.engine.dispose()


def test_a_retry_with_the_same_key_replays_the_first_outcome(settings: StorageSettings, fresh_home: Home) -> None:
    key_a, key_b = write_key(settings, "site-a"), write_key(settings, "site-b")
    batch = {"events": _batch(fresh_home, 300, "idem")}
    with _client(settings) as c:
        wait_ready(c)
        a = {"authorization": f"Bearer {key_a}", "idempotency-key": "order-1"}
        first = c.post("/events", json=batch, headers=a)
        assert first.status_code == 202 and first.json()["accepted"] == 300, first.text
        assert "idempotency-replayed" not in first.headers
        again = c.post("/events", json=batch, headers=a)
        assert again.status_code == 202 and again.headers["idempotency-replayed"] == "true"
        assert again.content == first.content, "the first outcome, byte for byte"
        assert _count(settings) == 300

        other_body = {"events": _batch(fresh_home, 1, "other")}
        r = c.post("/events", json=other_body, headers=a)
        assert r.status_code == 422 and "another request body" in r.json()["detail"]
        # scoped by credential: the same key under another write key is another request
        b = {"authorization": f"Bearer {key_b}", "idempotency-key": "order-1"}
        r = c.post("/events", json=batch, headers=b)
        assert r.status_code == 202 and "idempotency-replayed" not in r.headers
        for bad in ("", "a" * 129, "has space"):
            r = c.post("/events", json=batch, headers={**a, "idempotency-key": bad})
            assert r.status_code == 400 and "Idempotency-Key must be" in r.text, bad
    assert _count(settings) == 600


@pytest.fixture
def proxied(fresh_home: Home, mysql_db: dict) -> Iterator[tuple[MySQLFaultProxy, StorageSettings, StorageSettings]]:
    """(proxy, settings through the proxy for the app, settings straight to MariaDB for the checks)."""
    proxy = MySQLFaultProxy(str(mysql_db["host"]), int(mysql_db["port"]))  # type: ignore[arg-type]
    url = str(mysql_db["url"]).replace(f":{mysql_db['port']}/", f":{proxy.port}/")
    home = {"GAMEREC_HOME": str(fresh_home.path), "GAMEREC_DB_READ_TIMEOUT": "10", "GAMEREC_DB_WRITE_TIMEOUT": "10"}
    via = StorageSettings.from_env({**home, "GAMEREC_MYSQL_URL": url})
    direct = StorageSettings.from_env({**home, "GAMEREC_MYSQL_URL": str(mysql_db["url"])})
    yield proxy, via, direct
    proxy.close()


def test_killed_commit_and_killed_append_store_once_with_the_key(
    proxied: tuple[MySQLFaultProxy, StorageSettings, StorageSettings], fresh_home: Home
) -> None:
    proxy, via, direct = proxied
    key = write_key(direct)
    with _client(via) as c:
        wait_ready(c)
        c.headers["authorization"] = f"Bearer {key}"
        assert c.post("/events", json={"events": _batch(fresh_home, 1, "warm")}).status_code == 202
        batch = {"events": _batch(fresh_home, 500, "commit")}
        idem = {"idempotency-key": "batch-commit"}

        # 1. the COMMIT reaches the server, its answer never reaches the API: stored, but the client sees a 503
        proxy.arm("commit")
        r = c.post("/events", json=batch, headers=idem)
        assert proxy.fired.is_set() and r.status_code == 503, r.text
        detail = r.json()["detail"]
        assert "may or may not be stored" in detail and "same Idempotency-Key" in detail, detail
        assert "Without an Idempotency-Key" in detail and "twice" in detail
        assert _count(direct) == 501, "the server committed"
        retry = c.post("/events", json=batch, headers=idem)
        assert retry.status_code == 202 and retry.headers["idempotency-replayed"] == "true", retry.text
        assert retry.json()["accepted"] == 500
        assert _count(direct) == 501, "the retry stored nothing twice"

        # 2. the connection dies during the append: nothing stored, and the retry stores it once
        batch = {"events": _batch(fresh_home, 500, "append")}
        idem = {"idempotency-key": "batch-append"}
        proxy.arm("insert")
        r = c.post("/events", json=batch, headers=idem)
        assert proxy.fired.is_set() and r.status_code == 503, r.text
        assert "no event of this request was stored" in r.json()["detail"]
        assert _count(direct) == 501
        retry = c.post("/events", json=batch, headers=idem)
        assert retry.status_code == 202 and "idempotency-replayed" not in retry.headers, retry.text
        assert retry.json()["accepted"] == 500
        again = c.post("/events", json=batch, headers=idem)
        assert again.headers["idempotency-replayed"] == "true" and json.loads(again.content) == retry.json()
    assert _count(direct) == 1001
