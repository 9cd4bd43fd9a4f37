"""batch_recommendations scored by user shard (gamerec_assets.scale.batch_shards) equals the main asset's table."""

from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
import pytest

from gamerec_assets import backends
from gamerec_assets.assets.serving import recommendation_chunks
from gamerec_assets.io_managers import FINGERPRINT, ContentFingerprint
from gamerec_assets.recsys.served_model import ServingModel
from gamerec_assets.recsys.training import TrainingParams, fit_artifact
from gamerec_assets.resources.from_settings import artifacts_resource
from gamerec_assets.scale import SCORE_JOB, build_scale_definitions, user_shards
from gamerec_assets.scale.batch_shards import (
    BATCH_KEY,
    PlanShardsConfig,
    ScoreShardConfig,
    plan_shards,
    publish_batch,
    read_frame,
    score_shard,
)
from gamerec_assets.scale.location import scale_resources
from gamerec_assets.settings import Settings, StorageSettings
from tests.gamerec_assets.scale.test_scale_location import synthetic_logs


def seed_model(
    env: dict[str, str], logs: pl.DataFrame, features: pl.DataFrame, params: dict[str, Any] | None = None
) -> ServingModel:
    """user_logs and game_features in the tables, a fitted model promoted in the registry (default: fixed ItemCF)."""
    tables = backends.table_store(StorageSettings.from_env(env))
    tables.write("user_logs", logs)
    tables.write("game_features", features)
    registry = artifacts_resource(Settings.from_env(env).storage).registry()
    artifact, _ = fit_artifact(logs, features, params or TrainingParams(strategy="fixed").fixed_model())
    version = registry.publish(artifact)
    registry.promote(version, reason="test")
    return ServingModel(registry.load(version))


def single_process_table(model: ServingModel, logs: pl.DataFrame, k: int) -> pl.DataFrame:
    """What the main location's asset publishes (its own chunking), read back in primary-key order."""
    return pl.concat(list(recommendation_chunks(model, logs, k, 50_000))).sort(["user_id", "rank"])


def score_config(shards: int, k: int, hold_s: float = 0.0) -> dict[str, Any]:
    return {
        "ops": {
            "plan_shards": {"config": {"shards": shards, "k": k, "chunk_users": 7}},
            "score_shard": {"config": {"hold_s": hold_s}},
        }
    }


def assert_published_like_the_main_asset(env: dict[str, str], model: ServingModel, logs: pl.DataFrame) -> None:
    table = backends.table_store(StorageSettings.from_env(env)).read("batch_recommendations")
    assert table.height > 0
    assert table.equals(single_process_table(model, logs, 5))
    seen = table.join(logs.select(pl.col("user_id").cast(pl.Utf8), "game_id"), on=["user_id", "game_id"], how="semi")
    assert seen.height == 0


def test_user_shards_are_contiguous_sorted_user_ranges() -> None:
    logs = pl.DataFrame({"user_id": ["b", "a", "c", "a", "d", "b"], "game_id": [1, 2, 3, 4, 5, 6]})
    shards = user_shards(logs, 3)
    assert [s["user_id"].unique(maintain_order=True).to_list() for s in shards] == [["a", "b"], ["c"], ["d"]]
    assert sum(s.height for s in shards) == logs.height
    assert len(user_shards(logs, 10)) == 4  # never an empty shard


MF_PARAMS = {
    "model": "ALS",
    "factors": 8,
    "regularization": 2.0,
    "alpha": 10.0,
    "iterations": 5,
    "serving_neighbors": 20,
}


