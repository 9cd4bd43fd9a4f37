"""Training the served item-item model: choose its params on the train fold, validate it as served, fit it on all.

A core procedure rather than an asset body, so the asset, the demo home and the tests produce the same artifact
and the same manifest, with or without Dagster. The manifest is a stored format: stored versions are loaded back,
compared with new ones (`evaluation.champion_score`) and read by the evaluation report, so its keys stay put.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
import polars as pl
import scipy.sparse as sp

from gamerec_assets.recsys.content import ItemContent
from gamerec_assets.recsys.evaluation import GATE_METRIC, POPULARITY, Holdout, HoldoutResult
from gamerec_assets.recsys.event_trust import training_rows
from gamerec_assets.recsys.factors import FactorModel
from gamerec_assets.recsys.matrix import build_matrix, catalogue, item_popularity
from gamerec_assets.recsys.model_artifact import ModelArtifact, fingerprint
from gamerec_assets.recsys.models import build_model
from gamerec_assets.recsys.provenance import provenance
from gamerec_assets.recsys.selection import FAMILIES, SelectionResult, TrialCallback, select_model_with_report
from gamerec_assets.recsys.split import SplitParams

ITEM_FAMILIES = tuple(f for f in FAMILIES if f != "Popularity")  # popularity is the baseline, not a candidate


@dataclass(frozen=True)
class TrainingParams:
    strategy: Literal["select", "fixed"] = "select"  # select: tune the model zoo; fixed: the ItemCF params below
    time_budget_s: float = 120.0  # selection's budget (inner splits of the train fold only)
    similarity: Literal["cosine", "jaccard"] = "cosine"  # strategy=fixed
    neighbors: int = 100  # strategy=fixed
    serving_neighbors: int = 300  # weights kept per item in the published artifact (by magnitude)
    split_seed: int = 42

    def fixed_model(self) -> dict[str, Any]:
        return {"model": "ItemCF", "similarity": self.similarity, "neighbors": self.neighbors}


@dataclass(frozen=True)
class TrainingResult:
    artifact: ModelArtifact
    validation: HoldoutResult  # the chosen params, as served, fit on train and scored on validation
    baseline: HoldoutResult  # popularity under the same protocol: the figure the gate compares with
    selection: SelectionResult | None  # None for strategy=fixed
    fit_seconds: float  # the final fit on every interaction

    @property
    def params(self) -> dict[str, Any]:
        return self.artifact.manifest["parameters"]

    def scores(self) -> dict[str, float]:
        """The gate figures, under the names the run summary and the asset metadata share."""
        return {
            f"validation_{GATE_METRIC}": self.validation.flat()[GATE_METRIC],
            f"validation_{GATE_METRIC}_popularity": self.baseline.flat()[GATE_METRIC],
        }

    def summary(self) -> dict[str, Any]:
        """Plain figures for a person looking at a training run."""
        similarity, n_items = self.artifact.similarity, len(self.artifact.item_ids)
        out: dict[str, Any] = {
            "parameters": self.params,
            "items": n_items,
            "neighbour_pairs": int(similarity.nnz),
            "mean_neighbours": float(similarity.nnz / max(n_items, 1)),
            "fit_seconds": round(self.fit_seconds, 4),
            **self.scores(),
            "training_fingerprint": self.artifact.manifest["training_data"]["fingerprint"],
        }
        data = self.artifact.manifest.get("data")
        if data:
            out |= {"catalog": data["catalog"], "source": data["interactions"], "data_version": data}
            out["events_until_seq"] = int((data.get("events") or {}).get("until_seq", 0))
        if self.selection is not None:
            out["selection_seconds"] = self.artifact.manifest["selection"]["elapsed_s"]
        return out


def training_data(user_items: sp.csr_matrix) -> dict[str, Any]:
    """The manifest's `training_data` block: the fingerprint tells whether two versions saw the same matrix."""
    return {
        "fingerprint": fingerprint(user_items),
        "users": int(user_items.shape[0]),
        "items": int(user_items.shape[1]),
        "interactions": int(user_items.nnz),
    }


