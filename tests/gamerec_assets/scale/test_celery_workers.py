"""The fit on a real distributed engine: Celery workers (separate processes) on RabbitMQ, state on MariaDB + S3.

The test process is the run's orchestrator (the celery executor inside a normal run); every step is a Celery task
taken by one of two workers this test starts itself, each with its own working directory. Tables and Dagster's
instance live on MariaDB, objects on moto's S3 server: nothing is shared through this process's memory or disk.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from gamerec_assets import backends
from gamerec_assets.recsys import ItemCF, build_matrix
from gamerec_assets.scale import read_merged
from gamerec_assets.settings import StorageSettings
from tests.conftest import CeleryWorker, CeleryWorkers
from tests.gamerec_assets.scale.test_scale_location import (
    assert_same_csr,
    block_metadata,
    fit_job_from_module,
    job_from_module,
    step_output_metadata,
    synthetic_logs,
)

ROOT = Path(__file__).resolve().parents[3]
# dagster-celery's executor registers its task again for every step it submits; the first registration is used.
pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")


@pytest.fixture
def cluster_env(
    mysql_db: dict[str, Any],
    s3_bucket: dict[str, str],
    rabbitmq_broker: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """The environment every machine gets: shared tables, instance and bucket, the celery executor, 1 thread each."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        "GAMEREC_HOME": str(tmp_path / "home"),
        "GAMEREC_MYSQL_URL": str(mysql_db["url"]),
        "GAMEREC_S3_BUCKET": s3_bucket["bucket"],
        "AWS_ENDPOINT_URL": s3_bucket["endpoint"],
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_MYSQL_HOST": str(mysql_db["host"]),
        "DAGSTER_MYSQL_PORT": str(mysql_db["port"]),
        "DAGSTER_MYSQL_USER": "root",
        "DAGSTER_MYSQL_DB": str(mysql_db["db"]),
        "GAMEREC_SCALE_EXECUTOR": "celery",
        "GAMEREC_SCALE_BLOCKS": "4",
        "GAMEREC_THREADS": "1",
        "GAMEREC_CELERY_BROKER": rabbitmq_broker,
    }
    for key, value in env.items():  # this process rebuilds the job from the module too (the orchestrator)
        monkeypatch.setenv(key, value)
    return env


def fit_config(blocks: int, hold_s: float) -> dict[str, Any]:
    inner = {"plan_blocks": {"config": {"blocks": blocks}}, "fit_block": {"config": {"hold_s": hold_s}}}
    return {"ops": {"item_cf_inputs": {"config": {"neighbors": 20}}, "item_similarity_merged": {"ops": inner}}}


def seed_tables(env: dict[str, str]) -> Any:
    logs, features = synthetic_logs(users=3000, games=120, seed=11)
    tables = backends.table_store(StorageSettings.from_env(env))
    tables.write("user_logs", logs)
    tables.write("game_features", features)
    return logs


def assert_equals_single_fit(env: dict[str, str], logs: Any) -> None:
    item_ids, merged = read_merged(env)
    single = ItemCF("cosine", neighbors=20).fit(build_matrix(logs, item_ids).matrix).similarity
    assert merged.nnz > 0
    assert_same_csr(merged, single)


