"""Bulk throughput of the table store on MariaDB (and SQLite for scale): publish, and read back.

Usage: .venv/bin/python bench/bench_table_load.py [--rows 1000000] [--url mysql+pymysql://root@127.0.0.1:3306/test]
       [--sqlite]
Prints rows/s for
- the atomic publish of `batch_recommendations`-shaped rows (LOAD DATA into a staging table + RENAME TABLE swap)
  and its read-back;
- the read-back of a `user_logs`-shaped table (user_id VARCHAR(128) utf8mb4_bin key, game_id BIGINT, weight DOUBLE,
  title TEXT with nulls, catalog, source), through the bulk path (connectorx on MySQL) and through the DBAPI cursor
  path (PyMySQL's row decoding: the path every read took before).
Targets (issue 15): publish >= 130,000 rows/s, user_logs read >= 500,000 rows/s on MariaDB.
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


def user_log_rows(n: int) -> pl.DataFrame:
    """`user_logs` as the graph publishes it: Steam-like text user ids, about 10 games each, titles half null."""
    rng = np.random.default_rng(1)
    users = np.arange(n) // 10
    games = (users * 7919 + np.arange(n) % 10 * 104_729) % 50_000 + 1  # distinct games per user
    return pl.DataFrame(
        {
            "user_id": pl.Series((7_656_119_796_028_793 + users).astype(np.int64)).cast(pl.Utf8),
            "game_id": games.astype(np.int64),
            "weight": 1.0 + np.log1p(rng.exponential(10.0, n)),
            "title": pl.Series(np.where(rng.random(n) < 0.5, "", "Counter-Strike: Global Offensive")),
        }
    ).with_columns(
        title=pl.when(pl.col("title") == "").then(None).otherwise(pl.col("title")),
        catalog=pl.lit("rawg"),
        source=pl.lit("steam-200k"),
    )


def timed(fn):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def drop(store: TableStore, name: str) -> None:
    with store.engine.begin() as conn:
        for t in (name, f"{name}__previous"):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {t}")


def measure(url: str, rows: int) -> None:
    store = TableStore(url)
    frames = recommendation_rows(rows)
    result, seconds = timed(
        lambda: store.write("bench_batch_recommendations", iter(frames), primary_key=["user_id", "rank"])
    )
    back, read_seconds = timed(lambda: store.read("bench_batch_recommendations"))
    assert back.height == rows == result.rows
    drop(store, "bench_batch_recommendations")
    print(
        f"{store.backend:7s} batch_recommendations rows={rows:,}  publish={seconds:6.2f}s  "
        f"{rows / seconds:>10,.0f} rows/s  read back={read_seconds:5.2f}s  {rows / read_seconds:>10,.0f} rows/s"
    )

    logs = user_log_rows(rows)
    _, seconds = timed(lambda: store.write("bench_user_logs", logs, primary_key=["user_id", "game_id"]))
    paths = [("bulk", True), ("cursor", False)] if store.backend == "mysql" else [("cursor", False)]
    for label, bulk in paths:
        store.bulk_reads = bulk
        back, read_seconds = timed(lambda: store.read("bench_user_logs"))
        assert back.height == logs.height and back.schema == logs.schema
        print(
            f"{store.backend:7s} user_logs rows={logs.height:,}  publish={seconds:6.2f}s  "
            f"{logs.height / seconds:>10,.0f} rows/s  read ({label})={read_seconds:5.2f}s  "
            f"{logs.height / read_seconds:>10,.0f} rows/s"
        )
    store.bulk_reads = True
    drop(store, "bench_user_logs")


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
