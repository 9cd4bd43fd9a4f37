"""Top-K ranking metrics with binary relevance, vectorised over users.

MAP@K and NDCG@K are normalised by min(K, |relevant|) so a perfect list scores 1 for every user; Recall@K divides
by |relevant|. Users without relevant items are left out of every average.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

METRICS = ("precision", "recall", "hit_rate", "map", "ndcg")


def hit_matrix(recommended: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """hits[u, r] is True when the r-th recommendation of row u is in row u of `relevant`."""
    relevant = sp.csr_matrix(relevant)
    n_items = relevant.shape[1]
    rows = np.repeat(np.arange(relevant.shape[0], dtype=np.int64), np.diff(relevant.indptr))
    truth = rows * n_items + relevant.indices.astype(np.int64)
    rec = np.asarray(recommended, dtype=np.int64)
    codes = np.arange(rec.shape[0], dtype=np.int64)[:, None] * n_items + rec
    return np.isin(codes, truth) & (rec >= 0)


def per_user_metrics(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> dict[str, np.ndarray]:
    """Each metric at k for every row that has relevant items (rows without are dropped)."""
    n_rel = np.diff(sp.csr_matrix(relevant).indptr)
    mask = n_rel > 0
    hits = hit_matrix(np.asarray(recommended)[:, :k], relevant)[mask].astype(np.float64)
    n_rel = n_rel[mask].astype(np.float64)
    if hits.shape[1] < k:
        hits = np.pad(hits, ((0, 0), (0, k - hits.shape[1])))
    norm = np.minimum(n_rel, k)
    ranks = np.arange(1, k + 1, dtype=np.float64)
    precision_at = np.cumsum(hits, axis=1) / ranks
    discounts = 1.0 / np.log2(ranks + 1.0)
    idcg = np.cumsum(discounts)[norm.astype(int) - 1]
    n_hits = hits.sum(axis=1)
    return {
        "precision": n_hits / k,
        "recall": n_hits / n_rel,
        "hit_rate": (n_hits > 0).astype(np.float64),
        "map": (precision_at * hits).sum(axis=1) / norm,
        "ndcg": (hits * discounts).sum(axis=1) / idcg,
    }


def ranking_metrics(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> dict[str, float]:
    """Mean Precision, Recall, HitRate, MAP and NDCG at k over rows that have relevant items, and `users`."""
    per_user = per_user_metrics(recommended, relevant, k)
    users = len(per_user["ndcg"])
    if users == 0:
        return {**{m: float("nan") for m in METRICS}, "users": 0}
    return {**{m: float(v.mean()) for m, v in per_user.items()}, "users": users}


def catalogue_coverage(recommended: np.ndarray, n_items: int) -> float:
    rec = np.asarray(recommended)
    return float(len(np.unique(rec[rec >= 0])) / n_items) if n_items else 0.0
