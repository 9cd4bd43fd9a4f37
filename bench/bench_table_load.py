"""Bulk-load throughput of the table store: 1,000,000 recommendation rows into MariaDB (and SQLite for scale).

Usage: .venv/bin/python bench/bench_table_load.py [--rows 1000000] [--url mysql+pymysql://root@127.0.0.1:3306/test]
Prints rows/s for the whole atomic publish (staging load + RENAME TABLE swap) and the read-back time.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import polars as pl

from gamerec_assets.store import TableStore


def recommendation_rows(n: int, chunk: int = 200_000) -> list[pl.DataFrame]:
    rng = np.random.default_rng(0)
    frames = []
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        idx = np.arange(start, start + m)
        frames.append(
            pl.DataFrame(
                {
                    "user_id": (idx // 10).astype(np.int64),
                    "rank": (idx % 10 + 1).astype(np.int32),
                    "game_id": rng.integers(1, 500_000, m).astype(np.int64),
                    "score": rng.random(m),
                    "source": np.where(rng.random(m) < 0.9, "item_cf", "popular"),
                    "model_version": np.full(m, "v20261129T000000-abcdef"),
                }
            )
        )
    return frames


def measure(url: str, rows: int) -> None:
    store = TableStore(url)
    frames = recommendation_rows(rows)
    started = time.perf_counter()
    result = store.write("bench_batch_recommendations", iter(frames), primary_key=["user_id", "rank"])
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    back = store.read("bench_batch_recommendations")
    read_seconds = time.perf_counter() - started
    assert back.height == rows == result.rows
    with store.engine.begin() as conn:
        for t in ("bench_batch_recommendations", "bench_batch_recommendations__previous"):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {t}")
    print(
        f"{store.backend:7s} rows={rows:,}  publish={seconds:6.2f}s  {rows / seconds:>10,.0f} rows/s  "
        f"read back={read_seconds:5.2f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--url", default="mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4")
    parser.add_argument("--sqlite", action="store_true", help="also measure the embedded SQLite default")
    args = parser.parse_args()
    measure(args.url, args.rows)
    if args.sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            measure(f"sqlite:///{tmp}/bench.db", args.rows)


if __name__ == "__main__":
    main()