def fit_artifact(
    user_logs: pl.DataFrame,
    game_features: pl.DataFrame,
    params: Mapping[str, Any],
    content: ItemContent | None = None,
) -> tuple[ModelArtifact, float]:
    """The model `params` describe, fit on every interaction over the catalogue (what the API serves), with the
    seconds the fit took. The manifest holds what describes the matrix alone; `train` adds how it was chosen.

    The fit and the popularity array (the popular list of new players) see only `trusted` rows
    (`event_trust.training_rows`); the served histories keep every row, so a player whose events were held back
    still never gets their own games recommended.

    Every catalogue game is an item, played or not; a `Hybrid` gives the unplayed ones content neighbours.
    `content` (over the same catalogue) saves recomputing the content similarity a holdout already has."""
    item_ids = catalogue(game_features, user_logs)
    full = build_matrix(training_rows(user_logs), item_ids)  # held-back event rows teach nothing, not even popularity
    if content is None or not np.array_equal(content.item_ids, item_ids):
        content = ItemContent.of(game_features, user_logs, item_ids)
    started = time.perf_counter()
    model = build_model(dict(params), content).fit(full.matrix)
    fit_seconds = time.perf_counter() - started
    # Popularity pairs no items: served as an empty similarity, every answer its popularity fill (the baseline an
    # online experiment compares against)
    n = len(item_ids)
    similarity = getattr(model, "similarity", None)
    if similarity is None:
        similarity = sp.csr_matrix((n, n), dtype=np.float32)
    manifest = {
        "parameters": dict(params),
        "weights": "signed" if similarity.nnz and similarity.data.min() < 0 else "similarity",
        "training_data": training_data(full.matrix),
    }
    popularity = item_popularity(full.matrix)
    factors = model.fold if isinstance(model, FactorModel) else None  # MF: served by fold-in from its factors
    artifact = ModelArtifact(item_ids, similarity, popularity, manifest, factors=factors)
    artifact = artifact.with_serving(user_logs, game_features)
    serving = artifact.serving
    if serving is not None and len(serving.search_order):  # "most popular" in the search box: trusted users first
        order = serving.search_order[np.argsort(-popularity[serving.search_order], kind="stable")]
        artifact.serving = replace(serving, search_order=order.astype(serving.search_order.dtype))
    return artifact, fit_seconds  # served with every user's own history, held-back rows included


def train(
    user_logs: pl.DataFrame,
    game_features: pl.DataFrame,
    params: TrainingParams = TrainingParams(),
    on_trial: TrialCallback | None = None,
) -> TrainingResult:
    """Choose, validate and fit the model to publish.

    Selection sees inner splits of the train fold only, so the validation figure stays an honest estimate; it is
    taken for the model exactly as it will be served (`serving_neighbors` applied). The published matrix is then
    fit on every interaction, since that is what the API serves. `on_trial` sees each selection evaluation.
    """
    split = SplitParams(seed=params.split_seed)
    holdout = Holdout.of(user_logs, game_features, split)
    selection = None
    chosen = params.fixed_model()
    if params.strategy == "select":
        train_fold, _ = holdout.folds("validation")
        selection = select_model_with_report(
            train_fold.matrix,
            time_budget_s=params.time_budget_s,
            families=ITEM_FAMILIES,
            on_trial=on_trial,
            content=holdout.item_content,
            refit=False,  # the chosen params are fit below, as served, on train and then on everything
        )
        chosen = dict(selection.best)
    model_params = {**chosen, "serving_neighbors": params.serving_neighbors}
    validation = holdout.score(model_params)
    baseline = holdout.score(POPULARITY)
    artifact, fit_seconds = fit_artifact(user_logs, game_features, model_params, holdout.item_content)
    artifact.manifest |= {
        "split": asdict(split),
        "metrics": {"validation": validation.flat(), "validation_popularity": baseline.flat()},
        "selection": selection.to_dict() if selection is not None else {},
        "data": provenance(user_logs, game_features),  # sources and data versions: promotion compares sources
        "holdout": holdout.describe(),  # the trusted validation fold: recorded figures on the same one compare
        "trust": held_back(user_logs),
    }
    return TrainingResult(artifact, validation, baseline, selection, fit_seconds)


def held_back(user_logs: pl.DataFrame) -> dict[str, Any]:
    """{"trusted_rows", "held_back": {reason: rows}}: what `event_trust` kept out of this model's training."""
    if "held_back" not in user_logs.columns:
        return {"trusted_rows": user_logs.height, "held_back": {}}
    reasons = user_logs.drop_nulls("held_back").group_by("held_back").len()
    return {
        "trusted_rows": int(user_logs["held_back"].null_count()),
        "held_back": {str(k): int(v) for k, v in sorted(reasons.iter_rows())},
    }


def strongest_pairs(artifact: ModelArtifact, game_features: pl.DataFrame, n: int = 10) -> pl.DataFrame:
    """The `n` heaviest weights by game name: a quick look at whether the neighbours make sense."""
    names = dict(zip(game_features["game_id"].to_list(), game_features["name"].to_list(), strict=True))
    item_ids = artifact.item_ids
    coo = artifact.similarity.tocoo()
    top = np.argsort(-coo.data, kind="stable")[:n]
    return pl.DataFrame(
        {
            "game": [names.get(int(item_ids[i]), str(item_ids[i])) for i in coo.row[top]],
            "neighbour": [names.get(int(item_ids[j]), str(item_ids[j])) for j in coo.col[top]],
            "weight": coo.data[top].astype(float),
        }
    )
