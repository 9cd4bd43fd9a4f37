"""No missed events: the realtime overlay's tail of `interaction_events` applies every stored event, also rows that
commit after a higher seq was read (MariaDB allocates a seq at INSERT and commits later, so concurrent appends
commit out of seq order), on SQLite and MariaDB alike, and on every worker (two overlays over their own
connections).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pymysql
import pytest
from prometheus_client import REGISTRY

from gamerec_api.overlay import RealtimeOverlay
from gamerec_assets.recsys.feedback import Event, now_us
from gamerec_assets.store.event_store import EventStore
from gamerec_assets.store.table_store import TableStore

ROOT = Path(__file__).resolve().parents[2]
CAPS = {"max_users": 1_000_000, "max_games": 100_000, "max_entries": 10_000_000}

# an appender in its own process: `threads` threads, each appending batches of 1..`most` likes until `seconds` pass;
# prints the number of events each append accepted, as JSON
APPENDER = """
import json, random, sys, threading, time
from gamerec_assets.recsys.feedback import Event, now_us
from gamerec_assets.store.event_store import EventStore
from gamerec_assets.store.table_store import TableStore
url, tag, threads, seconds, most = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
store = EventStore(TableStore(url))
accepted = []
def work(t):
    rng, n, end = random.Random(t), 0, time.monotonic() + seconds
    while time.monotonic() < end:
        k, now = rng.randint(1, most), now_us()
        batch = [Event(f"{tag}-{t}-{n + i}", f"{tag}-u{(n + i) % 97}", 1_000_000 * t + n + i, "like", None, now, now)
                 for i in range(k)]
        n += k
        accepted.append(store.append(batch).n_accepted)
pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
[p.start() for p in pool]
[p.join() for p in pool]
print(json.dumps(accepted))
"""


def store_for(url: str) -> EventStore:
    store = EventStore(TableStore(url))
    store.ensure()
    return store


@pytest.fixture(params=["sqlite", "mysql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gamerec.db'}"
    return str(request.getfixturevalue("mysql_db")["url"])


def like(user: str, game: int, tag: str = "") -> Event:
    now = now_us()
    return Event(f"{tag or secrets.token_hex(6)}-{user}-{game}", user, game, "like", None, now, now)


class Tail:
    """A worker's tail: `overlay.poll` in a thread over its own store (connection pool), as the API's holder
    runs it, but without pausing between reads (the harshest schedule for rows that commit late)."""

    def __init__(self, url: str) -> None:
        self.store = store_for(url)
        self.overlay = RealtimeOverlay(**CAPS)
        self.overlay.align(0)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                if self.overlay.poll(self.store) < self.overlay.batch:
                    time.sleep(0.002)
            except BaseException as exc:  # reported by the test
                self.errors.append(exc)
                return

    def applied(self) -> set[tuple[bytes, int]]:
        return {(u, g) for u, value in list(self.overlay.users.items()) for g in value.added}

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        self.store.engine.dispose()


@pytest.fixture
def tails(url: str) -> Iterator[list[Tail]]:
    workers = [Tail(url) for _ in range(2)]
    yield workers
    for w in workers:
        w.close()


def test_every_event_of_concurrent_appenders_reaches_both_workers(url: str, tails: list[Tail]) -> None:
    """Appenders in two processes (two threads each) and four threads of this one post batches of 1-20 likes for
    three seconds while two overlays tail the table; then every stored like is applied on both."""
    seconds, tag = 3.0, secrets.token_hex(3)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", APPENDER, url]
    procs = [
        subprocess.Popen(
            [*args, f"{tag}p{p}", "2", str(seconds), "20"], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for p in range(2)
    ]
    store = store_for(url)
    accepted: list[int] = []

    def work(t: int) -> None:
        rng, n, end = random.Random(t), 0, time.monotonic() + seconds
        while time.monotonic() < end:
            k = rng.randint(1, 20)
            batch = [like(f"{tag}t-u{(n + i) % 97}", 1_000_000 * t + n + i, f"{tag}t{t}") for i in range(k)]
            n += k
            accepted.append(store.append(batch).n_accepted)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, "an appender process failed (its traceback is above)"
        accepted.extend(json.loads(out))
    stored = store.read()
    assert stored.height == sum(accepted) > 1000, "every append was accepted and stored"
    expected = {(u.encode(), g) for u, g in zip(stored["user_id"], stored["game_id"], strict=True)}
    deadline = time.monotonic() + 15
    for worker in tails:
        while (missing := expected - worker.applied()) and time.monotonic() < deadline and not worker.errors:
            time.sleep(0.05)
        assert not worker.errors, worker.errors
        assert not missing, f"{len(missing)} of {len(expected)} stored likes were never applied on a worker"
    store.engine.dispose()


def test_a_row_that_commits_after_a_higher_seq_was_read_is_applied(mysql_db: dict[str, object]) -> None:
    """An append's seq is allocated at its INSERT; one that commits after a later append (and after the overlay
    read that later one) is applied at the next read all the same."""
    store = store_for(str(mysql_db["url"]))
    overlay = RealtimeOverlay()
    overlay.align(0)
    late = pymysql.connect(host=str(mysql_db["host"]), port=int(mysql_db["port"]), user="root", db=str(mysql_db["db"]))
    try:
        with late.cursor() as cur:  # seq 1, not committed yet
            cur.execute(
                "INSERT INTO interaction_events (event_id, user_id, game_id, type, timestamp_us, received_us, batch) "
                "VALUES ('late', 'ann', 42, 'dislike', 0, 0, 'x')"
            )
        store.append([like("bob", 7)])  # seq 2, committed
        overlay.poll(store)
        assert overlay.users[b"bob"].added == (7,) and b"ann" not in overlay.users
        late.commit()
    finally:
        late.close()
    overlay.poll(store)
    assert b"ann" in overlay.users, "the row that committed late was never applied"
    assert overlay.users[b"ann"].excluded == {42}
    store.engine.dispose()


def closed(how: str) -> float:
    return REGISTRY.get_sample_value("gamerec_overlay_gaps_closed_total", {"how": how}) or 0.0


def insert_raw(conn: pymysql.Connection, event_id: str, user: str, game: int, kind: str = "like") -> None:
    """An append's INSERT on a connection of the test's own: its seq is allocated now, committed when it says."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO interaction_events (event_id, user_id, game_id, type, timestamp_us, received_us, batch) "
            "VALUES (%s, %s, %s, %s, 0, 0, 'raw')",
            (event_id, user, game, kind),
        )


def poll_until(overlay: RealtimeOverlay, store: EventStore, done: Callable[[], bool], seconds: float) -> float:
    started = time.monotonic()
    while not done():
        assert time.monotonic() - started < seconds, f"not within {seconds} s; open gaps {overlay.open_gaps()}"
        overlay.poll(store)
        time.sleep(0.05)
    return time.monotonic() - started


def connect(db: dict[str, object], user: str = "root", password: str = "") -> pymysql.Connection:
    return pymysql.connect(host=str(db["host"]), port=int(db["port"]), user=user, password=password, db=str(db["db"]))


