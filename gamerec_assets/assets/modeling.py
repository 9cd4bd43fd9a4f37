"""Stage 4: the item-item similarity model, its quality gate, the evaluation report and the release.

The procedures live in the core (`recsys.training`, `recsys.evaluation`); the assets add configuration, W&B runs,
Dagster metadata and the registry.
"""

import itertools
import json
from dataclasses import replace
from typing import Literal

import dagster as dg
import numpy as np
import polars as pl

from gamerec_assets.assets.metadata import figure, markdown_table, png_markdown
from gamerec_assets.recsys.evaluation import (
    GATE_K,
    GATE_METRIC,
    KS,
    POPULARITY,
    ColdStart,
    Holdout,
    champion_score,
    cold_start_candidates,
    report_candidates,
    source_change,
    temporal_holdout,
)
from gamerec_assets.recsys.event_trust import training_rows
from gamerec_assets.recsys.feedback import iso
from gamerec_assets.recsys.metrics import METRICS
from gamerec_assets.recsys.model_artifact import ModelArtifact
from gamerec_assets.recsys.selection import Trial, trials_frame
from gamerec_assets.recsys.training import TrainingParams, strongest_pairs, train
from gamerec_assets.resources import ArtifactsResource
from gamerec_assets.resources.online_gate import OnlineEvaluationResource
from gamerec_assets.resources.sources import InteractionSources, catalog_label
from gamerec_assets.resources.tracking import ExperimentTracker, wandb_table
from gamerec_assets.store.experiments import ExperimentError, ExperimentStore
from gamerec_assets.store.registry import MODEL_NAME

TRAINING_DEFAULTS = TrainingParams()


class ItemSimilarityConfig(dg.Config):
    """`recsys.training.TrainingParams` as run config (what each field means is documented there)."""

    strategy: Literal["select", "fixed"] = TRAINING_DEFAULTS.strategy
    time_budget_s: float = TRAINING_DEFAULTS.time_budget_s
    similarity: Literal["cosine", "jaccard"] = TRAINING_DEFAULTS.similarity
    neighbors: int = TRAINING_DEFAULTS.neighbors
    serving_neighbors: int = TRAINING_DEFAULTS.serving_neighbors
    split_seed: int = TRAINING_DEFAULTS.split_seed


@dg.asset(group_name="modeling", kinds={"scipy", "numpy", "wandb"}, io_manager_key="artifact_io_manager")
def item_similarity(
    context: dg.AssetExecutionContext,
    config: ItemSimilarityConfig,
    user_logs: pl.DataFrame,
    game_features: pl.DataFrame,
    tracker: ExperimentTracker,
) -> dg.Output[ModelArtifact]:
    """The item-item model (`recsys.training.train`): a new immutable version per run, every selection trial
    logged to W&B as it happens, so a long selection can be followed and compared across runs."""
    trial_no = itertools.count()
    with tracker.run(f"item_similarity-{context.run_id[:8]}", "model_selection", config.model_dump()) as wb:

        def on_trial(trial: Trial, split: int) -> None:
            n, ndcg = next(trial_no), trial.ndcg_splits[-1]
            context.log.info(f"trial {n}: {trial.model} {trial.params} split {split} {GATE_METRIC} {ndcg:.4f}")
            row = {"trial": n, "model": trial.model, "split": split, GATE_METRIC: ndcg}
            wb.log({**row, "params": json.dumps(trial.params)})

        result = train(user_logs, game_features, TrainingParams(**config.model_dump()), on_trial)
        context.log.info(f"chose {result.params}: {result.scores()}")
        wb.config.update({k: v for k, v in result.artifact.manifest["training_data"].items() if k != "fingerprint"})
        wb.summary.update({"chosen": json.dumps(result.params), **result.scores(), "fit_seconds": result.fit_seconds})
        trials = trials_frame(result.selection.trials) if result.selection else None
        if trials is not None:
            wb.log({"trials": wandb_table(trials)})
        wandb_id = wb.id
    manifest = {**result.artifact.manifest, "dagster_run_id": context.run_id, "wandb_run_id": wandb_id}
    metadata = {
        **result.summary(),
        "wandb_run_id": wandb_id,
        "wandb_mode": tracker.resolved_mode(),
        "strongest_pairs": markdown_table(strongest_pairs(result.artifact, game_features)),
    }
    if trials is not None:
        metadata["selection_trials"] = markdown_table(trials, 25)
    return dg.Output(replace(result.artifact, manifest=manifest), metadata=metadata)


