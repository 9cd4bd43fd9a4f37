"""Fitting and scoring models under the holdout protocol of `split.py`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import polars as pl
import scipy.sparse as sp

from gamerec_assets.recsys.matrix import build_matrix
from gamerec_assets.recsys.metrics import catalogue_coverage, ranking_metrics

KS = (5, 10, 20)


class Recommender(Protocol):
    params: Any

    def fit(self, user_items: sp.csr_matrix) -> Any: ...

    def recommend(self, user_items: sp.csr_matrix, N: int = 10) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class HoldoutResult:
    target: str
    metrics: dict[int, dict[str, float]]
    coverage: float

    def flat(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{m}@{k}": v for k, row in self.metrics.items() for m, v in row.items() if m != "users"}


def evaluate_holdout(
    split: pl.DataFrame,
    item_ids: np.ndarray,
    factory: Callable[[], Recommender],
    target: str = "validation",
    ks: Sequence[int] = KS,
) -> HoldoutResult:
    """Fit on the folds before `target` (train; train+validation for test) and score the `target` fold."""
    history_folds = ["train"] if target == "validation" else ["train", "validation"]
    users = np.unique(split["user_id"].to_numpy())
    history = build_matrix(split.filter(pl.col("fold").is_in(history_folds)), item_ids, users)
    truth = build_matrix(split.filter(pl.col("fold") == target), item_ids, users)
    rows = np.flatnonzero(np.diff(truth.matrix.indptr) > 0)
    model = factory()
    model.fit(history.matrix)
    ids, _ = model.recommend(history.matrix[rows], N=max(ks))
    relevant = truth.matrix[rows]
    metrics = {k: ranking_metrics(ids, relevant, k) for k in ks}
    return HoldoutResult(target, metrics, catalogue_coverage(ids, len(item_ids)))
