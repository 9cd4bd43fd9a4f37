"""The whole graph at a million users: a synthetic Steam-like log through the default path and the Celery path.

Usage: .venv/bin/python bench/bench_million.py [--users 1000000] [--games 50000] [--mean-history 12.5]
       [--paths default,celery] [--workdir DIR] [--blocks 8] [--shards 8]
       (--scale 0.1 multiplies --users, for a quicker look)

Data (seeded, vectorised numpy): `--users` users with lognormal history lengths (sigma 1, mean `--mean-history`
draws, about 10 per user once repeated (user, game) draws collapse: about 10 M interactions at a million users),
games drawn from a Zipf(0.9) popularity over `--games` games, 70 % of each history from the user's taste (one of
1000 groups of games, Zipf within), so that item-CF beats popularity (the graph's blocking quality gate) as on a
real log; 80 % `play` events with lognormal hours and 20 % `purchase`; user ids are Steam-like 17-digit text.
Written as an interaction file
(Parquet, `GAMEREC_INTERACTIONS=file:`) and a catalogue file of the games (`GAMEREC_CATALOG=file:`).

Paths, each in a process of its own (its own peak RSS):
- default: the main location as `make run` materializes it: SQLite tables and local artifacts under a fresh
  GAMEREC_HOME, one in-process execution per asset (checks included), an in-memory instance.
- celery: MariaDB tables (database `gamerec_bench`), Dagster's instance on MariaDB, artifacts on moto's S3 server
  (a separate process), two Celery workers (`python -m gamerec_assets.scale.worker -c 1`, RabbitMQ vhost
  `gamerec_bench`, GAMEREC_THREADS=1 each). The main location materializes raw_games … production_model (the
  release the sharded job scores with); the scale location's `item_similarity_fit_job` (inputs, `--blocks` block
  steps, merge) and `batch_recommendations_sharded_job` (`--shards` shard steps, one publish) run on the workers.
  Also measured: `user_logs` read back from MariaDB (rows/s), and the batch publish (rows/s).

Run config limits model selection for the bench: `item_similarity` with `strategy: fixed` (ItemCF cosine, 100
neighbours, the default serving budget of 300): the selection's time budget would otherwise decide the stage's
time. The rest is the graph's defaults (k = 10, chunks of 50,000 users).

Peak RSS per stage: the orchestrating process's VmRSS sampled every 0.2 s (and, on the Celery path, the largest
single worker process), besides getrusage's lifetime maximum of each process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MAIN_STAGES = [
    "raw_games",
    "game_features",
    "user_logs",
    "item_similarity",
    "evaluation_report",
    "production_model",
    "batch_recommendations",
]
STAGE_CONFIG: dict[str, dict[str, Any]] = {"item_similarity": {"strategy": "fixed"}}
MYSQL = "mysql+pymysql://root@127.0.0.1:3306/gamerec_bench?charset=utf8mb4"
VHOST = "gamerec_bench"
BROKER = f"pyamqp://guest:guest@127.0.0.1:5672/{VHOST}"


# -- data ----------------------------------------------------------------------------------------------------------


def synthetic_log(users: int, games: int, mean_history: float, seed: int = 15) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(interactions, catalogue): Zipf popularity, lognormal history lengths, Steam-like ids; vectorised."""
    rng = np.random.default_rng(seed)
    sigma = 1.0
    lengths = rng.lognormal(np.log(mean_history) - sigma**2 / 2, sigma, users)
    lengths = np.clip(np.rint(lengths), 1, games // 4).astype(np.int64)
    user = np.repeat(np.arange(users, dtype=np.int64), lengths)
    # Zipf(0.9) popularity by rank; users have one of 1000 tastes, and 70 % of a history comes from the taste's own
    # games (ranks = taste mod 1000, Zipf among them), so games co-occur as in a real log and item-CF has a signal
    tastes = 1000
    rank_to_game = rng.permutation(games).astype(np.int64) + 1  # game ids 1..games, popularity in random order
    global_cdf = np.cumsum(np.arange(1, games + 1, dtype=np.float64) ** -0.9)
    per_taste = games // tastes
    taste_cdf = np.cumsum(np.arange(1, per_taste + 1, dtype=np.float64) ** -0.9)
    rank = np.searchsorted(global_cdf / global_cdf[-1], rng.random(len(user)), side="right")
    taste = rng.integers(0, tastes, users)[user]
    in_taste = rng.random(len(user)) < 0.7
    taste_rank = np.searchsorted(taste_cdf / taste_cdf[-1], rng.random(len(user)), side="right") * tastes + taste
    rank = np.where(in_taste, taste_rank, rank).clip(0, games - 1)
    game = rank_to_game[rank]
    pairs = pl.DataFrame({"u": user, "game_id": game}).unique(maintain_order=True)
    n = pairs.height
    play = rng.random(n) < 0.8
    hours = np.round(rng.lognormal(1.0, 1.6, n), 1)
    interactions = pairs.select(
        pl.format("7656119{}", pl.col("u") + 7_960_265_728).alias("user_id"),
        "game_id",
        event=pl.Series(np.where(play, "play", "purchase")),
        value=pl.Series(np.where(play, hours, np.nan)).fill_nan(None),
    )
    genres = pl.Series(["Action", "Adventure", "RPG", "Strategy", "Indie", "Simulation", "Sports", "Puzzle"])
    ids = np.arange(1, games + 1, dtype=np.int64)
    catalogue = pl.DataFrame(
        {
            "game_id": ids,
            "genre_a": genres.gather(rng.integers(0, len(genres), games)),
            "genre_b": genres.gather(rng.integers(0, len(genres), games)),
            "rating": np.round(rng.uniform(0, 5, games), 2),
            "released": pl.Series(rng.integers(3650, 3650 + 9000, games).astype(np.int32)).cast(pl.Date),
        }
    ).select(
        "game_id",
        pl.format("Game {}", pl.col("game_id")).alias("name"),
        pl.concat_list("genre_a", "genre_b").list.unique(maintain_order=True).alias("genres"),
        "rating",
        "released",
    )
    return interactions, catalogue


# -- measuring -----------------------------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (from /proc: no psutil needed)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


class Sampler:
    """Peak VmRSS of this process and of the largest process under each watched pid, per stage."""

    def __init__(self) -> None:
        self.watched: list[int] = []
        self.peak_self = 0
        self.peak_worker = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_self = max(self.peak_self, rss_bytes(os.getpid()))
            for pid in self.watched:
                self.peak_worker = max(self.peak_worker, *(rss_bytes(p) for p in descendants(pid)))

    def reset(self) -> None:
        self.peak_self = rss_bytes(os.getpid())
        self.peak_worker = 0

    def stop(self) -> None:
        self._stop.set()


RESULTS: list[dict[str, Any]] = []


@contextlib.contextmanager
def stage(sampler: Sampler, path: str, name: str, **extra: Any) -> Iterator[dict[str, Any]]:
    sampler.reset()
    row: dict[str, Any] = {"path": path, "stage": name, **extra}
    started = time.perf_counter()
    try:
        yield row
    finally:
        row["seconds"] = round(time.perf_counter() - started, 2)
        row["peak_rss_gb"] = round(sampler.peak_self / 2**30, 2)
        if sampler.watched:
            row["worker_peak_rss_gb"] = round(sampler.peak_worker / 2**30, 2)
        RESULTS.append(row)
        print(json.dumps(row), flush=True)


# -- the main location ---------------------------------------------------------------------------------------------


def materialize(defs: Any, instance: Any, name: str) -> Any:
    import dagster as dg

    job = defs.resolve_implicit_global_asset_job_def()
    config = {"ops": {name: {"config": STAGE_CONFIG[name]}}} if name in STAGE_CONFIG else {}
    result = job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey(name)], run_config=config)
    if not result.success:
        raise RuntimeError(f"stage {name} failed")
    return result