@pytest.mark.parametrize("params", [None, MF_PARAMS], ids=["item-item", "matrix-factorisation"])
def test_the_sharded_table_equals_the_single_process_one(
    gamerec_home: Path, monkeypatch: pytest.MonkeyPatch, params: dict[str, Any] | None
) -> None:
    env = {"GAMEREC_HOME": str(gamerec_home)}
    monkeypatch.delenv("GAMEREC_MYSQL_URL", raising=False)
    monkeypatch.delenv("GAMEREC_S3_BUCKET", raising=False)
    logs, features = synthetic_logs(users=300, games=70, seed=4)
    logs = logs.with_columns(pl.format("u{}", pl.col("user_id")).alias("user_id"))  # text ids, as user_logs has
    model = seed_model(env, logs, features, params)
    assert (model.fold is not None) == (params is not None)
    defs = build_scale_definitions(env)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(SCORE_JOB).execute_in_process(run_config=score_config(4, 5), instance=instance)
        assert result.success
        shard_steps = {e.step_key for e in result.get_step_success_events() if "score_shard[" in (e.step_key or "")}
        assert shard_steps == {f"score_shard[{key:03d}]" for key in range(4)}
        materialization = instance.get_latest_materialization_event(dg.AssetKey("batch_recommendations"))
        assert materialization is not None and materialization.asset_materialization is not None
        recorded = materialization.asset_materialization.metadata
    assert_published_like_the_main_asset(env, model, logs)
    table = backends.table_store(StorageSettings.from_env(env)).read("batch_recommendations")
    assert recorded[FINGERPRINT].value == ContentFingerprint.of(table)  # the table IO manager's lineage check holds
    assert recorded["shards"].value == 4 and recorded["model_version"].value == model.version


def test_the_shard_functions_called_alone_publish_the_main_table(
    gamerec_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """plan_shards, score_shard (shards scored out of order) and publish_batch called directly, as the job's ops
    call them, publish the main asset's table; their refusals name what is wrong."""
    env = {"GAMEREC_HOME": str(gamerec_home)}
    monkeypatch.delenv("GAMEREC_MYSQL_URL", raising=False)
    monkeypatch.delenv("GAMEREC_S3_BUCKET", raising=False)
    resources = scale_resources(Settings.from_env(env))
    tables, artifacts = resources["tables"], resources["artifacts"]
    logs, features = synthetic_logs(users=200, games=60, seed=6)
    logs = logs.with_columns(pl.format("u{}", pl.col("user_id")).alias("user_id"))
    with dg.instance_for_test() as instance:
        context = dg.build_op_context(instance=instance)
        tables.store().write("user_logs", logs)
        with pytest.raises(dg.Failure, match="no production model"):
            list(plan_shards(context, PlanShardsConfig(), tables, artifacts))
        model = seed_model(env, logs, features)
        with pytest.raises(dg.Failure, match="shards must be >= 1"):
            list(plan_shards(context, PlanShardsConfig(shards=0), tables, artifacts))
        specs = list(plan_shards(context, PlanShardsConfig(shards=3, k=5, chunk_users=7), tables, artifacts))
        assert [s.mapping_key for s in specs] == ["000", "001", "002"]
        assert {str(s.value["version"]) for s in specs} == {model.version}
        histories = [read_frame(artifacts.store(), str(s.value["history"])) for s in specs]
        assert (
            pl.concat(histories)
            .sort("user_id", "game_id")
            .equals(logs.select("user_id", "game_id").sort("user_id", "game_id"))
        )
        scored = [score_shard(context, ScoreShardConfig(), artifacts, s.value).value for s in reversed(specs)]
        assert sum(int(s["rows"]) for s in scored) > 0
        with pytest.raises(dg.Failure, match=r"shards \[0, 2\] of counts \[3\]"):
            publish_batch(context, tables, artifacts, [scored[0], scored[2]])
        with pytest.raises(dg.Failure, match="several model versions"):
            publish_batch(context, tables, artifacts, [*scored[:2], {**scored[2], "version": np.asarray("v0")}])
        published = publish_batch(context, tables, artifacts, scored)
        tables.store().write("user_logs", logs.clear())
        with pytest.raises(dg.Failure, match="user_logs has no users"):
            list(plan_shards(context, PlanShardsConfig(), tables, artifacts))
        tables.store().write("user_logs", logs)
    assert published.asset_key == BATCH_KEY
    assert published.metadata["shards"].value == 3 and published.metadata["model_version"].value == model.version
    assert_published_like_the_main_asset(env, model, logs)
    table = backends.table_store(StorageSettings.from_env(env)).read("batch_recommendations")
    assert published.metadata[FINGERPRINT].value == ContentFingerprint.of(table)
