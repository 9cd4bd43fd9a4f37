"""POST /events: per-event results, deduplication, the 4xx for bad bodies, metrics, and durability: a real server
process killed with SIGKILL right after its 202 has every accepted event stored (SQLite and MariaDB)."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

import httpx
import polars as pl
import pytest
from litestar.testing import TestClient

from gamerec_api.answer_tokens import TOKEN_EVENT_TYPES
from gamerec_api.app import create_app
from gamerec_api.schemas import EventType
from gamerec_assets import backends
from gamerec_assets.recsys.feedback import EVENT_TYPES, EVENT_WEIGHTS, NEGATIVE, POSITIVE, event_pairs, iso, now_us
from gamerec_assets.recsys.interaction_file import read_interactions
from gamerec_assets.recsys.online_evaluation import COUNTED_TYPES
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store.event_store import EventStore
from gamerec_assets.store.write_keys import WriteKeys
from tests.gamerec_api.support import Home, free_port, wait_ready

ROOT = Path(__file__).resolve().parents[2]
UNKNOWN_GAME = 987_654_321_012  # no RAWG id in the bundled snapshot


def write_key(settings: StorageSettings, name: str = "test-site") -> str:
    """A write key created as an operator would (`gamerec keys create NAME`), in the home's table store."""
    tables = backends.table_store(settings)
    try:
        return WriteKeys(tables).create(name)
    finally:
        tables.engine.dispose()


@pytest.fixture
def events_client(fresh_home: Home) -> Iterator[TestClient]:
    """Events are written to the home's database: a private copy, so other tests' histories stay as seeded. The
    client sends a write key (POST /events needs a credential)."""
    key = write_key(fresh_home.settings)
    with TestClient(create_app(fresh_home.settings, reload_interval=0, env={})) as c:
        c.headers["authorization"] = f"Bearer {key}"
        wait_ready(c)
        yield c


def _store(settings: StorageSettings) -> EventStore:
    return EventStore(backends.table_store(settings))


def _game(home: Home, i: int = 0) -> int:
    return int(home.seeded.features["game_id"][i])


