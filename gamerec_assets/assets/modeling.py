"""Stage 4: the item-item similarity model, its quality gate, the evaluation report and the release."""

import json
import time
from dataclasses import asdict
from typing import Literal

import dagster as dg
import numpy as np
import polars as pl

from gamerec_assets.assets.metadata import figure, markdown_table, png_markdown
from gamerec_assets.recsys.evaluation import KS, evaluate_holdout
from gamerec_assets.recsys.itemcf import Popularity
from gamerec_assets.recsys.matrix import build_matrix
from gamerec_assets.recsys.metrics import METRICS
from gamerec_assets.recsys.model_artifact import ModelArtifact, fingerprint
from gamerec_assets.recsys.models import build_model
from gamerec_assets.recsys.selection import FAMILIES, select_model_with_report
from gamerec_assets.recsys.split import SplitParams, split_interactions
from gamerec_assets.resources import ArtifactsResource
from gamerec_assets.resources.tracking import ExperimentTracker, wandb_table
from gamerec_assets.store.registry import ModelRegistry

GATE_METRIC = "ndcg@10"
ITEM_FAMILIES = tuple(f for f in FAMILIES if f != "Popularity")  # popularity is the baseline, not a candidate


class ItemSimilarityConfig(dg.Config):
    strategy: Literal["select", "fixed"] = "select"  # select: select_model tunes the zoo; fixed: the params below
    time_budget_s: float = 120.0  # select_model's budget (inner splits of the train fold only)
    similarity: Literal["cosine", "jaccard"] = "cosine"  # strategy=fixed: the prototype's model
    neighbors: int = 100
    serving_neighbors: int = 300  # weights kept per item in the published artifact (by magnitude)
    split_seed: int = 42


def catalogue(game_features: pl.DataFrame, user_logs: pl.DataFrame) -> np.ndarray:
    """Every game the model may score: the catalogue plus anything played (real logs can hold unmatched titles)."""
    return np.union1d(game_features["game_id"].to_numpy(), user_logs["game_id"].unique().to_numpy())


def holdout_split(user_logs: pl.DataFrame, manifest: dict) -> pl.DataFrame:
    return split_interactions(user_logs, SplitParams(**manifest["split"]))


def best_per_family(trials: list[dict]) -> dict[str, dict]:
    """The best params each model family reached during selection (most splits, then highest mean)."""
    best: dict[str, dict] = {}
    for t in sorted(trials, key=lambda t: (t["n_splits"], t["ndcg@10"])):
        best[t["model"]] = t
    return best


