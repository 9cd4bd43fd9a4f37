"""batch_recommendations alone, from a promoted model in a tmp registry, with its exclude-seen check."""

import dagster as dg
import polars as pl
import pytest

from gamerec_assets.assets.serving import (
    BatchRecommendationsConfig,
    batch_recommendations,
    batch_recommendations_exclude_seen,
)
from gamerec_assets.recsys.training import TrainingParams, fit_artifact
from gamerec_assets.resources.storage import LocalArtifactsResource, TablesResource
from gamerec_assets.store.forgotten_users import ForgottenUsers


def test_batch_recommendations_streams_top_k_per_user(
    logs: pl.DataFrame, features: pl.DataFrame, artifacts: LocalArtifactsResource, no_events: TablesResource
) -> None:
    registry = artifacts.registry()
    artifact, _ = fit_artifact(logs, features, TrainingParams(strategy="fixed").fixed_model())
    version = registry.publish(artifact)
    registry.promote(version, reason="test")
    out = batch_recommendations(
        dg.build_asset_context(), BatchRecommendationsConfig(k=5, chunk_users=7), logs, features, artifacts, no_events
    )
    table = pl.concat(list(out.value.chunks()))
    assert table["user_id"].n_unique() == logs["user_id"].n_unique()
    assert table.group_by("user_id").len()["len"].to_list() == [5] * logs["user_id"].n_unique()
    assert set(table["model_version"]) == {version} and out.metadata["model_version"].value == version
    assert batch_recommendations_exclude_seen(table, logs).passed
    seen = table.head(1).select("user_id", "game_id")
    assert not batch_recommendations_exclude_seen(table, pl.concat([logs.select("user_id", "game_id"), seen])).passed


def test_batch_recommendations_leave_out_players_forgotten_since_user_logs(
    logs: pl.DataFrame, features: pl.DataFrame, artifacts: LocalArtifactsResource, tmp_path
) -> None:
    registry = artifacts.registry()
    artifact, _ = fit_artifact(logs, features, TrainingParams(strategy="fixed").fixed_model())
    registry.promote(registry.publish(artifact), reason="test")
    tables = TablesResource(url=f"sqlite:///{tmp_path / 'gamerec.db'}")
    gone = str(logs["user_id"][0])
    ForgottenUsers(tables.store()).forget(gone)
    out = batch_recommendations(
        dg.build_asset_context(), BatchRecommendationsConfig(k=5), logs, features, artifacts, tables
    )
    table = pl.concat(list(out.value.chunks()))
    assert gone not in table["user_id"].cast(pl.Utf8).to_list()
    assert table["user_id"].n_unique() == logs["user_id"].n_unique() - 1
    assert out.metadata["forgotten_rows"].value == logs.filter(pl.col("user_id").cast(pl.Utf8) == gone).height > 0


def test_batch_recommendations_without_a_production_model_fails(
    logs: pl.DataFrame, features: pl.DataFrame, artifacts: LocalArtifactsResource, no_events: TablesResource
) -> None:
    with pytest.raises(dg.Failure, match="no production model"):
        batch_recommendations(
            dg.build_asset_context(), BatchRecommendationsConfig(), logs, features, artifacts, no_events
        )
