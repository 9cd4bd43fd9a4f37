"""Benchmark of the realtime overlay's lag under sustained appends: prints figures, asserts nothing.

`--procs` appender processes append `--rate` events/s in all to a throwaway MariaDB database (batches of `--batch`
events, all six event types in turn, 5,000 users, paced to the rate) for `--seconds`; this process runs one
`RealtimeOverlay` tail as the API's holder does (a read; the next one at once after a full page, else after
`--poll` s). Printed:
- the rate the appenders reached (from the start to the last append's end: on a busy machine they fall behind
  the pace, and the tail has 10 s after the pace's end to catch up);
- lag per event: from just before its append started (its `timestamp_us`) to the end of the poll that applied it
  (p50 / p99 / max), and how many stored events were never applied by the end (grace: 10 s);
- events behind: the table's newest seq minus the overlay's, sampled every 0.25 s (mean / max / at the end);
- the tail's time: in the store's read (database round trips and decoding) and in the rest of `poll` (applying).
`--overlay-from REF` runs the overlay of a git revision instead (e.g. the one before the gap tracking) to compare.

    .venv/bin/python bench/bench_overlay_lag.py [--rate 10000] [--seconds 20] [--procs 4] [--batch 100]
        [--poll 0.5] [--overlay-from REF] [--url mysql+pymysql://root@127.0.0.1:3306/]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gamerec_assets.recsys.feedback import EVENT_TYPES, Event, now_us  # noqa: E402
from gamerec_assets.store.event_store import EventStore  # noqa: E402
from gamerec_assets.store.table_store import TableStore  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_events import ThrowawayDatabase  # noqa: E402  (a sibling script: the throwaway database)


def appender(url: str, tag: str, rate: float, batch: int, seconds: float, ready: Any, go: Any, out: Any) -> None:
    """Append `rate` events/s in batches of `batch`, paced from `go` (a start time sent once all are ready), for
    `seconds`."""
    store = EventStore(TableStore(url))
    store.ensure()
    ready.put(tag)
    start = go.get()
    sent, n = 0, 0
    while (due := start + n * batch / rate) < start + seconds:
        time.sleep(max(0.0, due - time.time()))
        now = now_us()
        events = [
            Event(f"{tag}-{sent + i}", f"user-{(sent + i) * 7919 % 5000}", 1 + (sent + i) % 3000,
                  EVENT_TYPES[(sent + i) % len(EVENT_TYPES)], None, now, now)
            for i in range(batch)
        ]  # fmt: skip
        store.append(events)
        sent += batch
        n += 1
    out.put((sent, time.time()))


def load_overlay(ref: str | None) -> types.ModuleType:
    """gamerec_api.overlay, or its text at git revision `ref` (only one is imported: both register the same
    Prometheus metrics)."""
    if ref is None:
        import gamerec_api.overlay as current

        return current
    text = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:gamerec_api/overlay.py"], capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType(f"overlay_at_{ref}")
    sys.modules[module.__name__] = module
    exec(compile(text, f"{ref}:gamerec_api/overlay.py", "exec"), module.__dict__)  # our own code, at a revision
    return module


class Recorder(EventStore):
    """The store, noting which seqs each read returned (the bench's only addition)."""

    returned: list[np.ndarray]
    read_s = 0.0

    def tail(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        frame, read_at, horizon = super().tail(*args, **kwargs)
        self.read_s += time.perf_counter() - t0
        self.returned.append(frame["seq"].to_numpy())
        return frame, read_at, horizon

    def read(self, *args: Any, **kwargs: Any) -> pl.DataFrame:
        t0 = time.perf_counter()
        frame = super().read(*args, **kwargs)
        self.read_s += time.perf_counter() - t0
        self.returned.append(frame["seq"].to_numpy())
        return frame


def run(args: argparse.Namespace, url: str) -> None:
    module = load_overlay(args.overlay_from)
    store = Recorder(TableStore(url))
    store.ensure()
    store.returned = []
    overlay = module.RealtimeOverlay()
    overlay.align(0)
    applied: list[tuple[np.ndarray, float]] = []
    behind: list[int] = []
    busy = 0.0
    stop = threading.Event()

    def sample() -> None:
        probe = EventStore(TableStore(url))
        while not stop.is_set():
            behind.append(probe.last_seq() - overlay.last_seq)
            time.sleep(0.25)

    ctx = mp.get_context("spawn")
    queue, ready, go = ctx.Queue(), ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(
            target=appender,
            args=(url, f"a{p}", args.rate / args.procs, args.batch, args.seconds, ready, go, queue),
        )
        for p in range(args.procs)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    start = time.time() + 0.5
    for _ in procs:
        go.put(start)
    sampler = threading.Thread(target=sample, daemon=True)
    time.sleep(max(0.0, start - time.time()))
    sampler.start()
    grace = start + args.seconds + 10
    args.timed_out = True
    while time.time() < grace:
        t0 = time.perf_counter()
        n = overlay.poll(store)
        busy += time.perf_counter() - t0
        done = time.time()
        applied.extend((seqs, done) for seqs in store.returned)
        store.returned.clear()
        idle = not any(p.is_alive() for p in procs) and n < overlay.batch and not _open(overlay)
        if idle and store.last_seq() <= overlay.last_seq:
            args.timed_out = False
            break
        time.sleep(0 if n >= overlay.batch else args.poll)
    stop.set()
    results = [queue.get() for _ in procs]
    sent, took = sum(r[0] for r in results), max(r[1] for r in results) - start
    for p in procs:
        p.join()
    report(args, store, applied, behind, busy - store.read_s, (sent, took), store.read_s)


def _open(overlay: Any) -> bool:
    return bool(overlay.open_gaps()) if hasattr(overlay, "open_gaps") else False


def report(
    args: argparse.Namespace, store: EventStore, applied: list[tuple[np.ndarray, float]], behind: list[int],
    applying: float, appended: tuple[int, float], reading: float,
) -> None:  # fmt: skip
    stored = store.read().select("seq", "timestamp_us")
    seqs = np.concatenate([s for s, _ in applied]) if applied else np.empty(0, np.int64)
    times = np.concatenate([np.full(s.size, t) for s, t in applied]) if applied else np.empty(0)
    first = pl.DataFrame({"seq": seqs, "at": times}).group_by("seq").agg(pl.col("at").min())
    joined = stored.join(first, on="seq", how="left")
    lag = (joined["at"] - joined["timestamp_us"] / 1e6).drop_nulls().to_numpy()
    missed = joined["at"].null_count()
    never = joined.filter(pl.col("at").is_null())["seq"]
    source = args.overlay_from or "this checkout"
    print(f"overlay of {source}; {os.cpu_count()} CPUs; {args.procs} appender processes, batches of {args.batch}, "
          f"poll every {args.poll} s")  # fmt: skip
    sent, took = appended
    print(f"appended {sent:,} events in {took:.1f} s: {sent / took:,.0f} events/s (asked {args.rate:,.0f} for "
          f"{args.seconds:.0f} s)")  # fmt: skip
    if lag.size:
        print(f"lag append -> applied: p50 {np.percentile(lag, 50):.3f} s, p99 {np.percentile(lag, 99):.3f} s, "
              f"max {lag.max():.3f} s; never applied: {missed:,} of {stored.height:,}")  # fmt: skip
    if missed:
        print(f"  never applied: seqs {never.head(5).to_list()} .. {never.tail(3).to_list()}; the tail "
              f"{'gave up at the end of the grace period' if args.timed_out else 'had caught up'}")  # fmt: skip
    if behind:
        b = np.array(behind)
        print(f"events behind the table (every 0.25 s): mean {b.mean():,.0f}, max {b.max():,}, "
              f"after {args.seconds:.0f} s {b[min(len(b) - 1, int(args.seconds * 4))]:,}")  # fmt: skip
    print(f"tail time: reading {reading:.2f} s, applying {applying:.2f} s, for {stored.height:,} events "
          f"({(reading + applying) / max(1, stored.height) * 1e6:.1f} us per event)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="mysql+pymysql://root@127.0.0.1:3306/", help="MariaDB server (no database)")
    parser.add_argument("--rate", type=float, default=10_000, help="events per second, all appenders together")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--procs", type=int, default=4, help="appender processes")
    parser.add_argument("--batch", type=int, default=100, help="events per append")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between reads that were not full")
    parser.add_argument("--overlay-from", default=None, help="git revision whose gamerec_api/overlay.py to run")
    args = parser.parse_args()
    with ThrowawayDatabase(prefix="gamerec_bench_lag", server_url=args.url) as db:
        print(f"MariaDB database {db.name} (dropped at the end)")
        run(args, db.url)


if __name__ == "__main__":
    main()
