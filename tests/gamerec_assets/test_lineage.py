"""Overlapping runs keep their own lineage: every step reads the version its own run produced.

The overlap is real and deterministic: test-only subclasses of the IO managers let a "run B" act, through the real
IO manager, registry and Dagster instance (no mocks of storage), at the worst moment of run A: right after A stored
an artifact and before A's downstream steps read it, B publishes its own complete version and records its
materialization; right before A's batch table is made, B promotes its model.
"""

from dataclasses import replace
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from gamerec_assets import backends
from gamerec_assets.definitions import build_definitions
from gamerec_assets.io_managers import ArtifactIOManager, RawPages, TableIOManager
from gamerec_assets.recsys.model_artifact import ModelArtifact
from gamerec_assets.resources.storage import ArtifactsResource
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store import ModelRegistry

RUN_B = "concurrent-run-b"


def metadata_of(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    return next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == asset
    )


def store_as_run_b(manager: ArtifactIOManager, instance: dg.DagsterInstance, key: dg.AssetKey, obj: object) -> str:
    """What run B's step does with its output: the IO manager stores it, the instance records the materialization."""
    context = dg.build_output_context(asset_key=key, run_id=RUN_B, step_key=key.path[-1], instance=instance)
    ArtifactIOManager.handle_output(manager, context, obj)  # type: ignore[arg-type]
    metadata = {**context.consume_logged_metadata(), "written_by": RUN_B}
    instance.report_runless_asset_event(dg.AssetMaterialization(key, metadata=metadata))
    return str(metadata["version"].value)


def b_version_of(obj: ModelArtifact | RawPages) -> ModelArtifact | RawPages:
    """Run B's output: another model version (same arrays), another crawl (one page only: a mix would show)."""
    if isinstance(obj, ModelArtifact):
        return replace(obj, manifest={**obj.manifest, "dagster_run_id": RUN_B})
    return RawPages(obj.pages[:1], obj.source, obj.crawl_date)


class ArtifactsWithRunB(ArtifactIOManager):
    """The first time run A reads one of `overlapped` (A's step stored it and recorded it), B publishes its own."""

    overlapped: list[str]

    def load_input(self, context: dg.InputContext) -> ModelArtifact | RawPages:
        key = context.asset_key
        if key.path[-1] in self.overlapped:
            latest = context.instance.get_latest_materialization_event(key)
            if latest is None or "written_by" not in latest.asset_materialization.metadata:  # B has not acted yet
                store_as_run_b(self, context.instance, key, b_version_of(super().load_input(context)))
        return super().load_input(context)


def run_b_model(registry: ModelRegistry) -> str:
    """The model version run B published (its manifest names B's run)."""
    return next(v.version for v in registry.versions() if registry.manifest(v.version)["dagster_run_id"] == RUN_B)


class TablesWithRunB(TableIOManager):
    """Right before run A's batch table is made, run B's `production_model` promotes B's model."""

    artifacts: ArtifactsResource

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        if context.op_def.name == "batch_recommendations" and context.name == "user_logs":
            registry = self.artifacts.registry()
            theirs = run_b_model(registry)
            registry.promote(theirs, reason=f"dagster run {RUN_B}")
            context.instance.report_runless_asset_event(
                dg.AssetMaterialization("production_model", metadata={"version": theirs, "decision": "promoted"})
            )
        return super().load_input(context)


def job_of(env: dict[str, str], **managers: dg.ConfigurableIOManager) -> dg.JobDefinition:
    """The whole graph of `build_definitions(env)`, with some IO managers replaced."""
    base = build_definitions(env)
    defs = dg.Definitions(
        assets=base.assets, asset_checks=base.asset_checks, resources={**(base.resources or {}), **managers}
    )
    return defs.resolve_implicit_global_asset_job_def()


def loaded_versions(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, str]:
    """step key -> the version of input `asset` that step loaded (the IO manager's input metadata)."""
    return {
        str(e.step_key): str(e.event_specific_data.metadata["version"].value)
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.LOADED_INPUT and e.event_specific_data.input_name == asset
    }


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.mark.integration
def test_a_concurrent_run_cannot_swap_the_model(gamerec_home: Path, instance: dg.DagsterInstance) -> None:
    env = {"GAMEREC_HOME": str(gamerec_home)}
    resources = build_definitions(env).resources or {}
    artifacts = resources["artifacts"]
    job = job_of(
        env,
        artifact_io_manager=ArtifactsWithRunB(artifacts=artifacts, overlapped=["item_similarity"]),
        table_io_manager=TablesWithRunB(tables=resources["tables"], artifacts=artifacts),
    )
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())

    ours = str(metadata_of(result, "item_similarity")["version"].value)
    registry = ModelRegistry(backends.artifact_store(StorageSettings.from_env(env)))
    theirs = run_b_model(registry)
    assert theirs != ours and registry.production() == theirs  # B really published, and promoted last

    # Every step downstream of item_similarity, the checks included, read A's version.
    gate = next(e for e in result.get_asset_check_evaluations() if e.check_name == "item_similarity_beats_popularity")
    assert gate.metadata["version"].value == ours
    assert metadata_of(result, "evaluation_report")["model_version"].value == ours
    release = metadata_of(result, "production_model")
    assert release["challenger"].value == ours and release["version"].value == ours
    recs = backends.table_store(StorageSettings.from_env(env)).read("batch_recommendations")
    assert set(recs["model_version"]) == {ours}
    assert metadata_of(result, "batch_recommendations")["model_version"].value == ours
    loads = loaded_versions(result, "item_similarity")
    assert set(loads) == {
        "item_similarity_item_similarity_beats_popularity",
        "item_similarity_item_similarity_well_formed",
        "evaluation_report",
        "production_model",
    }
    assert set(loads.values()) == {ours}