def timed_read(url: str, table: str) -> tuple[int, float]:
    from gamerec_assets.store import TableStore

    store = TableStore(url)
    started = time.perf_counter()
    frame = store.read(table)
    return frame.height, time.perf_counter() - started


def batch_rows(url: str) -> int:
    from gamerec_assets.store import TableStore

    with TableStore(url).engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT COUNT(*) FROM batch_recommendations").scalar() or 0)


def run_default(args: argparse.Namespace, work: Path, data: dict[str, str]) -> None:
    import dagster as dg

    home = work / "default_home"
    env = {
        "GAMEREC_HOME": str(home),
        "GAMEREC_CATALOG": f"file:{data['catalogue']}",
        "GAMEREC_INTERACTIONS": f"file:{data['interactions']}",
        "WANDB_MODE": "disabled",
    }
    os.environ.update(env)
    from gamerec_assets import backends
    from gamerec_assets.definitions import build_definitions
    from gamerec_assets.settings import StorageSettings

    defs = build_definitions(env)
    url = backends.tables(StorageSettings.from_env(env)).url
    sampler = Sampler()
    with dg.DagsterInstance.ephemeral() as instance:
        for name in MAIN_STAGES:
            with stage(sampler, "default", name) as row:
                materialize(defs, instance, name)
                if name == "batch_recommendations":
                    row["rows"] = batch_rows(url)
            if name == "user_logs":
                with stage(sampler, "default", "user_logs read-back (SQLite)") as row:
                    rows, seconds = timed_read(url, "user_logs")
                    row.update(rows=rows, rows_per_s=round(rows / seconds))
    sampler.stop()
    print(json.dumps({"path": "default", "process_max_rss_gb": round(max_rss_gb(), 2)}), flush=True)