@dg.asset_check(
    asset=item_similarity,
    description="Weights are finite, in [0, 1] ([-1, 1] for signed EASE weights), no self-weight.",
)
def item_similarity_well_formed(item_similarity: ModelArtifact) -> dg.AssetCheckResult:
    sim = item_similarity.similarity
    signed = item_similarity.manifest.get("weights") == "signed"
    low = -1.0 if signed else 0.0
    finite = bool(np.all(np.isfinite(sim.data)))
    in_range = bool(sim.nnz == 0 or (sim.data.min() >= low and sim.data.max() <= 1))
    self_sim = int(np.count_nonzero(sim.diagonal()))
    square = sim.shape == (len(item_similarity.item_ids), len(item_similarity.item_ids))
    return dg.AssetCheckResult(
        passed=finite and in_range and self_sim == 0 and square,
        metadata={
            "finite": finite,
            "in_range": in_range,
            "range": f"[{low}, 1]",
            "self_similarities": self_sim,
            "square": square,
        },
    )


@dg.asset_check(
    asset=item_similarity,
    blocking=True,
    description=f"The model beats the popularity baseline on validation {GATE_METRIC}; a model that fails is "
    "not published.",
    additional_ins={"user_logs": dg.AssetIn("user_logs"), "game_features": dg.AssetIn("game_features")},
)
def item_similarity_beats_popularity(
    item_similarity: ModelArtifact, user_logs: pl.DataFrame, game_features: pl.DataFrame
) -> dg.AssetCheckResult:
    """Recomputed here from the logs, not read from the manifest, so the gate does not trust the asset."""
    holdout = Holdout.of_manifest(user_logs, game_features, item_similarity.manifest)
    model = holdout.score(item_similarity.manifest["parameters"], "validation", (GATE_K,))
    baseline = holdout.score(POPULARITY, "validation", (GATE_K,))
    ours, theirs = model.flat()[GATE_METRIC], baseline.flat()[GATE_METRIC]
    return dg.AssetCheckResult(
        passed=bool(ours > theirs),
        metadata={
            "model": ours,
            "popularity": theirs,
            "users": model.metrics[GATE_K]["users"],
            "version": str(item_similarity.version),
        },
    )


def temporal_metadata(published: dict, user_logs: pl.DataFrame, game_features: pl.DataFrame) -> dict[str, object]:
    """The temporal protocol (`recsys.split.temporal_split`): the published params and popularity fit on the
    interactions before the cut-off and tested on the ones after it, or why it did not run."""
    holdout, split = temporal_holdout(user_logs, game_features)
    if holdout is None:
        return {"temporal_protocol": f"not run: {split.info['reason']}"}
    scored = {"published": holdout.score(published, "test"), "popularity": holdout.score(POPULARITY, "test")}
    table = pl.DataFrame([{"model": name, **res.flat()} for name, res in scored.items()])
    info = split.info
    return {
        "temporal_protocol": "fit before the cut-off, tested after it (users seen before)",
        "temporal_cutoff": iso(int(info["cutoff_us"])),  # type: ignore[call-overload]
        "temporal_train_interactions": info["train_interactions"],
        "temporal_test_interactions": info["test_interactions"],
        "temporal_test_users": info["test_users"],
        "temporal_ndcg@10": scored["published"].flat()["ndcg@10"],
        "temporal_ndcg@10_popularity": scored["popularity"].flat()["ndcg@10"],
        "temporal_metrics": markdown_table(table),
    }


