"""Benchmark of event ingestion: prints figures, asserts nothing (timings belong here, not in unit tests).

1. store level: `EventStore.append` into MariaDB, batches of 500, sustained (events/s over `--events`), by one
   appender and by two at once (`--store-threads`);
2. HTTP: `POST /events` with batches of 500 against `python -m gamerec_api` (1 and 2 workers) in a separate
   process, tables in the same MariaDB: events/s with `--clients` keep-alive clients posting as fast as they can
   (request bodies are encoded before the clock starts, so the client does little per request);
3. latency of a single-event `POST /events`: p50 / p99 / max over `--single` sequential requests on one
   keep-alive connection (each one a committed transaction before its 202).

Every run uses a throwaway database (`gamerec_bench_events_<hex>`) on the server of `--url`, dropped at the end,
and a temporary GAMEREC_HOME seeded with the bundled RAWG snapshot (events need no model, but the server serves one).

    .venv/bin/python bench/bench_events.py [--url mysql+pymysql://root@127.0.0.1:3306/] [--events 100000]
        [--http-events 50000] [--clients 4] [--single 3000] [--workers 1 2] [--auth]

`--auth` adds a run per worker count with `Authorization: Bearer <write key>` (the runs without it use
GAMEREC_EVENTS_OPEN=true).
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import msgspec
import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gamerec_api.demo import seed_home  # noqa: E402
from gamerec_assets.recsys.feedback import EVENT_TYPES, Event, now_us  # noqa: E402
from gamerec_assets.store.event_store import EventStore  # noqa: E402
from gamerec_assets.store.table_store import TableStore  # noqa: E402

BATCH = 500


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayDatabase:
    """CREATE DATABASE on enter, DROP DATABASE on exit; `url` points at it."""

    def __init__(self, server_url: str, prefix: str = "gamerec_bench_events") -> None:
        self.server = sa.engine.make_url(server_url)
        self.name = f"{prefix}_{secrets.token_hex(4)}"
        self.url = self.server.set(database=self.name, query={"charset": "utf8mb4"}).render_as_string(False)

    def _exec(self, sql: str) -> None:
        engine = sa.create_engine(self.server.set(database=None))
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
        engine.dispose()

    def __enter__(self) -> ThrowawayDatabase:
        self._exec(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4")
        return self

    def __exit__(self, *exc: object) -> None:
        self._exec(f"DROP DATABASE IF EXISTS `{self.name}`")


def events(n: int, tag: str) -> list[Event]:
    now = now_us()
    return [
        Event(f"{tag}-{i}", f"user-{i % 5000}", 1 + i % 3000, EVENT_TYPES[i % len(EVENT_TYPES)], None, now - i, now)
        for i in range(n)
    ]


def store_level(url: str, n: int, threads: int) -> None:
    """`threads` appenders at once, each with its own connection (as concurrent requests are served)."""
    store = EventStore(TableStore(url))
    store.ensure()
    store.append(events(BATCH, "warm"))
    tag = secrets.token_hex(3)
    batches = [events(BATCH, f"s{tag}-{b}") for b in range(n // BATCH)]

    def work(part: list[list[Event]]) -> None:
        for batch in part:
            store.append(batch)

    pool = [threading.Thread(target=work, args=(batches[t::threads],)) for t in range(threads)]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    took = time.perf_counter() - started
    total, per_append = len(batches) * BATCH, took / len(batches) * threads * 1000
    print(f"store level, {threads} appender(s): {total:,} events in batches of {BATCH}: {took:.2f} s, "
          f"{total / took:,.0f} events/s ({per_append:.1f} ms per append)")  # fmt: skip
    store.engine.dispose()


def body(n: int, tag: str) -> bytes:
    stamp = "2026-11-30T10:00:00Z"
    return msgspec.json.encode(
        {
            "events": [
                {"event_id": f"{tag}-{i}", "user_id": f"user-{i % 5000}", "game_id": 1 + i % 3000,
                 "type": EVENT_TYPES[i % len(EVENT_TYPES)], "timestamp": stamp}
                for i in range(n)
            ]
        }
    )  # fmt: skip


class Server:
    def __init__(self, home: Path, url: str, workers: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "GAMEREC_HOME": str(home), "GAMEREC_MYSQL_URL": url, "PYTHONPATH": str(ROOT)}
        env["GAMEREC_EVENTS_OPEN"] = "true"  # the runs without a credential; `--auth` runs send a write key
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gamerec_api", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(workers), "--reload-interval", "0", "--log-level", "warning"],
            env=env, cwd=ROOT,
        )  # fmt: skip

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=self.base) as c:
            ready = 0
            while ready < 10:  # consecutive 200s: every worker is up (connections spread over them)
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not become ready")
                try:
                    ok = c.get("/readyz", headers={"Connection": "close"}).status_code == 200
                    ready = ready + 1 if ok else 0
                except httpx.TransportError:
                    ready = 0
                time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def http_throughput(server: Server, n: int, clients: int, workers: int, key: str | None = None) -> None:
    """Batches of BATCH events from `clients` threads; with `key`, `Authorization: Bearer <key>` on every request
    (the cost of checking the credential and the rate limits)."""
    per_client = max(1, n // BATCH // clients)
    run = secrets.token_hex(3)
    bodies = [[body(BATCH, f"h{run}-{c}-{b}") for b in range(per_client)] for c in range(clients)]
    accepted = [0] * clients
    failures: list[str] = []
    barrier = threading.Barrier(clients + 1)
    headers = {"content-type": "application/json"} | ({"authorization": f"Bearer {key}"} if key else {})

    def client(c: int) -> None:
        with httpx.Client(base_url=server.base, timeout=60) as http:
            http.post("/events", content=body(1, f"warm{run}-{c}"), headers=headers)
            barrier.wait()
            for payload in bodies[c]:
                r = http.post("/events", content=payload, headers=headers)
                if r.status_code != 202:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                    return
                accepted[c] += r.json()["accepted"]

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    took = time.perf_counter() - started
    total = sum(accepted)
    note = f" ({len(failures)} failed: {failures[0]})" if failures else ""
    how = "HTTP with a write key" if key else "HTTP"
    print(f"{how}, {workers} worker(s), {clients} clients, batches of {BATCH}: {total:,} events in {took:.2f} s, "
          f"{total / took:,.0f} events/s{note}")  # fmt: skip


def http_throughput_authenticated(server: Server, url: str, n: int, clients: int, workers: int) -> None:
    """`http_throughput` with a write key made as an operator would (`gamerec keys create`)."""
    from gamerec_assets.store.write_keys import WriteKeys

    tables = TableStore(url)
    key = WriteKeys(tables).create(f"bench-{secrets.token_hex(3)}")
    tables.engine.dispose()
    http_throughput(server, n, clients, workers, key)


def single_latency(server: Server, n: int) -> None:
    run = secrets.token_hex(3)
    bodies = [body(1, f"one{run}-{i}") for i in range(n + 50)]
    headers = {"content-type": "application/json"}
    times = np.empty(n)
    with httpx.Client(base_url=server.base, timeout=30) as http:
        for payload in bodies[:50]:  # warm-up
            http.post("/events", content=payload, headers=headers)
        for i, payload in enumerate(bodies[50:]):
            t0 = time.perf_counter()
            r = http.post("/events", content=payload, headers=headers)
            times[i] = time.perf_counter() - t0
            if r.status_code != 202:
                print(f"single event: {r.status_code} {r.text[:200]}")
                return
    print(f"single-event POST /events (1 worker, sequential, keep-alive), {n:,} requests: "
          f"p50 {np.percentile(times, 50) * 1000:.2f} ms, p99 {np.percentile(times, 99) * 1000:.2f} ms, "
          f"max {times.max() * 1000:.2f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="mysql+pymysql://root@127.0.0.1:3306/", help="MariaDB server (no database)")
    parser.add_argument("--events", type=int, default=100_000, help="store-level events")
    parser.add_argument("--store-threads", type=int, nargs="+", default=[1, 2], help="concurrent appenders")
    parser.add_argument("--http-events", type=int, default=50_000, help="events per HTTP throughput run")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--single", type=int, default=3000, help="sequential single-event requests")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--auth", action="store_true", help="also post with a write key (authenticated ingestion)")
    args = parser.parse_args()
    with ThrowawayDatabase(args.url) as db, tempfile.TemporaryDirectory(prefix="gamerec-bench-events-") as tmp:
        print(f"MariaDB database {db.name} (dropped at the end); {os.cpu_count()} CPUs")
        for threads in args.store_threads:
            store_level(db.url, args.events, threads)
        home = Path(tmp) / "home"
        seed_home(home, n_users=100)
        for workers in args.workers:
            with Server(home, db.url, workers) as server:
                http_throughput(server, args.http_events, args.clients, workers)
                if args.auth:
                    http_throughput_authenticated(server, db.url, args.http_events, args.clients, workers)
                if workers == 1:
                    single_latency(server, args.single)


if __name__ == "__main__":
    main()