@pytest.mark.parametrize("zone", ["SYSTEM", "-03:30"])
def test_a_rolled_back_seq_is_proven_final_and_an_open_one_is_waited_for(
    mysql_db: dict[str, object], zone: str
) -> None:
    """A rolled-back seq is closed as final once every write transaction open on the server started after it was
    missed (seconds; the bound is generous because the server is shared); a seq whose transaction stays open for
    2.5 s while appends go on is never given up, and applied when it commits. Also when the session's time zone
    is not the server's (innodb_trx gives start times in the server's zone)."""
    store = EventStore(TableStore(str(mysql_db["url"]), connect_args={"init_command": f"SET time_zone = '{zone}'"}))
    store.ensure()
    overlay = RealtimeOverlay()
    overlay.align(0)
    final, filled = closed("final"), closed("filled")
    gone, slow = connect(mysql_db), connect(mysql_db)
    try:
        insert_raw(gone, "gone", "ann", 1)  # seq 1
        store.append([like("cid", 2)])  # seq 2
        gone.rollback()
        overlay.poll(store)
        assert overlay.open_gaps() == [1] and overlay.users[b"cid"].added == (2,)
        took = poll_until(overlay, store, lambda: not overlay.open_gaps(), 30)
        assert closed("final") == final + 1 and b"ann" not in overlay.users
        print(f"a rolled-back seq was proven final after {took:.2f} s")

        insert_raw(slow, "slow", "bob", 3, "dislike")  # seq 3
        opened = time.monotonic()
        while time.monotonic() - opened < 2.5:  # other appends commit meanwhile
            store.append([like("cid", 4 + int(10 * (time.monotonic() - opened)), secrets.token_hex(4))])
            overlay.poll(store)
            assert overlay.open_gaps() == [3], "an open transaction's seq was given up"
            time.sleep(0.05)
        slow.commit()
    finally:
        gone.close()
        slow.close()
    poll_until(overlay, store, lambda: not overlay.open_gaps(), 5)
    assert overlay.users[b"bob"].excluded == {3} and closed("filled") == filled + 1
    store.engine.dispose()


@pytest.fixture
def no_process_url(mysql_db: dict[str, object]) -> Iterator[str]:
    """An account with every privilege on the test database only: no PROCESS, so no information_schema.innodb_trx."""
    name, password = f"gr_{secrets.token_hex(4)}", secrets.token_hex(8)
    root = connect(mysql_db)
    try:
        with root.cursor() as cur:
            cur.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'")
            cur.execute(f"GRANT ALL ON `{mysql_db['db']}`.* TO '{name}'@'%'")
        yield f"mysql+pymysql://{name}:{password}@{mysql_db['host']}:{mysql_db['port']}/{mysql_db['db']}?charset=utf8mb4"
    finally:
        with root.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{name}'@'%'")
        root.close()


def test_without_the_process_privilege_a_late_row_is_applied_and_a_lost_seq_times_out(
    mysql_db: dict[str, object], no_process_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_for(no_process_url)
    overlay = RealtimeOverlay(gap_timeout=1.5)
    overlay.align(0)
    timeout = closed("timeout")
    gone, late = connect(mysql_db), connect(mysql_db)
    try:
        insert_raw(gone, "gone", "ann", 1)
        insert_raw(late, "late", "bob", 2)
        store.append([like("cid", 3)])
        gone.rollback()
        overlay.poll(store)
        assert overlay.open_gaps() == [1, 2]
        late.commit()
    finally:
        gone.close()
        late.close()
    overlay.poll(store)
    assert overlay.users[b"bob"].added == (2,) and overlay.open_gaps() == [1]
    assert "grant PROCESS" in caplog.text
    took = poll_until(overlay, store, lambda: not overlay.open_gaps(), 5)
    assert took > 1.0 and closed("timeout") == timeout + 1
    store.engine.dispose()


def test_sqlite_gaps_are_final_at_once_and_a_jump_in_seq_is_not_expanded(tmp_path: Path) -> None:
    """SQLite commits in seq order: a seq missing below a read one never appears. A jump of a trillion seqs is
    tracked as at most `max_gaps` seqs (the newest; on SQLite closed at once anyway)."""
    store = store_for(f"sqlite:///{tmp_path / 'gamerec.db'}")
    store.append([like("ann", g) for g in (1, 2, 3)])
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM interaction_events WHERE seq = 2")
        conn.exec_driver_sql(
            "INSERT INTO interaction_events (seq, event_id, user_id, game_id, type, timestamp_us, received_us, batch) "
            "VALUES (1000000000000, 'far', 'bob', 9, 'like', 0, 0, 'raw')"
        )
    overlay = RealtimeOverlay(max_gaps=1000)
    overlay.align(0)
    overflow = closed("overflow")
    assert overlay.poll(store) == 3
    assert overlay.users[b"ann"].added == (1, 3) and overlay.users[b"bob"].added == (9,)
    assert not overlay.open_gaps() and overlay.last_seq == 10**12
    assert closed("overflow") - overflow == (10**12 - 3) - 1000  # seq 2, and 4 up to the far one
    store.engine.dispose()
