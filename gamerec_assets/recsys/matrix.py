"""users × items sparse matrices with stable id <-> index maps.

User ids are text (vanity names, UUIDs, or the decimal strings of integer ids: 7 and "7" are one user). Rows are
in `user_order`: shorter ids first, then by text, which is numeric order for decimal ids, so integer-keyed logs
keep the row order (and the seeded folds) they always had.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp


@dataclass(frozen=True)
class Interactions:
    """A CSR users × items matrix and the ids behind its rows (text, in `user_order`) and columns (ascending)."""

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray

    def user_index(self, user_ids: np.ndarray) -> np.ndarray:
        """Row index per user id (text or integer), -1 for unknown users."""
        return _lookup_users(self.user_ids, user_ids)

    def item_index(self, item_ids: np.ndarray) -> np.ndarray:
        """Column index per item id, -1 for unknown items."""
        return _lookup(self.item_ids, item_ids)


def _lookup(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64)
    pos = np.searchsorted(sorted_ids, ids)
    pos = np.clip(pos, 0, max(len(sorted_ids) - 1, 0))
    found = (len(sorted_ids) > 0) & (sorted_ids[pos] == ids) if len(sorted_ids) else np.zeros(len(ids), bool)
    return np.where(found, pos, -1)


def user_text(user_ids: np.ndarray | pl.Series | list) -> pl.Series:
    """User ids as a text Series: integers become their decimal strings."""
    series = user_ids if isinstance(user_ids, pl.Series) else pl.Series("user_id", np.asarray(user_ids))
    return series.cast(pl.Utf8)


def user_order(user_ids: np.ndarray | pl.Series | list) -> np.ndarray:
    """The distinct user ids as text, shorter first, then by text (numeric order for decimal ids)."""
    ids = pl.DataFrame({"user_id": user_text(user_ids)}).unique()
    ordered = ids.sort(pl.col("user_id").str.len_bytes(), pl.col("user_id"))["user_id"]
    return ordered.to_numpy().astype(object)


def _lookup_users(users: np.ndarray, query: np.ndarray | pl.Series | list) -> np.ndarray:
    """Row index of each queried user in `users` (as `user_order` gives them), -1 when absent."""
    index = pl.DataFrame({"user_id": user_text(users), "row": np.arange(len(users), dtype=np.int64)})
    found = pl.DataFrame({"user_id": user_text(query)}).join(index, on="user_id", how="left", maintain_order="left")
    return found["row"].fill_null(-1).to_numpy()


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
    users = user_order(logs["user_id"] if user_ids is None else user_ids)
    items = np.unique(logs["game_id"].to_numpy()) if item_ids is None else np.unique(np.asarray(item_ids, np.int64))
    rows = _lookup_users(users, logs["user_id"])
    cols = _lookup(items, logs["game_id"].to_numpy())
    weights = logs["weight"].to_numpy() if "weight" in logs.columns else np.ones(logs.height)
    keep = (rows >= 0) & (cols >= 0)
    matrix = sp.csr_matrix((weights[keep].astype(np.float32), (rows[keep], cols[keep])), shape=(len(users), len(items)))
    matrix.sum_duplicates()
    matrix.sort_indices()
    return Interactions(matrix, users, items.astype(np.int64))