# -- the Celery path -----------------------------------------------------------------------------------------------


def max_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise RuntimeError(f"{what}: not ready after {timeout} s")


def reset_services(env: dict[str, str]) -> None:
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS gamerec_bench")
        cur.execute("CREATE DATABASE gamerec_bench CHARACTER SET utf8mb4")
    conn.close()
    for command in (["add_vhost", VHOST], ["set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"]):
        subprocess.run(["rabbitmqctl", "-q", *command], capture_output=True, timeout=120, check=False)
    from kombu import Connection

    with Connection(BROKER) as conn, contextlib.suppress(Exception):
        conn.default_channel.queue_purge("dagster")


def start_worker(n: int, work: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    directory = work / f"worker-{n}"
    (directory / "dagster_home").mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", directory / "dagster_home" / "dagster.yaml")
    log = directory / "worker.log"
    full = {
        **os.environ,
        **env,
        "PYTHONPATH": str(ROOT),
        "DAGSTER_HOME": str(directory / "dagster_home"),
        "GAMEREC_THREADS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [sys.executable, "-m", "gamerec_assets.scale.worker", "-c", "1", "-n", f"bench{n}@%h"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=directory, env=full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return process, log


def step_figures(instance: Any, run_id: str, marker: str) -> dict[str, Any]:
    import dagster as dg

    seconds, pids = [], set()
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT):
        event = entry.dagster_event
        if event is not None and marker in (event.step_key or ""):
            meta = {k: v.value for k, v in event.step_output_data.metadata.items()}
            seconds.append(float(meta.get("seconds", 0)))
            pids.add(meta.get("worker_pid"))
    return {"steps": len(seconds), "step_seconds_max": max(seconds, default=0), "worker_pids": len(pids)}


def run_celery(args: argparse.Namespace, work: Path, data: dict[str, str]) -> None:
    import dagster as dg

    from gamerec_assets.backends import s3_client

    port = free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for key, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench")):
            os.environ.setdefault(key, value)
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

        def moto_up() -> bool:
            with contextlib.suppress(Exception):
                s3_client(endpoint).list_buckets()
                return True
            return False

        wait_for(moto_up, "moto server")
        bucket = f"gamerec-bench-{secrets.token_hex(3)}"
        s3_client(endpoint).create_bucket(Bucket=bucket)
        dagster_home = work / "celery_dagster_home"
        dagster_home.mkdir()
        shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
        env = {
            "GAMEREC_HOME": str(work / "celery_home"),
            "GAMEREC_CATALOG": f"file:{data['catalogue']}",
            "GAMEREC_INTERACTIONS": f"file:{data['interactions']}",
            "WANDB_MODE": "disabled",
            "GAMEREC_MYSQL_URL": MYSQL,
            "GAMEREC_S3_BUCKET": bucket,
            "AWS_ENDPOINT_URL": endpoint,
            "DAGSTER_HOME": str(dagster_home),
            "DAGSTER_MYSQL_HOST": "127.0.0.1",
            "DAGSTER_MYSQL_PORT": "3306",
            "DAGSTER_MYSQL_USER": "root",
            "DAGSTER_MYSQL_DB": "gamerec_bench",
            "GAMEREC_SCALE_EXECUTOR": "celery",
            "GAMEREC_SCALE_BLOCKS": str(args.blocks),
            "GAMEREC_CELERY_BROKER": BROKER,
        }
        reset_services(env)
        os.environ.update(env)
        from gamerec_assets.definitions import build_definitions

        sampler = Sampler()
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            defs = build_definitions(env)
            for name in MAIN_STAGES[:-1]:  # batch_recommendations: the sharded job below
                with stage(sampler, "celery", name):
                    materialize(defs, instance, name)
                if name == "user_logs":
                    with stage(sampler, "celery", "user_logs read-back (MariaDB)") as row:
                        rows, seconds = timed_read(MYSQL, "user_logs")
                        row.update(rows=rows, rows_per_s=round(rows / seconds))
            with stage(sampler, "celery", "start 2 workers"):
                started = [start_worker(n, work, env) for n in range(2)]
                workers = [p for p, _ in started]
                for _process, log in started:
                    wait_for(lambda log=log: " ready." in log.read_text(errors="replace"), f"worker {log}")
            sampler.watched = [p.pid for p in workers]
            fit = dg.build_reconstructable_job("gamerec_assets.scale.location", "fit_job")
            with stage(sampler, "celery", f"item_similarity_fit_job ({args.blocks} blocks)") as row:
                result = dg.execute_job(fit, instance)
                if not result.success:
                    raise RuntimeError("item_similarity_fit_job failed")
                row.update(step_figures(instance, result.run_id, "fit_block["))
            score = dg.build_reconstructable_job("gamerec_assets.scale.location", "score_job")
            config = {"ops": {"plan_shards": {"config": {"shards": args.shards}}}}
            with stage(sampler, "celery", f"batch_recommendations_sharded_job ({args.shards} shards)") as row:
                result = dg.execute_job(score, instance, run_config=config)
                if not result.success:
                    raise RuntimeError("batch_recommendations_sharded_job failed")
                row.update(step_figures(instance, result.run_id, "score_shard["))
                event = instance.get_latest_materialization_event(dg.AssetKey("batch_recommendations"))
                meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
                row.update(
                    rows=meta["dagster/row_count"].value,
                    publish_seconds=meta["publish_seconds"].value,
                    publish_rows_per_s=meta["publish_rows_per_s"].value,
                )
        sampler.stop()
        print(json.dumps({"path": "celery", "process_max_rss_gb": round(max_rss_gb(), 2)}), flush=True)
    finally:
        for process in [*workers, moto]:
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in [*workers, moto]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)