def _metric(client: TestClient | httpx.Client, name: str, **labels: str) -> float:
    text = client.get("/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.fullmatch(rf"{name}\{{(.*)\}} ([0-9.e+]+)", line)
        if m and ",".join(sorted(p for p in m.group(1).split(",") if not p.startswith("pid="))) == want:
            return float(m.group(2))
    return 0.0


def test_accepted_duplicate_rejected_in_request_order(events_client: TestClient, fresh_home: Home) -> None:
    game = _game(fresh_home)
    batch = [
        {"event_id": "e1", "user_id": "alice", "game_id": game, "type": "play", "value": 2.5},
        {"user_id": 7, "game_id": game, "type": "click", "request_id": "r-1"},
        {"event_id": "e1", "user_id": "alice", "game_id": game, "type": "play"},  # repeated within the request
        {"event_id": "e3", "user_id": "x" * 129, "game_id": game, "type": "like"},
        {"event_id": "e4", "user_id": "bob", "game_id": 0, "type": "like"},
    ]
    r = events_client.post("/events", json={"events": batch})
    assert r.status_code == 202, r.text
    body = r.json()
    assert [x["result"] for x in body["results"]] == ["accepted", "accepted", "duplicate", "rejected", "rejected"]
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (2, 1, 2)
    assert body["results"][0]["event_id"] == "e1"
    server_id = body["results"][1]["event_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", server_id), "an event without an id gets the server's"
    assert "user_id must have 1..128 characters" in body["results"][3]["reason"]
    assert body["results"][3]["event_id"] == "e3"
    assert "game_id must be a positive integer" in body["results"][4]["reason"]
    assert body["model_version"] == fresh_home.seeded.version
    assert body["results"][0]["unknown_game"] is False

    stored = _store(fresh_home.settings).read()
    assert stored.height == 2 and body["last_seq"] == stored["seq"].max()
    alice = stored.row(by_predicate=pl.col("event_id") == "e1", named=True)
    assert (alice["user_id"], alice["game_id"], alice["type"], alice["value"]) == ("alice", game, "play", 2.5)
    click = stored.row(by_predicate=pl.col("event_id") == server_id, named=True)
    assert (click["user_id"], click["request_id"], click["value"]) == ("7", "r-1", None)
    assert abs(click["timestamp_us"] - now_us()) < 60_000_000, "no timestamp: the server's receive time"


def test_the_api_and_the_interaction_file_take_one_vocabulary(
    events_client: TestClient, fresh_home: Home, tmp_path: Path
) -> None:
    """feedback.EVENT_TYPES is what POST /events takes and what an interaction file's `type` column takes: each
    type posted and each type loaded from a file gives the same pairs with the same weights (EVENT_WEIGHTS);
    every other list of types is a part of it."""
    assert get_args(EventType) == EVENT_TYPES and set(EVENT_WEIGHTS) == set(EVENT_TYPES)
    assert TOKEN_EVENT_TYPES | set(COUNTED_TYPES) | POSITIVE | NEGATIVE <= set(EVENT_TYPES)
    rows = [(f"vocab-{t}", _game(fresh_home, i), t, 2.0 if t == "play" else None) for i, t in enumerate(EVENT_TYPES)]
    posted = [{"user_id": u, "game_id": g, "type": t, "value": v} for u, g, t, v in rows]
    body = events_client.post("/events", json={"events": posted}).json()
    assert body["accepted"] == len(EVENT_TYPES), body
    for t in EVENT_TYPES:  # telemetry has a series per type
        assert _metric(events_client, "gamerec_events_total", type=t, result="accepted") >= 1, t
    stored = _store(fresh_home.settings).read().filter(pl.col("user_id").str.starts_with("vocab-"))
    pairs = event_pairs(stored).filter(~pl.col("removed") & (pl.col("weight") > 0))
    from_api = {(r["user_id"], r["game_id"]): r["weight"] for r in pairs.iter_rows(named=True)}
    text = "user_id,game_id,type,value\n" + "".join(f"{u},{g},{t},{'' if v is None else v}\n" for u, g, t, v in rows)
    (tmp_path / "events.csv").write_text(text)
    logs, report = read_interactions(tmp_path / "events.csv")
    from_file = {(r["user_id"], r["game_id"]): r["weight"] for r in logs.iter_rows(named=True)}
    expected = {
        (u, g): EVENT_WEIGHTS[t] * (1 + math.log1p(v) if t == "play" else 1) for u, g, t, v in rows if EVENT_WEIGHTS[t]
    }
    assert from_api == from_file == pytest.approx(expected)
    assert set(report.events) == set(EVENT_TYPES)


def test_replaying_a_batch_stores_nothing_twice(events_client: TestClient, fresh_home: Home) -> None:
    game = _game(fresh_home)
    batch = [
        {"event_id": f"replay-{i}", "user_id": f"u{i % 7}", "game_id": game, "type": EVENT_TYPES[i % len(EVENT_TYPES)]}
        for i in range(300)
    ]
    first = events_client.post("/events", json={"events": batch}).json()
    assert first["accepted"] == 300
    before = _store(fresh_home.settings).read()
    again = events_client.post("/events", json={"events": batch})
    assert again.status_code == 202
    replay = again.json()
    assert (replay["accepted"], replay["duplicate"], replay["rejected"]) == (0, 300, 0)
    assert {x["result"] for x in replay["results"]} == {"duplicate"}
    assert replay["last_seq"] == first["last_seq"]
    assert _store(fresh_home.settings).read().equals(before), "the table is unchanged"


def test_timestamps_are_checked_per_event(events_client: TestClient, fresh_home: Home) -> None:
    game = _game(fresh_home)
    soon = iso(now_us() + 60_000_000)  # a client clock a minute ahead is fine
    batch = [
        {"user_id": "t", "game_id": game, "type": "play", "timestamp": "2026-11-30T10:00:00+01:00"},
        {"user_id": "t", "game_id": game, "type": "play", "timestamp": soon},
        {"user_id": "t", "game_id": game, "type": "play", "timestamp": "2999-01-01T00:00:00Z"},
        {"user_id": "t", "game_id": game, "type": "play", "timestamp": "yesterday"},
        {"user_id": "t", "game_id": game, "type": "play", "timestamp": "2026-11-30T10:00:00"},
    ]
    body = events_client.post("/events", json={"events": batch}).json()
    results = body["results"]
    assert [x["result"] for x in results] == ["accepted", "accepted", "rejected", "rejected", "rejected"]
    assert "in the future" in results[2]["reason"]
    assert "is not RFC 3339" in results[3]["reason"]
    assert "no time zone" in results[4]["reason"]
    stored = _store(fresh_home.settings).read()
    assert stored.filter(stored["event_id"] == results[0]["event_id"])["timestamp_us"].item() == int(
        datetime(2026, 11, 30, 9, tzinfo=UTC).timestamp() * 1_000_000
    )


def test_bad_bodies_are_4xx_with_a_message(events_client: TestClient, fresh_home: Home) -> None:
    game = _game(fresh_home)
    r = events_client.post("/events", json={"events": [{"user_id": "u", "game_id": game, "type": "played"}]})
    assert r.status_code == 400
    message = r.json()["extra"][0]["message"]
    assert "'played'" in message and all(t in message for t in EVENT_TYPES), message
    assert r.json()["extra"][0]["key"] == "events[0].type"

    event = {"user_id": "u", "game_id": game, "type": "play"}
    r = events_client.post("/events", json={"events": [event] * 1001})
    assert r.status_code == 400 and "length <= 1000" in r.json()["extra"][0]["message"]
    for body, why in [
        ({"events": []}, "length >= 1"),
        ({"events": [{**event, "game_id": str(game)}]}, "Expected `int`, got `str`"),
        ({"events": [{**event, "colour": "red"}]}, "unknown field `colour`"),
        ({"event": [event]}, "unknown field `event`"),
    ]:
        r = events_client.post("/events", json=body)
        assert r.status_code == 400 and why in r.text, (body, r.text)
    r = events_client.post("/events", content=b'{"events": [', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    r = events_client.post("/events", content=b"{}", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert _store(fresh_home.settings).read().height == 0, "a refused request stores nothing"

    # 1,000 events with 128-character ids (~520 kB) fit the route's own body limit; /predict keeps 64 kB
    long_id = {**event, "user_id": "u" * 128, "request_id": "r" * 128, "timestamp": "2026-11-30T10:00:00.123456Z"}
    full = [{**long_id, "event_id": f"{i:0128d}"} for i in range(1000)]
    r = events_client.post("/events", json={"events": full})
    assert r.status_code == 202 and r.json()["accepted"] == 1000
    r = events_client.post("/predict", json={"user_id": "u", "liked_game_ids": [game] * 20_000})
    assert r.status_code == 413
    r = events_client.post("/events", json={"events": [{**long_id, "user_id": "u" * 2000}] * 1000})
    assert r.status_code == 413


def test_unknown_games_are_stored_flagged_and_counted(events_client: TestClient, fresh_home: Home) -> None:
    before = _metric(events_client, "gamerec_events_unknown_game_total", type="purchase")
    accepted = _metric(events_client, "gamerec_events_total", type="purchase", result="accepted")
    duplicate = _metric(events_client, "gamerec_events_total", type="purchase", result="duplicate")
    rejected = _metric(events_client, "gamerec_events_total", type="purchase", result="rejected")
    eid = uuid.uuid4().hex
    batch = [
        {"event_id": eid, "user_id": "new-site-user", "game_id": UNKNOWN_GAME, "type": "purchase"},
        {"event_id": eid, "user_id": "new-site-user", "game_id": UNKNOWN_GAME, "type": "purchase"},
        {"user_id": "", "game_id": UNKNOWN_GAME, "type": "purchase"},
        {"user_id": "known-game", "game_id": _game(fresh_home), "type": "purchase"},
    ]
    body = events_client.post("/events", json={"events": batch}).json()
    assert [(x["result"], x["unknown_game"]) for x in body["results"]] == [
        ("accepted", True),
        ("duplicate", True),
        ("rejected", None),
        ("accepted", False),
    ]
    assert body["unknown_game"] == 1
    assert _store(fresh_home.settings).read()["game_id"].to_list().count(UNKNOWN_GAME) == 1
    assert _metric(events_client, "gamerec_events_unknown_game_total", type="purchase") == before + 1
    assert _metric(events_client, "gamerec_events_total", type="purchase", result="accepted") == accepted + 2
    assert _metric(events_client, "gamerec_events_total", type="purchase", result="duplicate") == duplicate + 1
    assert _metric(events_client, "gamerec_events_total", type="purchase", result="rejected") == rejected + 1
    # a retry of the accepted unknown-game event is a duplicate: the unknown-game counter does not move
    events_client.post("/events", json={"events": batch[:1]})
    assert _metric(events_client, "gamerec_events_unknown_game_total", type="purchase") == before + 1


def test_events_are_stored_before_any_model_is_loaded(tmp_path: Path) -> None:
    """No production model yet: whether a game is known cannot be told (null), the events are stored anyway."""
    settings = StorageSettings.from_env({"GAMEREC_HOME": str(tmp_path)})
    key = write_key(settings)
    with TestClient(create_app(settings, reload_interval=0, env={})) as c:
        assert c.get("/readyz").status_code == 503
        r = c.post(
            "/events",
            json={"events": [{"user_id": "early", "game_id": 3498, "type": "like"}]},
            headers={"authorization": f"Bearer {key}"},
        )
        assert r.status_code == 202, r.text
        body = r.json()
    assert body["model_version"] is None and body["unknown_game"] == 0
    assert body["results"][0] == {
        "result": "accepted",
        "event_id": body["results"][0]["event_id"],
        "reason": None,
        "unknown_game": None,
    }
    assert _store(settings).read()["user_id"].to_list() == ["early"]


def test_a_database_that_is_down_is_a_503_and_nothing_is_stored(tmp_path: Path) -> None:
    settings = StorageSettings.from_env(
        {
            "GAMEREC_HOME": str(tmp_path),
            "GAMEREC_MYSQL_URL": f"mysql+pymysql://root@127.0.0.1:{free_port()}/nowhere",
            "GAMEREC_DB_CONNECT_TIMEOUT": "2",
        }
    )
    # open ingestion (a demo setting): the write keys live in the database that is down
    with TestClient(create_app(settings, reload_interval=0, env={"GAMEREC_EVENTS_OPEN": "true"})) as c:
        r = c.post("/events", json={"events": [{"user_id": "u", "game_id": 3498, "type": "play"}]})
    assert r.status_code == 503
    assert r.json()["detail"].startswith("the event store is unavailable: no event of this request was stored")
    assert "127.0.0.1" not in r.text, "hosts stay in the server log"


# -- durability: SIGKILL right after the 202 ----------------------------------------------------------------------


def _kill_after_202(home: Home, env_extra: dict[str, str]) -> tuple[list[dict], EventStore]:
    port = free_port()
    env = {**os.environ, "GAMEREC_HOME": str(home.path), "PYTHONPATH": str(ROOT), **env_extra}
    for name in ("PROMETHEUS_MULTIPROC_DIR", "GAMEREC_ADMIN_TOKEN"):
        env.pop(name, None)
    if "GAMEREC_MYSQL_URL" not in env_extra:
        env.pop("GAMEREC_MYSQL_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gamerec_api", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--reload-interval", "0", "--log-level", "warning"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    sent: list[dict] = []
    key = write_key(StorageSettings.from_env({"GAMEREC_HOME": str(home.path), **env_extra}))
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"authorization": f"Bearer {key}"}
        ) as c:
            deadline = time.monotonic() + 60
            while True:  # the server answers /healthz at once; events need no model
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "the server did not start"
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
            game = _game(home)
            for b in range(3):
                batch = [
                    {"event_id": f"kill-{b}-{i}", "user_id": f"k{i % 50}", "game_id": game + i % 3, "type": "play",
                     "value": float(i), "timestamp": "2026-11-30T10:00:00Z"}
                    for i in range(500)
                ]  # fmt: skip
                r = c.post("/events", json={"events": batch})
                if b == 2:
                    proc.send_signal(signal.SIGKILL)  # on the 202: no shutdown, no flush, nothing after the answer
                assert r.status_code == 202, r.text
                assert r.json()["accepted"] == 500
                sent += batch
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=20)
    assert proc.returncode == -signal.SIGKILL
    settings = StorageSettings.from_env({"GAMEREC_HOME": str(home.path), **env_extra})
    return sent, _store(settings)


def _assert_all_stored(sent: list[dict], store: EventStore) -> None:
    stored = store.read()
    assert stored.height == len(sent) == 1500
    assert stored["event_id"].to_list() == [e["event_id"] for e in sent], "every event, in the order sent"
    assert stored["value"].to_list() == [e["value"] for e in sent]
    assert stored["seq"].is_sorted() and stored["seq"].n_unique() == 1500


@pytest.mark.integration
def test_killed_server_loses_no_accepted_event_sqlite(fresh_home: Home) -> None:
    sent, store = _kill_after_202(fresh_home, {})
    assert store.tables.dialect == "sqlite"
    _assert_all_stored(sent, store)


def test_killed_server_loses_no_accepted_event_mariadb(fresh_home: Home, mysql_db: dict[str, object]) -> None:
    sent, store = _kill_after_202(fresh_home, {"GAMEREC_MYSQL_URL": str(mysql_db["url"])})
    assert store.tables.dialect == "mysql"
    _assert_all_stored(sent, store)
    store.engine.dispose()
