"""The modeling stage alone: item_similarity, its two checks, evaluation_report and production_model, each called
as a function on the values the upstream assets return (the registry is a tmp folder)."""

import dagster as dg
import polars as pl

from gamerec_assets.assets.modeling import (
    ItemSimilarityConfig,
    ProductionModelConfig,
    evaluation_report,
    evaluation_report_complete,
    item_similarity,
    item_similarity_beats_popularity,
    item_similarity_well_formed,
    production_model,
    production_model_loadable,
)
from gamerec_assets.recsys.models import build_model
from gamerec_assets.resources.online_gate import OnlineEvaluationResource
from gamerec_assets.resources.sources import InteractionSources
from gamerec_assets.resources.storage import LocalArtifactsResource, TablesResource
from gamerec_assets.resources.tracking import ExperimentTracker

FIXED = ItemSimilarityConfig(strategy="fixed", neighbors=50, serving_neighbors=50)


def test_item_similarity_fits_the_configured_model_and_records_it(
    logs: pl.DataFrame, features: pl.DataFrame, tracker: ExperimentTracker
) -> None:
    out = item_similarity(dg.build_asset_context(), FIXED, logs, features, tracker)
    artifact = out.value
    params = artifact.manifest["parameters"]
    assert params == {"model": "ItemCF", "similarity": "cosine", "neighbors": 50, "serving_neighbors": 50}
    assert artifact.manifest["training_data"]["interactions"] == logs.height
    assert out.metadata["wandb_mode"].value == "offline"
    # what is published is what the factory fits on every interaction
    from gamerec_assets.recsys.matrix import build_matrix, catalogue

    refit = build_model(params).fit(build_matrix(logs, catalogue(features, logs)).matrix)
    assert (artifact.similarity != refit.similarity).nnz == 0
    assert item_similarity_well_formed(artifact).passed


def test_release_path_alone(
    logs: pl.DataFrame,
    features: pl.DataFrame,
    tracker: ExperimentTracker,
    artifacts: LocalArtifactsResource,
    no_events: TablesResource,
) -> None:
    artifact = item_similarity(dg.build_asset_context(), FIXED, logs, features, tracker).value
    registry = artifacts.registry()
    published = registry.load(registry.publish(artifact))  # what the artifact IO manager hands downstream

    gate = item_similarity_beats_popularity(published, logs, features)
    assert set(gate.metadata) >= {"model", "popularity", "users", "version"}
    assert gate.passed == (gate.metadata["model"].value > gate.metadata["popularity"].value)

    report = evaluation_report(dg.build_asset_context(), published, logs, features, tracker)
    assert {"published", "popularity"} <= set(report.value["model"])
    assert report.metadata["model_version"].value == published.version
    assert evaluation_report_complete(report.value).passed

    online = OnlineEvaluationResource(tables=no_events, artifacts=artifacts)  # the online gate is off by default
    result = production_model(
        dg.build_asset_context(),
        ProductionModelConfig(),
        published,
        logs,
        features,
        artifacts,
        online,
        InteractionSources(),  # the defaults' sources: the bundled RAWG games and simulated players
    )
    assert result.metadata["decision"] == "promoted" and registry.production() == published.version
    assert result.metadata["decided_by"] == "offline gate"
    assert production_model_loadable(artifacts).passed