@dg.asset(
    group_name="modeling",
    kinds={"polars", "table", "wandb"},
    io_manager_key="table_io_manager",
    metadata={"primary_key": ["model", "k", "metric"], "history_table": "evaluation_history"},
)
def evaluation_report(
    context: dg.AssetExecutionContext,
    item_similarity: ModelArtifact,
    user_logs: pl.DataFrame,
    game_features: pl.DataFrame,
    tracker: ExperimentTracker,
) -> dg.Output[pl.DataFrame]:
    """Held-out test metrics at K = 5, 10, 20: the published model, every candidate family at its best selection
    params (served the same way), and the popularity baseline; fit on train + validation, never tuned on test.
    With timestamped interactions (players' events) the metadata adds the temporal protocol (`temporal_*`)."""
    holdout = Holdout.of_manifest(user_logs, game_features, item_similarity.manifest)
    candidates = report_candidates(item_similarity.manifest)
    results = {name: holdout.score(params, "test") for name, params in candidates.items()}
    results["popularity"] = holdout.score(POPULARITY, "test")
    rows = [
        {
            "model": name,
            "k": k,
            "metric": m,
            "value": float(res.metrics[k][m]),
            "users": res.metrics[k]["users"],
            "coverage": res.coverage,
            "params": json.dumps(candidates.get(name, POPULARITY)),
            "model_version": str(item_similarity.version),
        }
        for name, res in results.items()
        for k in KS
        for m in METRICS
    ]
    report = pl.DataFrame(rows)
    wide = (
        report.with_columns((pl.col("metric") + "@" + pl.col("k").cast(pl.Utf8)).alias("at"))
        .pivot(on="at", index="model", values="value")
        .join(report.select("model", "coverage").unique("model", maintain_order=True), on="model")
        .sort("ndcg@10", descending=True, maintain_order=True)
    )
    fig, ax = figure(8, 3.5)
    names = wide["model"].to_list()
    for n, k in enumerate(KS):
        ax.bar(np.arange(len(names)) + n * 0.27, wide[f"ndcg@{k}"].to_list(), 0.27, label=f"NDCG@{k}")
    ax.set_xticks(np.arange(len(names)) + 0.27, names, rotation=20)
    ax.legend()
    ax.set_title("Held-out test NDCG by model")
    with tracker.run(
        f"evaluation_report-{context.run_id[:8]}",
        "evaluation",
        {"model_version": str(item_similarity.version), "candidates": json.dumps(candidates)},
    ) as wb:
        wb.log({"evaluation": wandb_table(wide)})
        wb.summary.update({f"test_{m}": results["published"].flat()[m] for m in ("ndcg@10", "recall@10", "map@10")})
        # item cold start: a separate protocol (its own split), so its figures sit beside the table, not in it
        cold = ColdStart.of(training_rows(user_logs), game_features, item_content=holdout.item_content)
        cold_result = cold.compare(cold_start_candidates(item_similarity.manifest))
        wb.log({"item_cold_start": wandb_table(cold_result.frame())})
        wb.summary.update({f"cold_start_{m}": v for m, v in cold_result.metrics["published"].items()})
        wandb_id = wb.id
    return dg.Output(
        report,
        metadata={
            "model_version": str(item_similarity.version),
            "test_ndcg@10": results["published"].flat()["ndcg@10"],
            "test_ndcg@10_popularity": results["popularity"].flat()["ndcg@10"],
            "catalogue_coverage@20": results["published"].coverage,
            "models": len(results),
            "metrics": markdown_table(wide, 12),
            "plot": png_markdown(fig, "test NDCG by model"),
            "item_cold_start": markdown_table(cold_result.frame(), 12),
            "item_cold_start_protocol": dg.MetadataValue.json(cold_result.protocol()),
            "cold_start_ndcg@20": cold_result.metrics["published"]["ndcg@20"],
            "cold_start_ndcg@20_random": cold_result.metrics["random"]["ndcg@20"],
            "wandb_run_id": wandb_id,
            **temporal_metadata(candidates["published"], training_rows(user_logs), game_features),
        },
    )