def test_a_concurrent_crawl_cannot_swap_the_pages(gamerec_home: Path, instance: dg.DagsterInstance) -> None:
    env = {"GAMEREC_HOME": str(gamerec_home)}
    resources = build_definitions(env).resources or {}
    job = job_of(env, artifact_io_manager=ArtifactsWithRunB(artifacts=resources["artifacts"], overlapped=["raw_games"]))
    selection = [dg.AssetKey("raw_games"), dg.AssetKey("game_features")]
    result = job.execute_in_process(instance=instance, asset_selection=selection)
    crawl = str(metadata_of(result, "raw_games")["version"].value)
    latest = instance.get_latest_materialization_event(dg.AssetKey("raw_games"))
    assert latest is not None and latest.asset_materialization.metadata["version"].value != crawl  # B's crawl
    assert metadata_of(result, "game_features")["rows_in"].value == 400  # A's 20 pages, not B's one
    loads = loaded_versions(result, "raw_games")
    assert set(loads) == {"game_features", "raw_games_raw_games_ids_present"} and set(loads.values()) == {crawl}


@pytest.mark.integration
def test_a_run_of_the_report_alone_reads_the_latest_materialization(
    gamerec_home: Path, instance: dg.DagsterInstance
) -> None:
    env = {"GAMEREC_HOME": str(gamerec_home)}
    job = build_definitions(env).resolve_implicit_global_asset_job_def()
    first = job.execute_in_process(instance=instance, raise_on_error=False)
    assert first.success
    recorded = str(metadata_of(first, "item_similarity")["version"].value)
    resources = build_definitions(env).resources or {}
    manager = ArtifactIOManager(artifacts=resources["artifacts"])
    registry = ModelRegistry(backends.artifact_store(StorageSettings.from_env(env)))
    model = registry.load(recorded)

    # A newer version stored (a run still in flight, or one that died before recording its materialization) is
    # not what a report-only run reads: it follows the instance's record.
    key = dg.AssetKey("item_similarity")
    context = dg.build_output_context(asset_key=key, run_id=RUN_B, step_key="item_similarity", instance=instance)
    manager.handle_output(context, replace(model, manifest={**model.manifest}))
    newer = str(context.consume_logged_metadata()["version"].value)
    assert newer != recorded and len(registry.versions()) == 2

    report = job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey("evaluation_report")])
    assert report.success
    assert metadata_of(report, "evaluation_report")["model_version"].value == recorded
    assert set(loaded_versions(report, "item_similarity").values()) == {recorded}

    # Once a materialization names the newer version, that is the latest and a report-only run reads it.
    instance.report_runless_asset_event(dg.AssetMaterialization(key, metadata={"version": newer}))
    again = job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey("evaluation_report")])
    assert metadata_of(again, "evaluation_report")["model_version"].value == newer


class TablesRepublishedByB(TableIOManager):
    """Right before run A's item_similarity reads `user_logs`, run B publishes other logs under the same name."""

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        if context.op_def.name == "item_similarity" and context.name == "user_logs":
            theirs = self.tables.store().read("user_logs").head(-5)
            b = dg.build_output_context(asset_key=context.asset_key, run_id=RUN_B, instance=context.instance)
            TableIOManager.handle_output(self, b, theirs)
            metadata = {**b.consume_logged_metadata(), "written_by": RUN_B}
            context.instance.report_runless_asset_event(dg.AssetMaterialization("user_logs", metadata=metadata))
        return super().load_input(context)


@pytest.mark.integration
def test_a_table_republished_by_another_run_fails_the_step_instead_of_mixing(
    gamerec_home: Path, instance: dg.DagsterInstance
) -> None:
    env = {"GAMEREC_HOME": str(gamerec_home)}
    resources = build_definitions(env).resources or {}
    job = job_of(env, table_io_manager=TablesRepublishedByB(tables=resources["tables"]))
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert failure.step_key == "item_similarity"
    message = failure.step_failure_data.error.message + str(failure.step_failure_data.user_failure_data)
    assert "table user_logs no longer holds what its materialization in run" in message
    assert "another run republished it" in message
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert not {"item_similarity", "production_model"} & materialized
    assert ModelRegistry(backends.artifact_store(StorageSettings.from_env(env))).production() is None
