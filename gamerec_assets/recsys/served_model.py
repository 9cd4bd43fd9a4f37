"""A loaded model artifact ready to answer requests: shared by batch_recommendations and the API.

Item-CF scores come first; when a user's neighbourhood yields fewer than N unseen games, the rest of the list is
filled with the most popular unseen games (flagged, so callers can say where each item came from).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from gamerec_assets.recsys.itemcf import recommend_from_similarity
from gamerec_assets.recsys.matrix import _lookup
from gamerec_assets.recsys.model_artifact import ModelArtifact
from gamerec_assets.recsys.topk import dense_rows_topk


@dataclass
class Recommendations:
    """Per row: game ids (-1 where nothing is left), scores, and whether item-CF (True) or popularity made it."""

    game_ids: np.ndarray
    scores: np.ndarray
    from_cf: np.ndarray


class ServingModel:
    def __init__(self, artifact: ModelArtifact) -> None:
        self.artifact = artifact
        self.version = artifact.version or "unversioned"
        self.item_ids = np.asarray(artifact.item_ids, dtype=np.int64)
        self.similarity = sp.csr_matrix(artifact.similarity)
        self.n_items = len(self.item_ids)
        pop = np.asarray(artifact.popularity, np.float64)
        self.popular_order = np.lexsort((np.arange(self.n_items), -pop))
        self.popularity = pop

    def index_of(self, game_ids: np.ndarray | list[int]) -> np.ndarray:
        """Column index per game id (-1 when the model does not know the game)."""
        return _lookup(self.item_ids, np.asarray(game_ids, dtype=np.int64))

    def history_matrix(self, rows: np.ndarray, game_ids: np.ndarray, n_rows: int) -> sp.csr_matrix:
        """A binary n_rows × items matrix from (row, game id) pairs; unknown games are dropped."""
        cols = self.index_of(game_ids)
        keep = cols >= 0
        m = sp.csr_matrix(
            (np.ones(int(keep.sum()), np.float32), (np.asarray(rows)[keep], cols[keep])),
            shape=(n_rows, self.n_items),
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    def recommend(self, history: sp.csr_matrix, n: int, fill_popular: bool = True) -> Recommendations:
        idx, scores = recommend_from_similarity(self.similarity, history, n)
        from_cf = idx >= 0
        if fill_popular and not from_cf.all():
            idx, scores = self._fill_popular(history, idx, scores, n)
        game_ids = np.where(idx >= 0, self.item_ids[np.maximum(idx, 0)], -1)
        return Recommendations(game_ids, scores, from_cf)

    def _fill_popular(
        self, history: sp.csr_matrix, idx: np.ndarray, scores: np.ndarray, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Append the most popular items that are neither seen nor already recommended, in rows with gaps."""
        gaps = np.flatnonzero((idx < 0).any(axis=1))
        sub = history[gaps]
        taken = idx[gaps]
        width = min(self.n_items, n + int(np.diff(sub.indptr).max(initial=0)) + n)
        cand_items = self.popular_order[:width]
        # score = -(popularity rank) so the popular fill sorts after any CF score and in popularity order
        cand = sp.csr_matrix(
            (
                np.tile(np.arange(width, 0, -1, dtype=np.float64), len(gaps)),
                np.tile(cand_items, len(gaps)),
                np.arange(len(gaps) + 1) * width,
            ),
            shape=(len(gaps), self.n_items),
        )
        blocked = sub.copy()
        blocked.data[:] = 1
        r, c = np.nonzero(taken >= 0)
        blocked = blocked + sp.csr_matrix((np.ones(len(r)), (r, taken[r, c])), shape=blocked.shape)
        blocked.data[:] = 1
        cand = (cand - cand.multiply(blocked)).tocsr()
        cand.eliminate_zeros()
        fill_ids, _ = dense_rows_topk(cand, n)
        for_rows = idx[gaps].copy()
        for_scores = scores[gaps].copy()
        n_cf = (for_rows >= 0).sum(axis=1)
        # place the fill after the CF items of each row (vectorised: position = n_cf + j)
        j = np.arange(n)[None, :]
        pos = n_cf[:, None] + j
        ok = (pos < n) & (fill_ids >= 0)
        rr = np.broadcast_to(np.arange(len(gaps))[:, None], ok.shape)[ok]
        for_rows[rr, pos[ok]] = fill_ids[ok]
        for_scores[rr, pos[ok]] = 0.0
        idx = idx.copy()
        scores = scores.copy()
        idx[gaps] = for_rows
        scores[gaps] = for_scores
        return idx, scores

    def similar(self, game_ids: np.ndarray | list[int], n: int) -> tuple[np.ndarray, np.ndarray]:
        """Most similar other games per known game id (game ids, scores); unknown ids raise KeyError."""
        idx = self.index_of(game_ids)
        if (idx < 0).any():
            missing = np.asarray(game_ids)[idx < 0].tolist()
            raise KeyError(f"unknown game ids: {missing}")
        ids, scores = dense_rows_topk(self.similarity[idx], n)
        return np.where(ids >= 0, self.item_ids[np.maximum(ids, 0)], -1), scores


BATCH_SCHEMA = {
    "user_id": pl.Int64,
    "rank": pl.Int32,
    "game_id": pl.Int64,
    "score": pl.Float64,
    "source": pl.Utf8,
    "model_version": pl.Utf8,
}


def batch_frame(model: ServingModel, users: np.ndarray, rows: np.ndarray, game_ids: np.ndarray, k: int) -> pl.DataFrame:
    """Top-k rows for `users` (history given as row index into `users` + game id pairs), batch table schema."""
    recs = model.recommend(model.history_matrix(rows, game_ids, len(users)), k)
    r, c = np.nonzero(recs.game_ids >= 0)
    return pl.DataFrame(
        {
            "user_id": users[r],
            "rank": (c + 1).astype(np.int32),
            "game_id": recs.game_ids[r, c],
            "score": recs.scores[r, c].astype(np.float64),
            "source": np.where(recs.from_cf[r, c], "item_cf", "popular"),
            "model_version": np.full(len(r), model.version),
        },
        schema=BATCH_SCHEMA,
    )