@dg.asset_check(asset=evaluation_report, description="All five metrics at K = 5, 10, 20 for both models, in [0, 1].")
def evaluation_report_complete(evaluation_report: pl.DataFrame) -> dg.AssetCheckResult:
    models = evaluation_report["model"].n_unique()
    expected = models * len(KS) * len(METRICS)
    values = evaluation_report["value"]
    in_range = bool(((values >= 0) & (values <= 1)).all())
    return dg.AssetCheckResult(
        passed=evaluation_report.height == expected and in_range,
        metadata={"rows": evaluation_report.height, "expected": expected},
    )


class ProductionModelConfig(dg.Config):
    # how much worse than production a challenger may be on the trusted holdout (validation NDCG@10)
    tolerance: float = 0.005


RULE_NO_CHAMPION = "no production model: the gate (beats popularity on the trusted holdout) decided"
RULE_SAME = "the challenger's trusted-holdout figure is not below the champion's by more than the tolerance"
RULE_FELL = "the challenger's trusted-holdout figure fell below the champion's by more than the tolerance"
# `decided_by`: which rule decided (the online ones only with GAMEREC_ONLINE_GATE=true and an experiment running)
BY_OFFLINE = "offline gate"
BY_OFFLINE_NO_EXPERIMENT = "offline gate (online gate on, no experiment running)"
BY_ONLINE_NOT_WORSE = "offline gate + online: not worse"
BY_ONLINE_WORSE = "online: challenger significantly worse"
BY_ONLINE_OTHER = "online gate: an experiment runs another challenger"


def online_rule(
    online: OnlineEvaluationResource, artifacts: ArtifactsResource, challenger: str
) -> tuple[str | None, dict[str, object]]:
    """With the online gate on and an experiment running: (why the challenger must not be promoted, or None when
    the online result allows it; the metadata saying what was measured). Gate off or no experiment: (None, {}).

    The experiment compares its challenger with production on live traffic, so only that version has an online
    result: it may be promoted unless the result is significantly worse (`recsys.online_evaluation`'s verdict, the
    asset's test on the same data). Any other version would replace the production the experiment measures against
    (`gamerec models promote` refuses that too): kept out until the experiment ends."""
    if not online.gate:
        return None, {}
    running = ExperimentStore(artifacts.store(), MODEL_NAME).current()
    if running is None:
        return None, {"online_gate": "on", "online_experiment": "none running"}
    meta: dict[str, object] = {
        "online_gate": "on",
        "online_experiment": running.name,
        "online_mode": running.mode,
        "online_challenger": running.challenger,
    }
    if running.challenger != challenger:
        return (
            f"experiment {running.name!r} runs challenger {running.challenger} against production {running.production}"
            f"; {challenger} has no online result, and promoting it would end the comparison: stop or promote the "
            "experiment first (`gamerec experiments stop | promote`)",
            meta,
        )
    verdict = online.evaluate([running], only=running.name).verdict(running.name) or {}
    meta |= {
        "online_verdict": str(verdict.get("verdict", "not yet significant")),
        "online_metric": str(verdict.get("metric", "")),
        "online_effect": verdict.get("effect"),
        "online_p_value": verdict.get("p_value"),
        "online_alpha": online.alpha,
        "online_impressions": verdict.get("impressions", 0),
    }
    if verdict.get("verdict") == "challenger worse":
        return (
            f"online: in experiment {running.name!r} the challenger is significantly worse ({verdict['metric']} "
            f"effect {verdict['effect']:+.4f}, always-valid p {verdict['p_value']:.4g} <= {online.alpha})",
            meta,
        )
    return None, meta


