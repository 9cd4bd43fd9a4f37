"""A loaded model artifact ready to answer: the batch recommendations and the API's requests share it.

Item-CF scores come first; when a user's neighbourhood yields fewer than N unseen games, the rest of the list is
filled with the most popular unseen games (flagged, so callers can say where each item came from). A fill item's
score is its popularity relative to the most played game (`popular_score`: plays / max plays, in (0, 1]; 0 only
for a game nobody played, which fills a list only when every played game is taken): it orders the fill and says
how popular the game is, and is not comparable with the item-CF scores before it.

Two callers, two shapes of the same answers. The batch path (`recommend`, `similar`) ranks many users at once
from a sparse history matrix, in game ids. The request path (`recommend_history`, `neighbours`) ranks one history
or one item in model indices with the least work per call: it reads the similarity's CSR arrays and the popular
order that the constructor prepared as plain attributes, so a request pays no conversion, and its answers equal the
batch path's (a test compares every user).

A matrix-factorisation version (`artifact.factors`, `factors.FoldIn`) ranks by its fold-in instead: the history is
folded into a user vector, every item scored (one matvec), the history and non-positive scores left out, popular
fill after, and `because` names the history games with the largest exact contributions to each item's score. Its
similarity matrix holds each item's nearest items by factor cosine, so `similar` and `neighbours` are unchanged.
"Item-CF" below then means "the model's own ranking" (the API's `item_cf` source).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from gamerec_assets.recsys.factors import one_blas_thread
from gamerec_assets.recsys.itemcf import recommend_from_similarity
from gamerec_assets.recsys.kernels import recommend_history
from gamerec_assets.recsys.matrix import _lookup
from gamerec_assets.recsys.model_artifact import ModelArtifact
from gamerec_assets.recsys.models import dense_topn
from gamerec_assets.recsys.topk import dense_rows_topk

BECAUSE = 3  # history items that explain each item-CF recommendation


@dataclass
class Recommendations:
    """Per row: game ids (-1 where nothing is left), scores, and whether item-CF (True) or popularity made it."""

    game_ids: np.ndarray
    scores: np.ndarray
    from_cf: np.ndarray


@dataclass(frozen=True)
class Recommended:
    """One ranked list: model item indices and scores; the first n_cf come from item-CF (each with its `because`
    item indices), the rest is popularity fill (score: `ServingModel.popular_score`).

    Plain lists, not arrays: the API formats them item by item, and lists are what that loop reads fastest.
    """

    idx: list[int]
    scores: list[float]
    n_cf: int
    because: list[list[int]]

    @property
    def from_cf(self) -> np.ndarray:
        return np.arange(len(self.idx)) < self.n_cf


class ServingModel:
    """One artifact's item ids, similarity and popularity, and every ranking the batch and the API make from them."""

    def __init__(self, artifact: ModelArtifact) -> None:
        self.artifact = artifact
        self.version = artifact.version or "unversioned"
        self.item_ids = np.asarray(artifact.item_ids, dtype=np.int64)
        self.similarity = sp.csr_matrix(artifact.similarity)
        self.n_items = len(self.item_ids)
        pop = np.asarray(artifact.popularity, np.float64)
        self.popular_order = np.lexsort((np.arange(self.n_items), -pop))
        self.popularity = pop
        top = float(pop.max(initial=0.0))
        self.popular_score = pop / top if top > 0 else np.zeros_like(pop)  # a fill item's score (module docstring)
        # the request path's forms of the same data: CSR arrays for the kernel, Python ints for the short walks
        self.sim_arrays = (self.similarity.indptr, self.similarity.indices, self.similarity.data)
        self.popular_list: list[int] = self.popular_order.tolist()
        self.popular_score_list: list[float] = self.popular_score.tolist()
        # game id -> model item index: for a few ids a dict lookup beats numpy
        self.item_pos: dict[int, int] = dict(zip(self.item_ids.tolist(), range(self.n_items), strict=True))
        self.fold = artifact.factors  # an MF version ranks by fold-in (module docstring); None: item-item
        if self.fold is not None:  # the float64 factors and G⁻¹, prepared once at load rather than per request
            self.fold.factors64  # noqa: B018
            self.fold.gram_inv  # noqa: B018

    # -- ids -----------------------------------------------------------------------------------------------------

    def index_of(self, game_ids: np.ndarray | list[int]) -> np.ndarray:
        """Column index per game id (-1 when the model does not know the game)."""
        return _lookup(self.item_ids, np.asarray(game_ids, dtype=np.int64))

    def item_index(self, game_id: int) -> int:
        """Model item index of one game id, -1 when the model does not know it."""
        return self.item_pos.get(game_id, -1)

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

    # -- many users at once (batch) ------------------------------------------------------------------------------

    def recommend(self, history: sp.csr_matrix, N: int, fill_popular: bool = True) -> Recommendations:
        """Top-N game ids per history row, item-CF first, popular fill after; `fill_popular=False` keeps the -1
        gaps, to compare the served ranking with a model's own."""
        if self.fold is not None:
            idx, scores = self.fold.rank(history, N)
        else:
            idx, scores = recommend_from_similarity(self.similarity, history, N)
        from_cf = idx >= 0
        if fill_popular and not from_cf.all():
            idx, scores = self._fill_popular(history, idx, scores, N)
        game_ids = np.where(idx >= 0, self.item_ids[np.maximum(idx, 0)], -1)
        return Recommendations(game_ids, scores, from_cf)

    def _fill_popular(
        self, history: sp.csr_matrix, idx: np.ndarray, scores: np.ndarray, N: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Append the most popular items that are neither seen nor already recommended, in rows with gaps.

        Vectorised over the rows; `_popular_after` is the same fill for one list.
        """
        gaps = np.flatnonzero((idx < 0).any(axis=1))
        sub = history[gaps]
        taken = idx[gaps]
        width = min(self.n_items, N + int(np.diff(sub.indptr).max(initial=0)) + N)
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
        fill_ids, _ = dense_rows_topk(cand, N)
        for_rows = idx[gaps].copy()
        for_scores = scores[gaps].copy()
        n_cf = (for_rows >= 0).sum(axis=1)
        # place the fill after the CF items of each row (vectorised: position = n_cf + j)
        j = np.arange(N)[None, :]
        pos = n_cf[:, None] + j
        ok = (pos < N) & (fill_ids >= 0)
        rr = np.broadcast_to(np.arange(len(gaps))[:, None], ok.shape)[ok]
        for_rows[rr, pos[ok]] = fill_ids[ok]
        for_scores[rr, pos[ok]] = self.popular_score[fill_ids[ok]]
        idx = idx.copy()
        scores = scores.copy()
        idx[gaps] = for_rows
        scores[gaps] = for_scores
        return idx, scores

    def similar(self, game_ids: np.ndarray | list[int], N: int) -> tuple[np.ndarray, np.ndarray]:
        """Most similar other games per known game id (game ids, scores); unknown ids raise KeyError."""
        idx = self.index_of(game_ids)
        if (idx < 0).any():
            missing = np.asarray(game_ids)[idx < 0].tolist()
            raise KeyError(f"unknown game ids: {missing}")
        ids, scores = dense_rows_topk(self.similarity[idx], N)
        return np.where(ids >= 0, self.item_ids[np.maximum(ids, 0)], -1), scores

    # -- one request ---------------------------------------------------------------------------------------------

    def recommend_history(
        self,
        history: np.ndarray | list[int],
        N: int,
        allowed: np.ndarray | None = None,
        weight: np.ndarray | None = None,
    ) -> Recommended:
        """score(j) = Σ_{i in history} sim(i, j) over unseen j with a positive score, top-N (ties: lower index);
        popular fill after. `history`: sorted, duplicate-free model item indices.

        Same ranking as `recommend` on a binary history row, but one compiled kernel call
        (`kernels.recommend_history`) whose cost follows the history's neighbourhood, never the catalogue, and
        with the `BECAUSE` history items that explain each item-CF pick. `allowed` (a bool mask over the items, a
        request's filter; `item_filter.allowed_mask`): only allowed items are ranked and filled, so the list holds
        N items whenever N allowed unseen items exist. None: unfiltered, no extra work. `weight` (a positive
        multiplier per item, a request's boosts): every score, item-CF and fill, is multiplied by it before ranking,
        so the fill is ordered by boosted popularity. None: no boost, no extra work.
        """
        h = np.asarray(history, dtype=np.int64)
        if h.size and self.fold is not None:
            ids, scores, because_rows = self._fold_history(h, N, allowed, weight)
            top = ids.tolist()
            score_list = scores.tolist()
            because = [[i for i in row if i >= 0] for row in because_rows.tolist()]
        elif h.size:
            ids, scores, because_rows = recommend_history(
                self.sim_arrays, h, N, BECAUSE, allowed=allowed, weight=weight
            )
            top = ids.tolist()
            score_list = scores.tolist()
            because = [[i for i in row if i >= 0] for row in because_rows.tolist()]
        else:
            top, score_list, because = [], [], []
        n_cf = len(top)
        if n_cf < N:
            fill = self._popular_after(h, top, N - n_cf, allowed, weight)
            if weight is None:
                fill_scores = self.popular_score_list
                filled = [fill_scores[i] for i in fill]
            else:
                filled = (self.popular_score[fill] * weight[fill]).tolist()
            return Recommended(top + fill, score_list + filled, n_cf, because + [[] for _ in fill])
        return Recommended(top, score_list, n_cf, because)

    def _fold_history(
        self, h: np.ndarray, N: int, allowed: np.ndarray | None = None, weight: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """An MF version's ranking of one history: (item indices, float32 scores, (n, BECAUSE) history items padded
        -1), the same ranking as `recommend` on the history's row (same fold-in kernel, same top-n)."""
        fold = self.fold
        assert fold is not None
        with one_blas_thread():  # one matvec over the catalogue: BLAS's own threads only add latency here
            scores = fold.factors64 @ fold.history_vector(h)
        scores[h] = -np.inf
        scores[scores <= 0] = -np.inf
        if allowed is not None:
            scores[~allowed] = -np.inf
        if weight is not None:
            scores *= weight
        ids, values = dense_topn(scores[None, :], N)
        ids, values = ids[0][ids[0] >= 0], values[0][ids[0] >= 0]
        because = np.full((len(ids), BECAUSE), -1, dtype=np.int64)
        if len(ids):
            w = fold.contributions(h, ids)
            w[w <= 0] = -np.inf  # a game that pulls the score down explains nothing
            top, _ = dense_topn(w, min(BECAUSE, len(h)))
            because[:, : top.shape[1]] = np.where(top >= 0, h[np.maximum(top, 0)], -1)
        return ids, values, because

    def _popular_after(
        self,
        history: np.ndarray,
        taken: list[int],
        N: int,
        allowed: np.ndarray | None = None,
        weight: np.ndarray | None = None,
    ) -> list[int]:
        """The N most popular items that are neither in history nor already taken (and `allowed`, when given): a
        short Python walk, cheaper than `_fill_popular`'s sparse algebra for one list. A filter first narrows the
        popular order to its allowed items (one vectorised pass), so the walk stays short however few pass."""
        blocked = set(history.tolist())
        blocked.update(taken)
        out: list[int] = []
        order = self.popular_list
        if weight is not None:
            order = self._boosted_order(allowed, weight, len(blocked) + N)
        elif allowed is not None:
            kept = self.popular_order[allowed[self.popular_order]]
            order = kept[: len(blocked) + N].tolist()
        for i in order:
            if i not in blocked:
                out.append(i)
                if len(out) == N:
                    break
        return out

    def _boosted_order(self, allowed: np.ndarray | None, weight: np.ndarray, m: int) -> list[int]:
        """The m best (allowed) items by boosted popularity (popular_score × weight desc, then popularity order):
        a partition and a sort of m items, never a sort of the catalogue."""
        cand = self.popular_order if allowed is None else self.popular_order[allowed[self.popular_order]]
        w = self.popular_score[cand] * weight[cand]
        m = min(m, len(cand))
        if m == 0:
            return []
        t = np.partition(w, len(w) - m)[len(w) - m]  # the m-th largest boosted score
        above = np.flatnonzero(w > t)
        pos = np.sort(np.concatenate([above, np.flatnonzero(w == t)[: m - len(above)]]))
        return cand[pos[np.argsort(-w[pos], kind="stable")]].tolist()

    def neighbours(self, item: int, N: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The N nearest neighbours of one item (indices, scores), from its CSR row; may be fewer than N. `allowed`
        (a bool mask over the items): only those neighbours, the best N of them.

        Same order as `similar` (score desc, index asc) without its padding or id mapping. Only positive weights:
        a signed model's (EASE) negative weight says "played instead of", not "similar", and is never shown.
        """
        indptr, indices, data = self.sim_arrays
        lo, hi = indptr[item], indptr[item + 1]
        keep = data[lo:hi] > 0
        if allowed is not None:
            keep &= allowed[indices[lo:hi]]
        cols = indices[lo:hi][keep]
        vals = data[lo:hi][keep]
        order = np.lexsort((cols, -vals))[:N]
        return cols[order].astype(np.int64), vals[order]


BATCH_SCHEMA = {
    "user_id": pl.Utf8,  # text, like user_logs.user_id (an integer id is its decimal string)
    "rank": pl.Int32,
    "game_id": pl.Int64,
    "score": pl.Float64,
    "source": pl.Utf8,
    "model_version": pl.Utf8,
}


def batch_frame(model: ServingModel, users: np.ndarray, rows: np.ndarray, game_ids: np.ndarray, N: int) -> pl.DataFrame:
    """Top-N rows for `users` (history given as row index into `users` + game id pairs), batch table schema.

    `users` may hold text or integer ids; the frame's user_id is text either way."""
    recs = model.recommend(model.history_matrix(rows, game_ids, len(users)), N)
    r, c = np.nonzero(recs.game_ids >= 0)
    user_ids = pl.Series("user_id", np.asarray(users)).cast(pl.Utf8)
    return pl.DataFrame(
        {
            "user_id": user_ids.gather(r) if len(r) else pl.Series("user_id", [], pl.Utf8),
            "rank": (c + 1).astype(np.int32),
            "game_id": recs.game_ids[r, c],
            "score": recs.scores[r, c].astype(np.float64),
            "source": np.where(recs.from_cf[r, c], "item_cf", "popular"),
            "model_version": np.full(len(r), model.version),
        },
        schema=BATCH_SCHEMA,
    )
