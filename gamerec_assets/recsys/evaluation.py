"""Scoring models under the holdout protocol of `split.py`, and the comparisons built on it.

The publication gate, the evaluation report, the champion re-score and training all score through one `Holdout`,
so a figure from one of them is comparable with the others: same split, same catalogue, same served model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from gamerec_assets.recsys.matrix import Interactions, build_matrix, catalogue, user_order
from gamerec_assets.recsys.metrics import catalogue_coverage, ranking_metrics
from gamerec_assets.recsys.models import build_model
from gamerec_assets.recsys.recommender import Recommender
from gamerec_assets.recsys.selection import METRIC, K, Trial
from gamerec_assets.recsys.split import SplitParams, TemporalParams, TemporalSplit, split_interactions, temporal_split

KS = (5, 10, 20)
GATE_K, GATE_METRIC = K, METRIC  # what selection maximises is what the gate and the champion comparison look at
POPULARITY: dict[str, Any] = {"model": "Popularity"}  # the baseline every published model must beat


@dataclass(frozen=True)
class HoldoutResult:
    target: str
    metrics: dict[int, dict[str, float]]
    coverage: float

    def flat(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{m}@{k}": v for k, row in self.metrics.items() for m, v in row.items() if m != "users"}


class Holdout:
    """One split of the logs over one catalogue; fold matrices are built once however many models are scored."""

    def __init__(self, split: pl.DataFrame, item_ids: np.ndarray, params: SplitParams | None = None) -> None:
        self.split = split
        self.item_ids = item_ids
        self.params = params
        self.users = user_order(split["user_id"])
        self._folds: dict[str, tuple[Interactions, Interactions]] = {}

    @classmethod
    def of(cls, user_logs: pl.DataFrame, game_features: pl.DataFrame, params: SplitParams | None = None) -> Holdout:
        params = params or SplitParams()
        return cls(split_interactions(user_logs, params), catalogue(game_features, user_logs), params)

    @classmethod
    def of_manifest(cls, user_logs: pl.DataFrame, game_features: pl.DataFrame, manifest: Mapping[str, Any]) -> Holdout:
        """The split a stored version was validated on, applied to these logs."""
        return cls.of(user_logs, game_features, SplitParams(**manifest["split"]))

    def folds(self, target: str = "validation") -> tuple[Interactions, Interactions]:
        """(history, truth) for `target`: the history is train (train + validation for test), over every user."""
        if target not in self._folds:
            history_folds = ["train"] if target == "validation" else ["train", "validation"]
            history = build_matrix(self.split.filter(pl.col("fold").is_in(history_folds)), self.item_ids, self.users)
            truth = build_matrix(self.split.filter(pl.col("fold") == target), self.item_ids, self.users)
            self._folds[target] = (history, truth)
        return self._folds[target]

    def evaluate(self, model: Recommender, target: str = "validation", ks: Sequence[int] = KS) -> HoldoutResult:
        """Fit the unfitted `model` on the history of `target` and score the `target` fold."""
        history, truth = self.folds(target)
        rows = np.flatnonzero(np.diff(truth.matrix.indptr) > 0)
        model.fit(history.matrix)
        ids, _ = model.recommend(history.matrix[rows], N=max(ks))
        relevant = truth.matrix[rows]
        metrics = {k: ranking_metrics(ids, relevant, k) for k in ks}
        return HoldoutResult(target, metrics, catalogue_coverage(ids, len(self.item_ids)))

    def score(self, params: Mapping[str, Any], target: str = "validation", ks: Sequence[int] = KS) -> HoldoutResult:
        """The model `params` describe (as served, when they name `serving_neighbors`), scored on `target`."""
        return self.evaluate(build_model(dict(params)), target, ks)


def evaluate_holdout(
    split: pl.DataFrame,
    item_ids: np.ndarray,
    factory: Callable[[], Recommender],
    target: str = "validation",
    ks: Sequence[int] = KS,
) -> HoldoutResult:
    """Fit on the folds before `target` (train; train+validation for test) and score the `target` fold."""
    return Holdout(split, item_ids).evaluate(factory(), target, ks)


def same_training_data(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two manifests were fit and validated on the same matrix and split, so their figures compare."""
    fingerprint = a.get("training_data", {}).get("fingerprint")
    return fingerprint == b.get("training_data", {}).get("fingerprint") and a.get("split") == b.get("split")


def source_change(champion: Mapping[str, Any], challenger: Mapping[str, Any]) -> str | None:
    """What changed between the sources two manifests were trained on ("interactions simulated -> file:/x"), or
    None when neither did. A manifest without sources (older versions) compares as unchanged: there is no
    recorded source to differ from."""
    old, new = champion.get("data") or {}, challenger.get("data") or {}
    changes = [
        f"{key} {old[key]} -> {new[key]}"
        for key in ("catalog", "interactions")
        if key in old and key in new and "unknown" not in (old[key], new[key]) and old[key] != new[key]
    ]
    return "; ".join(changes) or None


def champion_score(
    champion: Mapping[str, Any], challenger: Mapping[str, Any], user_logs: pl.DataFrame, game_features: pl.DataFrame
) -> tuple[float, str]:
    """The champion's validation figure on the challenger's data, and how it was obtained.

    On other data the champion's recorded figure came from other users, and its matrix may have seen the
    challenger's validation items, so its parameters are fit and scored again under the challenger's split.
    """
    recorded = champion.get("metrics", {}).get("validation", {}).get(GATE_METRIC)
    if same_training_data(champion, challenger) and recorded is not None:
        return float(recorded), "recorded (same training data)"
    holdout = Holdout.of_manifest(user_logs, game_features, challenger)
    return holdout.score(champion["parameters"], "validation", (10,)).flat()[
        GATE_METRIC
    ], "re-evaluated on the new data"


def best_per_family(trials: Sequence[Trial]) -> dict[str, Trial]:
    """The best params each model family reached during selection (most splits, then highest mean)."""
    best: dict[str, Trial] = {}
    for t in sorted(trials, key=lambda t: (t.n_splits, t.ndcg)):
        best[t.model] = t
    return best


def report_candidates(manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What the evaluation report scores besides popularity: the published params, and every other family at its
    best selection params, served the same way (so the report compares models, not serving budgets)."""
    published = dict(manifest["parameters"])
    serving = published.get("serving_neighbors")
    trials = [Trial.from_dict(t) for t in manifest.get("selection", {}).get("trials", [])]
    candidates: dict[str, dict[str, Any]] = {"published": published}
    for family, trial in best_per_family(trials).items():
        params = {**trial.params, **({"serving_neighbors": serving} if serving else {})}
        if params != published:
            candidates[family] = params
    return candidates


def temporal_holdout(
    user_logs: pl.DataFrame, game_features: pl.DataFrame, params: TemporalParams | None = None
) -> tuple[Holdout | None, TemporalSplit]:
    """The temporal protocol of `split.py` as a Holdout (score its "test" target: fit on everything before the
    cut-off), or None with the reason in the split's info when the logs have too few timed interactions."""
    split = temporal_split(user_logs, params or TemporalParams())
    if split.frame is None:
        return None, split
    return Holdout(split.frame, catalogue(game_features, user_logs)), split