RULE_SETTINGS_CHANGE = (
    "the deployment's settings changed the data source: the first model on the new source is published since it "
    "passed the gate (beats popularity on its own trusted holdout); the figures of two sources do not compare"
)


def settings_change(data: dict, sources: InteractionSources) -> bool:
    """Whether the version was trained on the deployment's configured sources (GAMEREC_CATALOG and
    GAMEREC_INTERACTIONS as they are now): changing them is the operator's explicit act, a run-config override is
    not."""
    return data.get("catalog") == catalog_label(sources.catalog) and data.get("interactions") == sources.interactions


@dg.asset(group_name="serving", kinds={"registry"}, deps=[evaluation_report])
def production_model(
    context: dg.AssetExecutionContext,
    config: ProductionModelConfig,
    item_similarity: ModelArtifact,
    user_logs: pl.DataFrame,
    game_features: pl.DataFrame,
    artifacts: ArtifactsResource,
    online: OnlineEvaluationResource,
    sources: InteractionSources,
) -> dg.MaterializeResult:
    """The registry's `production` alias: what the API serves. Runs only after the blocking gate passed.

    Champion / challenger on the **trusted holdout** (`recsys.evaluation`: validation and test drawn on the base
    source's pairs only, so players' events can neither move the folds nor sit in them): the new version is
    promoted unless its validation NDCG@10 there is below the production model's by more than `tolerance`. The
    champion's figure is its recorded one when both were measured on the same trusted fold (each model fit on its
    own training data: a model trained on poisoned events shows a lower figure, and is kept out), else its
    parameters re-scored under the challenger's split. The metadata names the `rule` that decided, with both
    figures. Across a change of source (catalogue or interactions) the two figures do not compare: when the new
    source is the deployment's settings (the operator changed GAMEREC_CATALOG / GAMEREC_INTERACTIONS) the first model
    on it is published, having passed the gate, and the `rule` says so; a run-config override fails here instead,
    and `gamerec models promote VERSION` is the explicit way.

    The online rule (GAMEREC_ONLINE_GATE=true, off by default): while an experiment runs, its challenger is promoted
    only when the offline rule above passes and the online result is not significantly worse (`online_rule`); any
    other version is kept out until the experiment ends. `decided_by` names the rule that decided.
    """
    registry = artifacts.registry(MODEL_NAME)
    challenger = str(item_similarity.version)
    champion = registry.production()
    score = float(item_similarity.manifest["metrics"]["validation"][GATE_METRIC])
    data = item_similarity.manifest.get("data") or {}
    meta: dict[str, object] = {
        "challenger": challenger,
        f"challenger_{GATE_METRIC}": score,
        "champion": str(champion),
        "tolerance": config.tolerance,
        "catalog": str(data.get("catalog", "unknown")),
        "source": str(data.get("interactions", "unknown")),
        "data_version": dg.MetadataValue.json(data),
        "holdout": dg.MetadataValue.json(item_similarity.manifest.get("holdout") or {}),
        "trust": dg.MetadataValue.json(item_similarity.manifest.get("trust") or {}),
    }
    if champion is not None and champion != challenger:
        champion_manifest = registry.manifest(champion)
        changed = source_change(champion_manifest, item_similarity.manifest)
        if changed and not settings_change(data, sources):
            raise dg.Failure(
                description=f"production_model: this run's data source ({changed}) is a run-config override, not "
                f"the deployment's settings (catalog {catalog_label(sources.catalog)}, interactions "
                f"{sources.interactions}); not promoting {challenger} over {champion} automatically (the figures do "
                f"not compare). Promote it explicitly with `.venv/bin/gamerec models promote {challenger}`, or set "
                "GAMEREC_CATALOG / GAMEREC_INTERACTIONS to make it the deployment's source.",
                metadata={**meta, "decision": "refused: source changed", "source_change": changed},
            )
        if changed:
            meta["source_change"] = changed
            meta["rule"] = f"{RULE_SETTINGS_CHANGE} ({changed}); the previous production {champion} stays listed"
        else:
            best, how = champion_score(champion_manifest, item_similarity.manifest, user_logs, game_features)
            meta.update({f"champion_{GATE_METRIC}": best, "champion_scored": how, "change": round(score - best, 6)})
            if score < best - config.tolerance:
                figures = f"{GATE_METRIC} {score:.4f} < {best:.4f} - {config.tolerance}"
                context.log.warning(f"keeping {champion}: challenger {challenger} {figures} on the trusted holdout")
                promote = f"`.venv/bin/gamerec models promote {challenger}`"
                rule = f"{RULE_FELL}: {figures}; promote it explicitly with {promote}"
                return dg.MaterializeResult(
                    metadata={
                        **meta,
                        "decision": "kept champion",
                        "rule": rule,
                        "decided_by": BY_OFFLINE,
                        "version": champion,
                    }
                )
            meta["rule"] = f"{RULE_SAME}: {GATE_METRIC} {score:.4f} >= {best:.4f} - {config.tolerance}"
    else:
        meta["rule"] = RULE_NO_CHAMPION if champion is None else "already production"
    refusal, online_meta = online_rule(online, artifacts, challenger) if champion != challenger else (None, {})
    meta |= online_meta
    if refusal is not None:
        context.log.warning(f"keeping {champion}: {refusal}")
        worse = online_meta.get("online_verdict") == "challenger worse"
        return dg.MaterializeResult(
            metadata={
                **meta,
                "decision": "kept champion",
                "rule": refusal,
                "decided_by": BY_ONLINE_WORSE if worse else BY_ONLINE_OTHER,
                "version": str(champion),
            }
        )
    if not online_meta:
        meta["decided_by"] = BY_OFFLINE
    elif "online_verdict" in online_meta:
        meta["decided_by"] = BY_ONLINE_NOT_WORSE
        meta["rule"] = f"{meta['rule']}; online: {online_meta['online_verdict']} (not significantly worse)"
    else:
        meta["decided_by"] = BY_OFFLINE_NO_EXPERIMENT
    state = registry.promote(challenger, reason=f"dagster run {context.run_id}")
    context.log.info(f"production: {champion} -> {state['version']}")
    if "online_verdict" in online_meta:  # the experiment's challenger is production now: the experiment is over
        ended = end_experiment(artifacts, str(online_meta["online_experiment"]), context.run_id)
        meta["online_experiment_ended"] = ended
    return dg.MaterializeResult(
        metadata={**meta, "decision": "promoted", "version": state["version"], "registry": artifacts.store().describe()}
    )


def end_experiment(artifacts: ArtifactsResource, name: str, run_id: str) -> str:
    """Record the experiment as promoted and clear the `challenger` alias, as `gamerec experiments promote` does;
    what happened (a concurrent stop may have ended it already)."""
    registry = artifacts.registry(MODEL_NAME)
    try:
        ExperimentStore(registry.store, registry.name).end(
            "challenger promoted by production_model (online gate)",
            status="promoted",
            by=f"dagster run {run_id}",
            only=name,
        )
    except ExperimentError as exc:
        return f"not recorded: {exc}"
    registry.set_challenger(None, reason=f"experiment {name} promoted")
    return "recorded as promoted; challenger alias cleared"


@dg.asset_check(asset=production_model, description="The production alias resolves to a complete, loadable model.")
def production_model_loadable(artifacts: ArtifactsResource) -> dg.AssetCheckResult:
    registry = artifacts.registry(MODEL_NAME)
    version = registry.production()
    if version is None:
        return dg.AssetCheckResult(passed=False, metadata={"error": "no production alias"})
    artifact = registry.load(version)
    return dg.AssetCheckResult(passed=artifact.version == version, metadata={"version": version})
