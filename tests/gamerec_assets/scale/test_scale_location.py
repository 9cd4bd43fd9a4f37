"""The distributed fit (gamerec_assets.scale): every block partition, then the merge, equals one ItemCF.fit exactly."""

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from gamerec_assets.recsys import ItemCF, build_matrix
from gamerec_assets.scale import build_scale_definitions, partition_keys, read_merged
from gamerec_assets.settings import StorageSettings

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


@pytest.mark.parametrize("similarity", ["cosine", "jaccard"])
def test_blocks_merge_to_the_single_fit(scale_env: dict[str, str], similarity: str) -> None:
    logs, features = synthetic_logs()
    tables = StorageSettings.from_env(scale_env).table_store()
    tables.write("user_logs", logs)
    tables.write("game_features", features)
    defs = build_scale_definitions(scale_env)
    assets = list(defs.assets or [])
    resources = defs.resources or {}
    run_config = {"ops": {"item_cf_inputs": {"config": {"similarity": similarity, "neighbors": 12}}}}

    assert dg.materialize(assets, selection=["item_cf_inputs"], resources=resources, run_config=run_config).success
    keys = partition_keys(BLOCKS)
    for key in keys:  # what a backfill does: one run per partition
        result = dg.materialize(assets, selection=["item_similarity_blocks"], resources=resources, partition_key=key)
        assert result.success
    assert dg.materialize(assets, selection=["item_similarity_merged"], resources=resources).success

    item_ids, merged = read_merged(scale_env)
    expected_ids = np.union1d(features["game_id"].to_numpy(), logs["game_id"].to_numpy())
    np.testing.assert_array_equal(item_ids, expected_ids)
    single = ItemCF(similarity, neighbors=12).fit(build_matrix(logs, expected_ids).matrix).similarity
    assert merged.nnz > 0
    assert_same_csr(merged, single)


def test_a_block_runs_out_of_process_with_the_multiprocess_executor(scale_env: dict[str, str]) -> None:
    logs, features = synthetic_logs(seed=9)
    tables = StorageSettings.from_env(scale_env).table_store()
    tables.write("user_logs", logs)
    tables.write("game_features", features)
    defs = build_scale_definitions(scale_env)
    assets, resources = list(defs.assets or []), defs.resources or {}
    assert dg.materialize(assets, selection=["item_cf_inputs"], resources=resources).success
    keys = partition_keys(BLOCKS)
    for key in keys[:-1]:
        assert dg.materialize(assets, selection=["item_similarity_blocks"], resources=resources, partition_key=key)

    # The last block in a separate process, as a run launcher would start it: the job is rebuilt from the module
    # (build_reconstructable_job) and the step runs under the location's multiprocess executor.
    job = dg.build_reconstructable_job("gamerec_assets.scale", "blocks_job")
    dagster_home = Path(scale_env["GAMEREC_HOME"]) / "dagster"
    dagster_home.mkdir()
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        result = dg.execute_job(job, instance, tags={"dagster/partition": keys[-1]})
        assert result.success
        events = instance.all_logs(result.run_id)
        started = [e for e in events if e.dagster_event and e.dagster_event.event_type_value == "STEP_WORKER_STARTED"]
        assert started, "the step did not run in a worker process"
        materialized = result.get_asset_materialization_events()
        assert [e.partition for e in materialized] == [keys[-1]]

    assert dg.materialize(assets, selection=["item_similarity_merged"], resources=resources).success
    item_ids, merged = read_merged(scale_env)
    single = ItemCF("cosine", neighbors=100).fit(build_matrix(logs, item_ids).matrix).similarity
    assert_same_csr(merged, single)


def test_merge_refuses_blocks_of_other_inputs(scale_env: dict[str, str]) -> None:
    defs = build_scale_definitions(scale_env)
    assets, resources = list(defs.assets or []), defs.resources or {}
    tables = StorageSettings.from_env(scale_env).table_store()
    for seed in (1, 2):
        logs, features = synthetic_logs(seed=seed)
        tables.write("user_logs", logs)
        tables.write("game_features", features)
        assert dg.materialize(assets, selection=["item_cf_inputs"], resources=resources).success
        keys = partition_keys(BLOCKS) if seed == 1 else partition_keys(BLOCKS)[:1]
        for key in keys:
            assert dg.materialize(assets, selection=["item_similarity_blocks"], resources=resources, partition_key=key)
    # blocks 001 and 002 still come from the first logs
    result = dg.materialize(assets, selection=["item_similarity_merged"], resources=resources, raise_on_error=False)
    assert not result.success


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
    job = defs.resolve_job_def("item_similarity_blocks_job")
    assert job.partitions_def is not None and job.partitions_def.get_partition_keys() == partition_keys(5)


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