@dg.asset(
    group_name="modeling",
    kinds={"scipy", "numpy", "wandb"},
    io_manager_key="artifact_io_manager",
)
def item_similarity(
    context: dg.AssetExecutionContext,
    config: ItemSimilarityConfig,
    user_logs: pl.DataFrame,
    game_features: pl.DataFrame,
    tracker: ExperimentTracker,
) -> dg.Output[ModelArtifact]:
    """The item-item model: neighbour weights (sparse CSR) + a JSON manifest; a new immutable version per run.

    `select_model` tunes the model zoo on inner splits of the train fold only; validation metrics then come from
    the holdout protocol (fit on train, score validation) for the model exactly as it will be served; the published
    matrix is fit on every interaction, since that is what the API serves. Every trial is logged to W&B.
    """
    split_params = SplitParams(seed=config.split_seed)
    split = split_interactions(user_logs, split_params)
    item_ids = catalogue(game_features, user_logs)
    users = np.unique(split["user_id"].to_numpy())
    train = build_matrix(split.filter(pl.col("fold") == "train"), item_ids, users)
    run_name = f"item_similarity-{context.run_id[:8]}"
    wandb_config = {
        **config.model_dump(),
        "users": len(users),
        "items": len(item_ids),
        "interactions": user_logs.height,
    }
    with tracker.run(run_name, "model_selection", wandb_config) as wb:
        selection: dict = {}
        if config.strategy == "select":
            trial_no = iter(range(1_000_000))

            def on_trial(trial: dict) -> None:
                n = next(trial_no)
                context.log.info(
                    f"trial {n}: {trial['model']} {trial['params']} split {trial['split']} "
                    f"ndcg@10 {trial['ndcg@10_splits'][-1]:.4f}"
                )
                wb.log(
                    {
                        "trial": n,
                        "model": trial["model"],
                        "split": trial["split"],
                        "ndcg@10": trial["ndcg@10_splits"][-1],
                        "params": json.dumps(trial["params"]),
                    }
                )

            result = select_model_with_report(
                train.matrix,
                time_budget_s=config.time_budget_s,
                families=ITEM_FAMILIES,
                on_trial=on_trial,
                refit=False,  # the chosen params are fit below, as served, on train and then on everything
            )
            chosen = dict(result.best)
            selection = {
                "best": result.best,
                "trials": result.trials,
                "elapsed_s": round(result.elapsed_s, 2),
                "budget_exhausted": result.budget_exhausted,
                "protocol": result.protocol,
            }
        else:
            chosen = {"model": "ItemCF", "similarity": config.similarity, "neighbors": config.neighbors}
        params = {**chosen, "serving_neighbors": config.serving_neighbors}
        validation = evaluate_holdout(split, item_ids, lambda: build_model(params), "validation")
        baseline = evaluate_holdout(split, item_ids, Popularity, "validation")
        context.log.info(
            f"chose {params}; validation {GATE_METRIC}: {validation.flat()[GATE_METRIC]:.4f} "
            f"(popularity {baseline.flat()[GATE_METRIC]:.4f})"
        )
        full = build_matrix(user_logs, item_ids)
        started = time.perf_counter()
        model = build_model(params).fit(full.matrix)
        fit_seconds = time.perf_counter() - started
        similarity = model.similarity  # type: ignore[attr-defined]
        wb.summary.update(
            {
                "chosen": json.dumps(params),
                f"validation_{GATE_METRIC}": validation.flat()[GATE_METRIC],
                f"validation_{GATE_METRIC}_popularity": baseline.flat()[GATE_METRIC],
                "fit_seconds": fit_seconds,
            }
        )
        if selection:
            wb.log(
                {
                    "trials": wandb_table(
                        pl.DataFrame(
                            [
                                {
                                    "model": t["model"],
                                    "params": json.dumps(t["params"]),
                                    "ndcg@10": t["ndcg@10"],
                                    "ndcg@10_std": t["ndcg@10_std"],
                                    "splits": t["n_splits"],
                                    "seconds": t["seconds"],
                                }
                                for t in selection["trials"]
                            ]
                        )
                    )
                }
            )
        wandb_id = wb.id
    binary = full.matrix.copy()
    binary.data[:] = 1
    popularity = np.asarray(binary.sum(axis=0)).ravel()
    manifest = {
        "parameters": params,
        "weights": "signed" if similarity.nnz and similarity.data.min() < 0 else "similarity",
        "split": asdict(split_params),
        "training_data": {
            "fingerprint": fingerprint(full.matrix),
            "users": int(full.matrix.shape[0]),
            "items": int(full.matrix.shape[1]),
            "interactions": int(full.matrix.nnz),
        },
        "metrics": {"validation": validation.flat(), "validation_popularity": baseline.flat()},
        "selection": selection,
        "dagster_run_id": context.run_id,
        "wandb_run_id": wandb_id,
    }
    names = dict(zip(game_features["game_id"].to_list(), game_features["name"].to_list(), strict=True))
    coo = similarity.tocoo()
    top = np.argsort(-coo.data, kind="stable")[:10]
    pairs = pl.DataFrame(
        {
            "game": [names.get(int(item_ids[i]), str(item_ids[i])) for i in coo.row[top]],
            "neighbour": [names.get(int(item_ids[j]), str(item_ids[j])) for j in coo.col[top]],
            "weight": coo.data[top].astype(float),
        }
    )
    metadata: dict[str, object] = {
        "parameters": params,
        "items": len(item_ids),
        "neighbour_pairs": int(similarity.nnz),
        "mean_neighbours": float(similarity.nnz / max(len(item_ids), 1)),
        "fit_seconds": round(fit_seconds, 4),
        f"validation_{GATE_METRIC}": validation.flat()[GATE_METRIC],
        f"validation_{GATE_METRIC}_popularity": baseline.flat()[GATE_METRIC],
        "training_fingerprint": manifest["training_data"]["fingerprint"],
        "wandb_run_id": wandb_id,
        "wandb_mode": tracker.resolved_mode(),
        "strongest_pairs": markdown_table(pairs),
    }
    if selection:
        trials = pl.DataFrame(
            [
                {
                    "model": t["model"],
                    "ndcg@10": t["ndcg@10"],
                    "± std": t["ndcg@10_std"],
                    "splits": t["n_splits"],
                    "params": json.dumps({k: v for k, v in t["params"].items() if k not in ("model", "max_items")}),
                }
                for t in sorted(selection["trials"], key=lambda t: -t["ndcg@10"])
            ]
        )
        metadata["selection_trials"] = markdown_table(trials, 25)
        metadata["selection_seconds"] = selection["elapsed_s"]
    return dg.Output(ModelArtifact(item_ids, similarity, popularity, manifest), metadata=metadata)


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
    manifest = item_similarity.manifest
    split = holdout_split(user_logs, manifest)
    item_ids = catalogue(game_features, user_logs)
    model = evaluate_holdout(split, item_ids, lambda: build_model(manifest["parameters"]), "validation", (10,))
    baseline = evaluate_holdout(split, item_ids, Popularity, "validation", (10,))
    ours, theirs = model.flat()[GATE_METRIC], baseline.flat()[GATE_METRIC]
    return dg.AssetCheckResult(
        passed=bool(ours > theirs),
        metadata={
            "model": ours,
            "popularity": theirs,
            "users": model.metrics[10]["users"],
            "version": str(item_similarity.version),
        },
    )


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
    params (served the same way), and the popularity baseline; fit on train + validation, never tuned on test."""
    manifest = item_similarity.manifest
    split = holdout_split(user_logs, manifest)
    item_ids = catalogue(game_features, user_logs)
    serving = manifest["parameters"].get("serving_neighbors")
    candidates: dict[str, dict] = {"published": manifest["parameters"]}
    for family, trial in best_per_family(manifest.get("selection", {}).get("trials", [])).items():
        params = {**trial["params"], **({"serving_neighbors": serving} if serving else {})}
        if params != manifest["parameters"]:
            candidates[family] = params
    results = {
        name: evaluate_holdout(split, item_ids, lambda p=params: build_model(p), "test")
        for name, params in candidates.items()
    }
    results["popularity"] = evaluate_holdout(split, item_ids, Popularity, "test")
    rows = [
        {
            "model": name,
            "k": k,
            "metric": m,
            "value": float(res.metrics[k][m]),
            "users": res.metrics[k]["users"],
            "coverage": res.coverage,
            "params": json.dumps(candidates.get(name, {"model": "Popularity"})),
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
        .join(report.select("model", "coverage").unique("model"), on="model")
        .sort("ndcg@10", descending=True)
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
            "wandb_run_id": wandb_id,
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
    tolerance: float = 0.005  # how much worse than production (validation NDCG@10) a challenger may be


def champion_score(
    registry: ModelRegistry,
    champion: str,
    challenger: ModelArtifact,
    user_logs: pl.DataFrame,
    game_features: pl.DataFrame,
) -> tuple[float, str]:
    """The champion's validation NDCG@10 on the challenger's data.

    Same training data: the champion's recorded figure. New data: the champion's parameters are fit and scored
    under the same split, since its stored figure came from other users and its matrix may have seen them.
    """
    manifest = registry.manifest(champion)
    recorded = manifest.get("metrics", {}).get("validation", {}).get(GATE_METRIC)
    same_data = (
        manifest.get("training_data", {}).get("fingerprint") == challenger.manifest["training_data"]["fingerprint"]
        and manifest.get("split") == challenger.manifest["split"]
    )
    if same_data and recorded is not None:
        return float(recorded), "recorded (same training data)"
    split = holdout_split(user_logs, challenger.manifest)
    item_ids = catalogue(game_features, user_logs)
    result = evaluate_holdout(split, item_ids, lambda: build_model(manifest["parameters"]), "validation", (10,))
    return result.flat()[GATE_METRIC], "re-evaluated on the new data"


@dg.asset(group_name="serving", kinds={"registry"}, deps=[evaluation_report])
def production_model(
    context: dg.AssetExecutionContext,
    config: ProductionModelConfig,
    item_similarity: ModelArtifact,
    user_logs: pl.DataFrame,
    game_features: pl.DataFrame,
    artifacts: ArtifactsResource,
) -> dg.MaterializeResult:
    """The registry's `production` alias: what the API serves. Runs only after the blocking gate passed.

    Champion / challenger: the new version is promoted unless its validation NDCG@10 is worse than the current
    production model's by more than `tolerance`.
    """
    registry = artifacts.registry("item_similarity")
    challenger = str(item_similarity.version)
    champion = registry.production()
    score = float(item_similarity.manifest["metrics"]["validation"][GATE_METRIC])
    meta: dict[str, object] = {
        "challenger": challenger,
        f"challenger_{GATE_METRIC}": score,
        "champion": str(champion),
        "tolerance": config.tolerance,
    }
    if champion is not None and champion != challenger:
        best, how = champion_score(registry, champion, item_similarity, user_logs, game_features)
        meta.update({f"champion_{GATE_METRIC}": best, "champion_scored": how})
        if score < best - config.tolerance:
            context.log.warning(
                f"keeping {champion}: challenger {challenger} {GATE_METRIC} {score:.4f} < "
                f"{best:.4f} - {config.tolerance}"
            )
            return dg.MaterializeResult(metadata={**meta, "decision": "kept champion", "version": champion})
    state = registry.promote(challenger, reason=f"dagster run {context.run_id}")
    context.log.info(f"production: {champion} -> {state['version']}")
    return dg.MaterializeResult(
        metadata={**meta, "decision": "promoted", "version": state["version"], "registry": artifacts.store().describe()}
    )


@dg.asset_check(asset=production_model, description="The production alias resolves to a complete, loadable model.")
def production_model_loadable(artifacts: ArtifactsResource) -> dg.AssetCheckResult:
    registry = artifacts.registry("item_similarity")
    version = registry.production()
    if version is None:
        return dg.AssetCheckResult(passed=False, metadata={"error": "no production alias"})
    artifact = registry.load(version)
    return dg.AssetCheckResult(passed=artifact.version == version, metadata={"version": version})