# -- driver --------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--games", type=int, default=50_000)
    parser.add_argument("--mean-history", type=float, default=12.5)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --users")
    parser.add_argument("--paths", default="default,celery")
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--workdir", default="", help="default: a fresh temporary folder, removed at the end")
    parser.add_argument("--path", default="", help=argparse.SUPPRESS)  # internal: run one path in this process
    args = parser.parse_args()
    users = int(args.users * args.scale)
    work = Path(args.workdir) if args.workdir else Path(os.environ.get("TMPDIR", "/tmp")) / f"million-{os.getpid()}"
    data = {"interactions": str(work / "interactions.parquet"), "catalogue": str(work / "catalogue.parquet")}
    if args.path:
        {"default": run_default, "celery": run_celery}[args.path](args, work, data)
        return
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    interactions, catalogue = synthetic_log(users, args.games, args.mean_history)
    interactions.write_parquet(data["interactions"])
    catalogue.write_parquet(data["catalogue"])
    print(
        f"data: {interactions['user_id'].n_unique():,} users x {args.games:,} games, {interactions.height:,} "
        f"interactions ({time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    del interactions, catalogue
    try:
        for path in args.paths.split(","):
            forwarded = ["--users", str(users), "--games", str(args.games), "--mean-history", str(args.mean_history)]
            forwarded += ["--blocks", str(args.blocks), "--shards", str(args.shards), "--workdir", str(work)]
            command = [sys.executable, __file__, *forwarded, "--path", path]
            code = subprocess.run(command, check=False).returncode
            print(f"path {path}: {'ok' if code == 0 else f'FAILED (exit {code})'}", flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
