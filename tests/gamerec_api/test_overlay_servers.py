"""Done-when of realtime histories: events stored by anyone change `/predict` of every server within 2 s.

Two real server processes (`python -m gamerec_api`) share one database (the home's SQLite file, or MariaDB); the
test posts events to one of them (`POST /events`), appends one straight to `interaction_events`, and polls both
servers' answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from gamerec_assets import backends
from gamerec_assets.recsys.feedback import Event, check_event, now_us
from gamerec_assets.store.event_store import EventStore
from gamerec_assets.store.table_store import TableStore
from gamerec_assets.store.write_keys import WriteKeys
from tests.gamerec_api.support import Home, free_port

pytestmark = pytest.mark.integration  # two `python -m gamerec_api` server processes

ROOT = Path(__file__).resolve().parents[2]
REACT_S = 2.0  # the bound: an event changes every worker's answers within 2 s


@contextmanager
def server(home: Path, env: dict[str, str]) -> Iterator[httpx.Client]:
    port = free_port()
    full = {**os.environ, "GAMEREC_HOME": str(home), "PYTHONPATH": str(ROOT), **env}
    for name in ("PROMETHEUS_MULTIPROC_DIR", "GAMEREC_ADMIN_TOKEN", "GAMEREC_EVENTS_POLL"):
        full.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gamerec_api", "--host", "127.0.0.1", "--port", str(port), "--reload-interval", "0",
         "--log-level", "warning"],
        env=full, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            yield c
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode(errors="replace")
        assert "Traceback" not in out, out[-3000:]


def wait_ready(clients: list[httpx.Client], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    for c in clients:
        while True:
            try:
                if c.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "a server did not become ready"
            time.sleep(0.05)


def predict(c: httpx.Client, user: str, k: int = 10) -> dict:
    r = c.post("/predict", json={"user_id": user, "k": k})
    assert r.status_code == 200, r.text
    return r.json()


def ids(answer: dict) -> list[int]:
    return [i["game_id"] for i in answer["items"]]


def within(clients: list[httpx.Client], since: float, check: Callable[[httpx.Client], bool]) -> float:
    """Poll until `check` holds on every server; the seconds since `since` it took (fails past REACT_S)."""
    todo = list(clients)
    while todo:
        todo = [c for c in todo if not check(c)]
        assert not todo or time.monotonic() - since < REACT_S, f"no change within {REACT_S} s"
    return time.monotonic() - since


def events(user: str, games: list[int], kind: str = "play") -> list[Event]:
    return [
        check_event(user_id=user, game_id=g, type=kind, value=None, timestamp=None, received_us=now_us()) for g in games
    ]


@pytest.mark.parametrize("database", ["sqlite", "mysql"])
def test_events_change_predict_on_two_servers_within_two_seconds(
    fresh_home: Home, database: str, request: pytest.FixtureRequest
) -> None:
    env: dict[str, str] = {}
    if database == "mysql":
        env["GAMEREC_MYSQL_URL"] = request.getfixturevalue("mysql_db")["url"]
        store = EventStore(TableStore(env["GAMEREC_MYSQL_URL"]))
    else:
        store = EventStore(backends.table_store(fresh_home.settings))  # GAMEREC_HOME's SQLite file
    logs = fresh_home.seeded.logs
    with ExitStack() as stack:
        clients = [stack.enter_context(server(fresh_home.path, env)) for _ in range(2)]
        wait_ready(clients)
        known = "7"
        before = [ids(predict(c, known, k=20)) for c in clients]
        assert before[0] == before[1] and predict(clients[0], "rt-newcomer")["source"] == "popular"

        # a new user plays three games (those of a trained user: they have neighbours); a known user plays two
        plays = logs.filter(logs["user_id"] == logs["user_id"][0])["game_id"].to_list()[:3]
        # posted to the first server; the second hears of them through the table
        sent = [{"user_id": "rt-newcomer", "game_id": g, "type": "play"} for g in plays]
        sent += [{"user_id": known, "game_id": g, "type": "play", "value": 1.5} for g in before[0][:2]]
        key = WriteKeys(store.tables).create("overlay-test")  # POST /events needs a credential
        r = clients[0].post("/events", json={"events": sent}, headers={"authorization": f"Bearer {key}"})
        assert r.status_code == 202 and r.json()["accepted"] == 5, r.text
        since = time.monotonic()

        def reacted(c: httpx.Client) -> bool:
            new = predict(c, "rt-newcomer")
            return new["source"] == "item_cf" and ids(predict(c, known, k=20)) != before[0]

        took = within(clients, since, reacted)
        for c in clients:
            new = predict(c, "rt-newcomer")
            assert new["source"] == "item_cf" and not set(plays) & set(ids(new)), "a played game is never shown"
            assert not set(before[0][:2]) & set(ids(predict(c, known, k=20)))
            history = c.get("/users/rt-newcomer/history").json()
            assert history["realtime_game_ids"] == plays
        top = ids(predict(clients[0], "rt-newcomer"))[0]

        store.append(events("rt-newcomer", [top], "dislike"))  # anything that appends to the table counts
        since = time.monotonic()
        took = max(took, within(clients, since, lambda c: top not in ids(predict(c, "rt-newcomer", k=50))))
        print(f"{database}: both servers answered from the new events {took:.2f} s after the append")
