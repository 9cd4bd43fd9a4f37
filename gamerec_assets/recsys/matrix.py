"""users × items sparse matrices with stable id <-> index maps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp


@dataclass(frozen=True)
class Interactions:
    """A CSR users × items matrix and the ids behind its rows and columns (both sorted ascending)."""

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray

    def user_index(self, user_ids: np.ndarray) -> np.ndarray:
        """Row index per user id, -1 for unknown users."""
        return _lookup(self.user_ids, user_ids)

    def item_index(self, item_ids: np.ndarray) -> np.ndarray:
        """Column index per item id, -1 for unknown items."""
        return _lookup(self.item_ids, item_ids)


def _lookup(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64)
    pos = np.searchsorted(sorted_ids, ids)
    pos = np.clip(pos, 0, max(len(sorted_ids) - 1, 0))
    found = (len(sorted_ids) > 0) & (sorted_ids[pos] == ids) if len(sorted_ids) else np.zeros(len(ids), bool)
    return np.where(found, pos, -1)


def catalogue(game_features: pl.DataFrame, user_logs: pl.DataFrame) -> np.ndarray:
    """Every game a model may score: the catalogue plus anything played (real logs can hold unmatched titles)."""
    return np.union1d(game_features["game_id"].to_numpy(), user_logs["game_id"].unique().to_numpy())


def item_popularity(user_items: sp.csr_matrix) -> np.ndarray:
    """Users per item, whatever the weights: what the served model falls back on for short histories."""
    binary = user_items.copy()
    binary.data[:] = 1
    return np.asarray(binary.sum(axis=0)).ravel()


def build_matrix(
    logs: pl.DataFrame, item_ids: np.ndarray | None = None, user_ids: np.ndarray | None = None
) -> Interactions:
    """Build from user_id, game_id[, weight]; duplicate pairs are summed; rows outside the given ids are dropped."""
    users = np.unique(logs["user_id"].to_numpy()) if user_ids is None else np.unique(np.asarray(user_ids, np.int64))
    items = np.unique(logs["game_id"].to_numpy()) if item_ids is None else np.unique(np.asarray(item_ids, np.int64))
    rows = _lookup(users, logs["user_id"].to_numpy())
    cols = _lookup(items, logs["game_id"].to_numpy())
    weights = logs["weight"].to_numpy() if "weight" in logs.columns else np.ones(logs.height)
    keep = (rows >= 0) & (cols >= 0)
    matrix = sp.csr_matrix((weights[keep].astype(np.float32), (rows[keep], cols[keep])), shape=(len(users), len(items)))
    matrix.sum_duplicates()
    matrix.sort_indices()
    return Interactions(matrix, users.astype(np.int64), items.astype(np.int64))
