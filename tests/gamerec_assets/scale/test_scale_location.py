"""The distributed fit (gamerec_assets.scale): every block partition, then the merge, equals one ItemCF.fit exactly."""

import os
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from dagster._core.definitions.reconstruct import ReconstructableJob

from gamerec_assets import backends
from gamerec_assets.recsys import ItemCF, build_matrix
from gamerec_assets.recsys.itemcf import item_blocks
from gamerec_assets.scale import FIT_JOB, arrays_csr, block_keys, build_scale_definitions, csr_arrays, read_merged
from gamerec_assets.scale.block_assets import (
    FitBlockConfig,
    ItemCFInputsConfig,
    PlanBlocksConfig,
    fit_block,
    item_cf_inputs,
    merge_blocks,
    plan_blocks,
)
from gamerec_assets.scale.location import scale_resources
from gamerec_assets.settings import Settings, StorageSettings

BLOCKS = 3


def synthetic_logs(users: int = 400, games: int = 70, seed: int = 5) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    game_ids = np.arange(1000, 1000 + games, 3)  # not 0..n: the matrix maps ids to columns
    popularity = 1.0 / np.arange(1, len(game_ids) + 1) ** 0.8
    popularity /= popularity.sum()
    lengths = rng.integers(1, 9, size=users)
    rows = np.repeat(np.arange(1, users + 1), lengths)
    cols = rng.choice(game_ids, size=len(rows), p=popularity)
    logs = pl.DataFrame({"user_id": rows, "game_id": cols}).unique().with_columns(weight=pl.lit(1.0))
    features = pl.DataFrame({"game_id": game_ids, "name": [f"g{g}" for g in game_ids]})
    return logs, features


def assert_same_csr(a: sp.csr_matrix, b: sp.csr_matrix) -> None:
    assert a.shape == b.shape
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)  # exact: blocks are computed row by row, in a fixed order


@pytest.fixture
def scale_env(gamerec_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"GAMEREC_HOME": str(gamerec_home), "GAMEREC_SCALE_BLOCKS": str(BLOCKS)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the multiprocess run's step processes read the same environment
    monkeypatch.delenv("GAMEREC_MYSQL_URL", raising=False)
    monkeypatch.delenv("GAMEREC_S3_BUCKET", raising=False)
    return env


def block_metadata(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, object]]:
    """The output metadata of every `fit_block` step of a run, by step key."""
    return step_output_metadata(instance, run_id, "fit_block[")


def step_output_metadata(instance: dg.DagsterInstance, run_id: str, marker: str) -> dict[str, dict[str, object]]:
    """The output metadata of every step of a run whose key contains `marker`, by step key."""
    found: dict[str, dict[str, object]] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT):
        event = entry.dagster_event
        if event is not None and marker in (event.step_key or ""):
            metadata = event.step_output_data.metadata
            found[str(event.step_key)] = {name: value.value for name, value in metadata.items()}
    return found


def fit_job_from_module() -> ReconstructableJob:
    return job_from_module("fit_job")


def job_from_module(entry_point: str) -> ReconstructableJob:
    """A job of the scale location as a run launcher or a worker rebuilds it, for this process's current environment.

    Dagster keeps the last job built from a pointer within a process; the job depends on the environment (executor),
    which tests change between runs, so the cache is cleared first. A real process has one environment.
    """
    ReconstructableJob.get_repository_definition.cache_clear()  # type: ignore[attr-defined]
    ReconstructableJob.get_definition.cache_clear()  # type: ignore[attr-defined]
    return dg.build_reconstructable_job("gamerec_assets.scale.location", entry_point)


def merged_asset(defs: dg.Definitions) -> dg.AssetsDefinition:
    return next(
        a
        for a in defs.assets or []
        if isinstance(a, dg.AssetsDefinition) and a.key == dg.AssetKey("item_similarity_merged")
    )


def write_logs(env: dict[str, str], seed: int = 5) -> tuple[pl.DataFrame, pl.DataFrame]:
    logs, features = synthetic_logs(seed=seed)
    tables = backends.table_store(StorageSettings.from_env(env))
    tables.write("user_logs", logs)
    tables.write("game_features", features)
    return logs, features