def step_starts(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [
        str(e.dagster_event.step_key)
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
        if e.dagster_event is not None
    ]


def test_the_block_steps_of_one_run_spread_over_two_workers(
    cluster_env: dict[str, str], celery_workers: CeleryWorkers
) -> None:
    logs = seed_tables(cluster_env)
    workers = celery_workers.start(cluster_env, 2)
    with dg.DagsterInstance.from_config(cluster_env["DAGSTER_HOME"]) as instance:
        result = dg.execute_job(fit_job_from_module(), instance, run_config=fit_config(blocks=4, hold_s=1.0))
        assert result.success
        blocks = block_metadata(instance, result.run_id)
        assert len(blocks) == 4
        assert all(meta["worker_pid"] != os.getpid() for meta in blocks.values())
        # both workers did blocks, each in its own directory (its own process); neither was this process
        assert {meta["worker_dir"] for meta in blocks.values()} == {str(w.directory) for w in workers}
        assert {meta["worker_host"] for meta in blocks.values()} == {os.uname().nodename}
        worker_events = [
            e
            for e in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
            if "in celery worker" in e.message
        ]
        assert len(worker_events) == 4 + 3  # every step went through a worker: inputs, plan, 4 blocks, merge
    assert_equals_single_fit(cluster_env, logs)


def wait_for_block_start(
    instance: dg.DagsterInstance, workers: list[CeleryWorker], timeout: float = 120
) -> CeleryWorker:
    """The worker that has just started a block: found by the directory its `fit_block` step logs before holding."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in instance.get_runs():
            for entry in instance.all_logs(run.run_id):
                if "fit_block[" in (entry.step_key or "") and entry.user_message.startswith("block ["):
                    return next(w for w in workers if entry.user_message.endswith(f" in {w.directory}"))
        time.sleep(0.2)
    raise AssertionError("no block started")


def test_killing_a_worker_in_the_middle_of_a_block_still_ends_in_the_right_matrix(
    cluster_env: dict[str, str], celery_workers: CeleryWorkers
) -> None:
    logs = seed_tables(cluster_env)
    workers = celery_workers.start(cluster_env, 2)
    outcome: dict[str, Any] = {}

    def orchestrate() -> None:
        with dg.DagsterInstance.from_config(cluster_env["DAGSTER_HOME"]) as instance:
            result = dg.execute_job(fit_job_from_module(), instance, run_config=fit_config(blocks=3, hold_s=3.0))
            outcome.update(success=result.success, run_id=result.run_id)

    # The watcher's instance first: it creates the instance's tables, which two instances must not do at once.
    with dg.DagsterInstance.from_config(cluster_env["DAGSTER_HOME"]) as watcher:
        orchestrator = threading.Thread(target=orchestrate, daemon=True)
        orchestrator.start()
        victim = wait_for_block_start(watcher, workers)
        victim.kill()  # SIGKILL, main process and pool, while the block holds: its task is not acknowledged
        survivor = next(w for w in workers if w is not victim)
        orchestrator.join(timeout=150)
        assert not orchestrator.is_alive(), "the run did not finish"
        assert outcome["success"]
        run_id = outcome["run_id"]
        blocks = block_metadata(watcher, run_id)
        assert len(blocks) == 3
        starts = step_starts(watcher, run_id)
        restarted = [key for key in blocks if starts.count(key) == 2]
        assert len(restarted) == 1, starts  # the killed worker's block was delivered again...
        assert blocks[restarted[0]]["worker_dir"] == str(survivor.directory)  # ...and finished by the other worker
        assert all(starts.count(key) == 1 for key in set(starts) - set(restarted))
    assert_equals_single_fit(cluster_env, logs)


def test_the_user_shards_of_one_scoring_run_spread_over_two_workers(
    cluster_env: dict[str, str], celery_workers: CeleryWorkers
) -> None:
    """batch_recommendations scored shard by shard on two workers equals the single-process table exactly."""
    from tests.gamerec_assets.scale.test_batch_shards import (
        assert_published_like_the_main_asset,
        score_config,
        seed_model,
    )

    logs, features = synthetic_logs(users=2000, games=90, seed=12)
    model = seed_model(cluster_env, logs, features)
    workers = celery_workers.start(cluster_env, 2)
    with dg.DagsterInstance.from_config(cluster_env["DAGSTER_HOME"]) as instance:
        job = job_from_module("score_job")
        result = dg.execute_job(job, instance, run_config=score_config(shards=4, k=5, hold_s=1.0))
        assert result.success
        shards = step_output_metadata(instance, result.run_id, "score_shard[")
        assert len(shards) == 4
        assert all(meta["worker_pid"] != os.getpid() for meta in shards.values())
        assert {meta["worker_dir"] for meta in shards.values()} == {str(w.directory) for w in workers}
    assert_published_like_the_main_asset(cluster_env, model, logs)