@pytest.mark.parametrize(("similarity", "blocks"), [("cosine", BLOCKS), ("jaccard", 1)])
def test_the_block_steps_merge_to_the_single_fit(scale_env: dict[str, str], similarity: str, blocks: int) -> None:
    logs, features = write_logs(scale_env)
    defs = build_scale_definitions(scale_env)
    run_config = {
        "ops": {
            "item_cf_inputs": {"config": {"similarity": similarity, "neighbors": 12}},
            "item_similarity_merged": {"ops": {"plan_blocks": {"config": {"blocks": blocks}}}},
        }
    }
    result = defs.resolve_job_def(FIT_JOB).execute_in_process(run_config=run_config)
    assert result.success
    block_steps = {e.step_key for e in result.get_step_success_events() if ".fit_block[" in (e.step_key or "")}
    assert block_steps == {f"item_similarity_merged.fit_block[{key}]" for key in block_keys(blocks)}

    item_ids, merged = read_merged(scale_env)
    expected_ids = np.union1d(features["game_id"].to_numpy(), logs["game_id"].to_numpy())
    np.testing.assert_array_equal(item_ids, expected_ids)
    single = ItemCF(similarity, neighbors=12).fit(build_matrix(logs, expected_ids).matrix).similarity
    assert merged.nnz > 0
    assert_same_csr(merged, single)


@pytest.mark.integration
def test_the_block_steps_run_in_parallel_processes_with_the_multiprocess_executor(scale_env: dict[str, str]) -> None:
    logs, _ = write_logs(scale_env, seed=9)
    # One run, rebuilt from the module in each step process (build_reconstructable_job), as a run launcher would.
    job = fit_job_from_module()
    dagster_home = Path(scale_env["GAMEREC_HOME"]) / "dagster"
    dagster_home.mkdir()
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        result = dg.execute_job(job, instance)
        assert result.success
        pids = {key: meta["worker_pid"] for key, meta in block_metadata(instance, result.run_id).items()}
        assert len(pids) == BLOCKS
        assert os.getpid() not in set(pids.values())  # every block ran in a step process, not in this one

    item_ids, merged = read_merged(scale_env)
    single = ItemCF("cosine", neighbors=100).fit(build_matrix(logs, item_ids).matrix).similarity
    assert_same_csr(merged, single)


def test_the_block_functions_called_alone_merge_to_the_single_fit(scale_env: dict[str, str]) -> None:
    """The asset and op bodies of the fit, called directly in order (blocks fitted out of order), give the matrix
    of one ItemCF.fit; the graph asset is only their wiring."""
    logs, features = write_logs(scale_env, seed=7)
    tables = scale_resources(Settings.from_env(scale_env))["tables"]
    inputs = item_cf_inputs(ItemCFInputsConfig(similarity="jaccard", neighbors=12), tables)
    arrays = inputs.value
    matrix = build_matrix(logs, arrays["item_ids"]).matrix
    assert inputs.metadata["interactions"].value == matrix.nnz
    np.testing.assert_array_equal(arrays["item_ids"], np.union1d(features["game_id"], logs["game_id"]))
    specs = list(plan_blocks(PlanBlocksConfig(blocks=3), arrays))
    assert [s.mapping_key for s in specs] == block_keys(3)
    assert [(int(s.value["start"]), int(s.value["stop"])) for s in specs] == item_blocks(matrix.shape[1], 3)
    context = dg.build_op_context()
    blocks = [fit_block(context, FitBlockConfig(), arrays, s.value) for s in reversed(specs)]
    assert all(str(b.value["fingerprint"]) == str(arrays["fingerprint"]) for b in blocks)
    assert [b.metadata["items"].value for b in blocks] == [
        f"[{s.value['start']}, {s.value['stop']})" for s in specs[::-1]
    ]
    merged = merge_blocks([b.value for b in blocks], arrays)
    assert_same_csr(arrays_csr(merged.value), ItemCF("jaccard", neighbors=12).fit(matrix).similarity)
    assert (
        merged.metadata["blocks"].value == 3 and merged.metadata["neighbour_pairs"].value == merged.value["data"].size
    )
    with pytest.raises(dg.Failure, match="blocks must be >= 1"):
        list(plan_blocks(PlanBlocksConfig(blocks=0), arrays))


def test_merge_refuses_blocks_of_other_inputs() -> None:
    """Blocks that do not tile the items, or come from other inputs, never make a merged matrix."""
    inputs = {"shape": np.asarray([10, 4]), "fingerprint": np.asarray("a"), "item_ids": np.arange(4)}
    block = {
        **csr_arrays(sp.csr_matrix((4, 4))),
        "start": np.asarray(0),
        "stop": np.asarray(4),
        "blocks": np.asarray(1),
    }
    assert merge_blocks([{**block, "fingerprint": np.asarray("a")}], inputs).value["item_ids"].size == 4
    with pytest.raises(dg.Failure, match="other inputs"):
        merge_blocks([{**block, "fingerprint": np.asarray("b")}], inputs)
    with pytest.raises(dg.Failure, match="do not tile"):
        merge_blocks([{**block, "stop": np.asarray(3), "fingerprint": np.asarray("a")}], inputs)
    with pytest.raises(dg.Failure, match="block counts"):
        merge_blocks([{**block, "blocks": np.asarray(2), "fingerprint": np.asarray("a")}], inputs)


def test_executor_and_block_count_come_from_the_environment() -> None:
    from gamerec_assets.scale import MULTIPROCESS, scale_executor
    from gamerec_assets.settings import ScaleSettings

    assert scale_executor(ScaleSettings.from_env({}).executor) is MULTIPROCESS
    with pytest.raises(ValueError, match="GAMEREC_SCALE_EXECUTOR"):
        ScaleSettings.from_env({"GAMEREC_SCALE_EXECUTOR": "slurm"})
    with pytest.raises(ValueError, match="GAMEREC_SCALE_EXECUTOR"):
        scale_executor("slurm")
    assert ScaleSettings.from_env({}).blocks == 8 and ScaleSettings.from_env({"GAMEREC_SCALE_BLOCKS": "3"}).blocks == 3
    with pytest.raises(ValueError, match="GAMEREC_SCALE_BLOCKS"):
        ScaleSettings.from_env({"GAMEREC_SCALE_BLOCKS": "0"})
    with pytest.raises(ValueError, match="GAMEREC_SCALE_BLOCKS"):
        build_scale_definitions({"GAMEREC_SCALE_BLOCKS": "0"})
    defs = build_scale_definitions({"GAMEREC_SCALE_BLOCKS": "5"})
    plan_blocks = merged_asset(defs).node_def.node_dict["plan_blocks"].definition  # type: ignore[union-attr]
    assert plan_blocks.config_schema.config_type.fields["blocks"].default_value == 5  # the run config's default


def test_both_locations_share_the_chosen_backends(gamerec_home: Path) -> None:
    """The scale location's tables and artifacts are the main location's (one build_resources for both)."""
    from gamerec_assets.definitions import build_definitions
    from gamerec_assets.resources import S3ArtifactsResource

    env = {
        "GAMEREC_HOME": str(gamerec_home),
        "GAMEREC_MYSQL_URL": "mysql+pymysql://root@127.0.0.1:3306/x",
        "GAMEREC_S3_BUCKET": "bucket",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }
    main, scale = build_definitions(env).resources, build_scale_definitions(env).resources
    assert set(scale) == {"tables", "artifacts", "scale_io_manager"}
    assert isinstance(scale["artifacts"], S3ArtifactsResource) and scale["artifacts"] == main["artifacts"]
    assert scale["tables"] == main["tables"]
    assert scale["scale_io_manager"].artifacts == main["artifacts"]


@pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")
def test_the_celery_executor_and_its_workers_share_one_configuration(
    gamerec_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acks late on both sides; without GAMEREC_CELERY_BROKER the run (and a worker) stop with an error naming it."""
    from gamerec_assets.scale import CELERY_APP_CONFIG, celery_config, scale_executor

    monkeypatch.setenv("GAMEREC_CELERY_BROKER", "pyamqp://guest:guest@127.0.0.1:5672//")  # for the module's `app`
    from gamerec_assets.scale.worker import worker_app

    assert scale_executor("celery").name == "celery"
    app = worker_app(celery_config("pyamqp://guest:guest@127.0.0.1:5672//"))
    assert app.conf.broker_url == "pyamqp://guest:guest@127.0.0.1:5672//"
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost and CELERY_APP_CONFIG["task_acks_late"]
    assert app.conf.worker_prefetch_multiplier == 1
    assert {"execute_plan", "execute_job", "resume_job"} <= set(app.tasks)

    monkeypatch.delenv("GAMEREC_CELERY_BROKER", raising=False)
    with pytest.raises(Exception, match="GAMEREC_CELERY_BROKER"):
        worker_app()
    monkeypatch.setenv("GAMEREC_HOME", str(gamerec_home))
    monkeypatch.setenv("GAMEREC_SCALE_EXECUTOR", "celery")
    job = fit_job_from_module()
    with (
        dg.instance_for_test() as instance,
        pytest.raises(Exception, match="GAMEREC_CELERY_BROKER"),
    ):
        dg.execute_job(job, instance)
