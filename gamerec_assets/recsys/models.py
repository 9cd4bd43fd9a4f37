"""The model zoo: item-item models that all learn one items × items matrix, and the factory `build_model`.

Every model keeps the `Recommender` contract, exposes the learned matrix as `.similarity` (CSR, rows = source
item), scores users with `score = user_items @ similarity` and so is served by the same artifact/serving code as
`ItemCF`. What differs is how the matrix is learned:

- `AsymmetricCosine`: co-occurrence counts / (|U_i|^α |U_j|^(1-α) + shrink) (Aiolli 2013); α trades source-item
  against target-item popularity, shrink damps pairs seen by few users.
- `TFIDF`, `BM25`: implicit's TFIDFRecommender / BM25Recommender (user-IDF weighting before the item product), kept
  bit-for-bit compatible so their results can be compared with implicit's.
- `RP3beta`: three-step random walk user → item → user → item with transition probabilities raised to α and the
  target divided by popularity^β (Paudel et al. 2016; the form of Dacrema et al. 2019).
- `EASE`: closed-form linear item-item autoencoder (Steck 2019); dense, so only below a catalogue size.
- `ALS`, `BPR` (`factors.py`): matrix factorisation, served from item factors by a fold-in of the history
  rather than an item-item matrix; `build_model` knows them too.
- `Hybrid`: any of the above item-item models blended per item pair with the catalogue's content similarity
  (`content.py`), the collaborative part weighted n / (n + β) by how much behaviour the less-played item of the
  pair has, so a game nobody has played yet still has neighbours and can be recommended.

`neighbors` is the number of other items each row keeps, except for `TFIDF`/`BM25`, whose `neighbors` counts the
item itself as implicit's `K` does (so the recommendations equal implicit's).

EASE weights can be negative. `recommend` ranks negative-weight models exactly (an unseen item with no evidence
scores 0 and ranks above a negative score), through dense scores over row blocks; non-negative models use the
sparse path of `recommend_from_similarity`, which is what serving runs. `ServableModel` wraps any of them (or
`ItemCF`) in the form the artifact publishes, so evaluation measures what will be served.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from gamerec_assets.recsys.content import ItemContent
from gamerec_assets.recsys.itemcf import ItemCF, Popularity, recommend_from_similarity
from gamerec_assets.recsys.recommender import Recommender
from gamerec_assets.recsys.topk import rank_within_rows, sparse_topk

BLOCK_ITEMS = 2048
EASE_MAX_ITEMS = 15_000


def _as_float_csr(user_items: sp.spmatrix) -> sp.csr_matrix:
    x = sp.csr_matrix(user_items, dtype=np.float64)
    x.sum_duplicates()
    if x.nnz and x.data.min() < 0:
        raise ValueError("user_items must be non-negative")
    x.eliminate_zeros()
    return x


def _binary(x: sp.csr_matrix) -> sp.csr_matrix:
    b = x.copy()
    b.data = np.ones_like(b.data)
    return b


BlockTransform = Callable[[np.ndarray, slice], np.ndarray]


def block_rows(n_items: int, budget: int = 1 << 23) -> int:
    """Rows per dense block so that one block holds about `budget` float64 values (64 MB)."""
    return max(1, min(BLOCK_ITEMS, budget // max(n_items, 1)))


def topn_to_csr(ids: np.ndarray, values: np.ndarray, n_cols: int) -> sp.csr_matrix:
    """CSR rows from padded (rows, n) top-n arrays; pads (-1) are dropped, order kept per row by column."""
    keep = ids >= 0
    rows = np.broadcast_to(np.arange(ids.shape[0])[:, None], ids.shape)[keep]
    out = sp.csr_matrix((values[keep], (rows, ids[keep])), shape=(ids.shape[0], n_cols), dtype=np.float32)
    out.sort_indices()
    return out


def blockwise_item_product(
    left: sp.csr_matrix,
    right: sp.csr_matrix,
    neighbors: int,
    transform: BlockTransform | None = None,
    self_counts: bool = False,
) -> sp.csr_matrix:
    """Top-`neighbors` per row of transform(leftᵀ @ right) for non-negative products, in dense row blocks.

    Exact zeros are 'no co-occurrence' and never kept. Without `self_counts` the diagonal is dropped before the
    top-k; with it (implicit's `K`), after. Ties go to the lower column index, as in `sparse_topk`.
    """
    if neighbors < 1:
        raise ValueError(f"neighbors must be >= 1, got {neighbors}")
    left_csc = sp.csc_matrix(left)
    n_items = right.shape[1]
    step = block_rows(n_items)
    blocks = []
    for start in range(0, n_items, step):
        cols = slice(start, min(start + step, n_items))
        block = (left_csc[:, cols].T @ right).toarray()
        if transform is not None:
            block = transform(block, cols)
        diag = (np.arange(block.shape[0]), np.arange(cols.start, cols.stop))
        block[block == 0] = -np.inf
        if not self_counts:
            block[diag] = -np.inf
        ids, values = dense_topn(block, neighbors)
        if self_counts:
            ids[ids == np.arange(cols.start, cols.stop)[:, None]] = -1
        blocks.append(topn_to_csr(ids, values, n_items))
    if not blocks:
        return sp.csr_matrix((0, n_items), dtype=np.float32)
    full = sp.vstack(blocks, format="csr")
    full.sort_indices()
    return sp.csr_matrix(full, dtype=np.float32)


def dense_topn(scores: np.ndarray, N: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-N columns per row of a dense score block; -inf marks excluded items (padded with -1 / 0).

    Ties go to the lower index: a partition finds each row's N-th best value, and only entries at or above it are
    sorted.
    """
    n_rows, n_cols = scores.shape
    ids = np.full((n_rows, N), -1, dtype=np.int64)
    out = np.zeros((n_rows, N), dtype=np.float32)
    take = min(N, n_cols)
    if n_rows == 0 or take == 0:
        return ids, out
    kth = -np.partition(-scores, take - 1, axis=1)[:, take - 1]
    rows, cols = np.nonzero((scores >= kth[:, None]) & np.isfinite(scores))
    values = scores[rows, cols]
    order = np.lexsort((cols, -values, rows))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))])
    rank = rank_within_rows(indptr, order)
    sel = order[rank < take]
    ids[rows[sel], rank[rank < take]] = cols[sel]
    out[rows[sel], rank[rank < take]] = values[sel]
    return ids, out


def rank_unseen(
    similarity: sp.csr_matrix | np.ndarray, user_items: sp.csr_matrix, N: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-N unseen items per row by score = user_items @ similarity, among items with a positive score.

    For a non-negative similarity this is exactly `recommend_from_similarity` (same values, order and padding)
    without sorting every candidate. With negative weights (EASE) a non-positive score means 'no evidence for'
    and is left out like a zero, so rows with fewer than N positive items are padded and the serving layer fills
    them with popular games instead of items the model scores below 'unrelated'.
    """
    user_items = sp.csr_matrix(user_items, dtype=np.float32)
    n_rows, n_items = user_items.shape
    ids = np.full((n_rows, N), -1, dtype=np.int64)
    top = np.zeros((n_rows, N), dtype=np.float32)
    step = block_rows(n_items, budget=1 << 24)
    for start in range(0, n_rows, step):
        rows = user_items[start : start + step]
        product = rows @ similarity
        scores = np.asarray(product.toarray() if sp.issparse(product) else product)
        scores[scores <= 0] = -np.inf
        seen_rows = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
        scores[seen_rows, rows.indices] = -np.inf
        ids[start : start + step], top[start : start + step] = dense_topn(scores, N)
    return ids, top


def positive_neighbours(
    similarity: sp.csr_matrix | np.ndarray, item_ids: np.ndarray, N: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-N columns by weight of the given rows, positive weights only (padded -1 / 0), in dense row blocks.

    A negative weight (EASE) is evidence against the pair, not a neighbour, so it is never listed.
    """
    ids = np.full((len(item_ids), N), -1, dtype=np.int64)
    top = np.zeros((len(item_ids), N), dtype=np.float32)
    step = block_rows(similarity.shape[1], budget=1 << 24)
    for start in range(0, len(item_ids), step):
        rows = similarity[item_ids[start : start + step]]
        block = np.array(rows.toarray() if sp.issparse(rows) else rows, dtype=np.float32)
        block[block <= 0] = -np.inf
        ids[start : start + step], top[start : start + step] = dense_topn(block, N)
    return ids, top


class SimilarityModel(Recommender):
    """Shared fit/recommend/similar_items over a learned items × items matrix (see the module docstring)."""

    name: ClassVar[str] = "SimilarityModel"

    def __init__(self) -> None:
        self.similarity: sp.csr_matrix | None = None

    def _learn(self, x: sp.csr_matrix) -> sp.csr_matrix:
        raise NotImplementedError

    def fit(self, user_items: sp.spmatrix) -> Self:
        self.similarity = self._learn(_as_float_csr(user_items))
        return self

    def _learned(self) -> sp.csr_matrix | np.ndarray | None:
        return self.similarity

    def _recommend(
        self, learned: sp.csr_matrix | np.ndarray, user_items: sp.csr_matrix, N: int
    ) -> tuple[np.ndarray, np.ndarray]:
        return rank_unseen(learned, user_items, N)

    def _similar_items(
        self, learned: sp.csr_matrix | np.ndarray, item_ids: np.ndarray, N: int
    ) -> tuple[np.ndarray, np.ndarray]:
        return positive_neighbours(learned, item_ids, N)


class AsymmetricCosine(SimilarityModel):
    """sim(i, j) = |U_i ∩ U_j| / (|U_i|^α |U_j|^(1-α) + shrink) on binary feedback; α = 0.5, shrink = 0 is cosine."""

    name = "AsymmetricCosine"

    def __init__(self, alpha: float = 0.5, shrink: float = 10.0, neighbors: int = 100) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if shrink < 0:
            raise ValueError(f"shrink must be >= 0, got {shrink}")
        self.alpha, self.shrink, self.neighbors = float(alpha), float(shrink), int(neighbors)

    def _hyperparameters(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "shrink": self.shrink, "neighbors": self.neighbors}

    def _learn(self, x: sp.csr_matrix) -> sp.csr_matrix:
        b = _binary(x)
        counts = np.asarray(b.sum(axis=0)).ravel()
        src, dst = counts**self.alpha, counts ** (1.0 - self.alpha)

        def scale(block: np.ndarray, cols: slice) -> np.ndarray:
            return block / (src[cols, None] * dst[None, :] + self.shrink + 1e-12)

        return blockwise_item_product(b, b, self.neighbors, scale)


def tfidf_weight(x: sp.csr_matrix) -> sp.csr_matrix:
    """implicit's tfidf_weight on items × users, returned users × items: sqrt(x) · idf(user), idf from #items."""
    n_items = float(x.shape[1])
    idf = np.log(n_items) - np.log1p(np.diff(x.indptr))
    w = x.copy()
    w.data = np.sqrt(w.data) * np.repeat(idf, np.diff(x.indptr))
    return w


def bm25_weight(x: sp.csr_matrix, k1: float, b: float) -> sp.csr_matrix:
    """implicit's bm25_weight on items × users, returned users × items: items are the documents."""
    n_items = float(x.shape[1])
    idf = np.log(n_items) - np.log1p(np.diff(x.indptr))
    item_len = np.asarray(x.sum(axis=0)).ravel()
    avg = item_len.mean() if item_len.size else 1.0
    norm = (1.0 - b) + b * item_len / (avg if avg > 0 else 1.0)
    w = x.copy()
    w.data = w.data * (k1 + 1.0) / (k1 * norm[w.indices] + w.data) * np.repeat(idf, np.diff(x.indptr))
    return w


class TFIDF(SimilarityModel):
    """Cosine of user-IDF weighted item vectors: users with huge libraries say less about any pair of items."""

    name = "TFIDF"

    def __init__(self, neighbors: int = 100) -> None:
        super().__init__()
        self.neighbors = int(neighbors)

    def _hyperparameters(self) -> dict[str, Any]:
        return {"neighbors": self.neighbors}

    def _learn(self, x: sp.csr_matrix) -> sp.csr_matrix:
        w = tfidf_weight(x)
        norms = np.sqrt(np.asarray(w.multiply(w).sum(axis=0)).ravel())
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        w = (w @ sp.diags(inv)).tocsr()
        return blockwise_item_product(w, w, self.neighbors, self_counts=True)


class BM25(SimilarityModel):
    """BM25-weighted item co-occurrence: saturating user weights (k1) and item-length normalisation (b)."""

    name = "BM25"

    def __init__(self, neighbors: int = 100, k1: float = 1.2, b: float = 0.75) -> None:
        super().__init__()
        self.neighbors, self.k1, self.b = int(neighbors), float(k1), float(b)

    def _hyperparameters(self) -> dict[str, Any]:
        return {"neighbors": self.neighbors, "k1": self.k1, "b": self.b}

    def _learn(self, x: sp.csr_matrix) -> sp.csr_matrix:
        w = bm25_weight(x, self.k1, self.b)
        return blockwise_item_product(w, w, self.neighbors, self_counts=True)


class RP3beta(SimilarityModel):
    """W_ij = Σ_u P(i→u)^α P(u→j)^α / pop_j^β, top-`neighbors` per row.

    The random walk finds items reachable through shared users; dividing by popularity^β keeps blockbusters from
    dominating every list (the main weakness of plain co-occurrence on game libraries).
    """

    name = "RP3beta"

    def __init__(self, alpha: float = 1.0, beta: float = 0.5, neighbors: int = 100) -> None:
        super().__init__()
        if alpha <= 0 or beta < 0:
            raise ValueError(f"need alpha > 0 and beta >= 0, got {alpha}, {beta}")
        self.alpha, self.beta, self.neighbors = float(alpha), float(beta), int(neighbors)

    def _hyperparameters(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta": self.beta, "neighbors": self.neighbors}

    def _learn(self, x: sp.csr_matrix) -> sp.csr_matrix:
        b = _binary(x)
        pop = np.asarray(b.sum(axis=0)).ravel()
        user_sum = np.asarray(x.sum(axis=1)).ravel()
        # P(u→j): the user's row normalised to 1; P(i→u): the item's users, uniform
        p_ui = x.multiply(1.0 / np.where(user_sum > 0, user_sum, 1.0)[:, None]).tocsr()
        p_iu_t = b.multiply(1.0 / np.where(pop > 0, pop, 1.0)[None, :]).tocsr()
        p_ui.data **= self.alpha
        p_iu_t.data **= self.alpha
        inv_pop = np.divide(1.0, pop**self.beta, out=np.zeros_like(pop), where=pop > 0)

        def damp(block: np.ndarray, cols: slice) -> np.ndarray:
            return block * inv_pop[None, :]

        return blockwise_item_product(p_iu_t, p_ui, self.neighbors, damp)


def ease_weights(x: sp.csr_matrix, l2: float) -> np.ndarray:
    """B = I - P·diag(1/diag(P)), P = (XᵀX + λI)^-1, zero diagonal (Steck 2019), as dense float32.

    A Cholesky inverse (half the flops of a general one). Items nobody interacted with have B rows and columns of
    exactly 0, so the solve skips them.
    """
    n_items = x.shape[1]
    active = np.flatnonzero(np.diff(sp.csc_matrix(x).indptr) > 0)
    xa = sp.csc_matrix(x)[:, active]
    gram = (xa.T @ xa).toarray()
    gram[np.diag_indices_from(gram)] += l2
    chol, info = lapack.dpotrf(gram, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"Gram matrix is not positive definite (dpotrf info={info})")
    p, info = lapack.dpotri(chol, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky inverse failed (dpotri info={info})")
    for start in range(0, len(active), 512):  # dpotri fills the upper triangle only: mirror it, cache-friendly
        block = slice(start, start + 512)
        p[block, :start] = p[:start, block].T
        diag = p[block, block]
        diag[...] = np.triu(diag) + np.triu(diag, 1).T
    sub = p / -np.diag(p)[None, :]
    np.fill_diagonal(sub, 0.0)
    if len(active) == n_items:
        return sub.astype(np.float32)
    weights = np.zeros((n_items, n_items), dtype=np.float32)
    weights[np.ix_(active, active)] = sub
    return weights


class EASE(SimilarityModel):
    """Embarrassingly shallow autoencoder: the strongest item-item linear model, in closed form.

    The solve is dense (items² memory, items³ time), hence `max_items`. `neighbors=None` keeps every weight: the
    model scores with the dense matrix and `.similarity` is the same matrix as CSR (built on first access, for the
    artifact). An int keeps each row's `neighbors` largest weights, for a smaller artifact at some accuracy cost.
    """

    name = "EASE"

    def __init__(self, l2: float = 250.0, neighbors: int | None = None, max_items: int = EASE_MAX_ITEMS) -> None:
        if l2 <= 0:
            raise ValueError(f"l2 must be > 0, got {l2}")
        self.l2 = float(l2)
        self.neighbors = None if neighbors is None else int(neighbors)
        self.max_items = int(max_items)
        self.weights: np.ndarray | None = None
        self._csr: sp.csr_matrix | None = None

    @property  # type: ignore[override]
    def similarity(self) -> sp.csr_matrix | None:
        if self._csr is None and self.weights is not None:
            self._csr = sp.csr_matrix(self.weights)
            self._csr.sort_indices()
        return self._csr

    @similarity.setter
    def similarity(self, value: sp.csr_matrix | None) -> None:
        self._csr, self.weights = value, None

    def _hyperparameters(self) -> dict[str, Any]:
        return {"l2": self.l2, "neighbors": self.neighbors, "max_items": self.max_items}

    def fit(self, user_items: sp.spmatrix) -> Self:
        x = _as_float_csr(user_items)
        n_items = x.shape[1]
        if n_items > self.max_items:
            raise ValueError(f"EASE is dense: {n_items} items exceed max_items={self.max_items}")
        weights = ease_weights(x, self.l2)
        if self.neighbors is None:
            self.similarity = None
            self.weights = weights
            return self
        weights[weights == 0] = -np.inf
        ids, values = dense_topn(weights, self.neighbors)
        self.similarity = topn_to_csr(ids, values, n_items)
        return self

    def _learned(self) -> sp.csr_matrix | np.ndarray | None:
        # the dense weights when they are kept: scoring with them skips building the CSR
        return self.weights if self.weights is not None else self.similarity


def servable_similarity(weights: sp.csr_matrix, neighbors: int) -> sp.csr_matrix:
    """What gets published: each row's `neighbors` largest weights by magnitude, no diagonal, scaled to max |w| = 1.

    Similarity models (cosine, Jaccard, ...) keep their non-negative values; EASE keeps its signed weights (dropping
    the negative ones costs it about 0.03 NDCG@10 on steam-200k). Scaling by one positive constant keeps every
    ranking, and bounds the stored values to [-1, 1] ([0, 1] for similarity models).
    """
    w = sp.csr_matrix(weights, dtype=np.float64, copy=True)
    w.setdiag(0)
    w.eliminate_zeros()
    magnitude = w.copy()
    magnitude.data = np.abs(magnitude.data)
    keep = sparse_topk(magnitude, neighbors)
    keep.data[:] = 1.0
    out = w.multiply(keep).tocsr()
    out.eliminate_zeros()
    peak = float(np.abs(out.data).max()) if out.nnz else 1.0
    out.data = (out.data / peak).astype(np.float32)
    out.sort_indices()
    return out


class ServableModel(Recommender):
    """A model as it will be served: fit the inner model, then publish `servable_similarity` of its weights.

    Evaluating this (not the inner model) is what keeps the gate and the report honest about the artifact, so it
    ranks exactly as serving does (`recommend_from_similarity` on the published matrix).
    """

    name = "ServableModel"

    def __init__(self, inner: SimilarityModel | ItemCF, serving_neighbors: int) -> None:
        self.inner = inner
        self.serving_neighbors = int(serving_neighbors)
        self.similarity: sp.csr_matrix | None = None

    @property
    def params(self) -> dict[str, Any]:
        return {**self.inner.params, "serving_neighbors": self.serving_neighbors}

    def fit(self, user_items: sp.spmatrix) -> Self:
        self.inner.fit(user_items)
        self.similarity = servable_similarity(self.inner.similarity, self.serving_neighbors)
        return self

    def _learned(self) -> sp.csr_matrix | None:
        return self.similarity

    def _recommend(self, learned: sp.csr_matrix, user_items: sp.csr_matrix, N: int) -> tuple[np.ndarray, np.ndarray]:
        return recommend_from_similarity(learned, user_items, N)

    def _similar_items(self, learned: sp.csr_matrix, item_ids: np.ndarray, N: int) -> tuple[np.ndarray, np.ndarray]:
        return positive_neighbours(learned, item_ids, N)


def _typical_peak(w: sp.csr_matrix) -> float:
    """The mean of the rows' largest |weight| (rows with any): what 'a strong neighbour' weighs in this matrix."""
    if not w.nnz:
        return 1.0
    counts = np.diff(w.indptr)
    peaks = np.maximum.reduceat(np.abs(w.data), w.indptr[:-1][counts > 0])
    return float(peaks.mean()) or 1.0


def pair_weights(counts: np.ndarray, beta: float) -> np.ndarray:
    """n / (n + β) per item: the share of the collaborative part (β = 0: all of it once an item has a play)."""
    n = np.asarray(counts, np.float64)
    return (n > 0).astype(np.float64) if beta == 0 else n / (n + beta)


class Hybrid(SimilarityModel):
    """Collaborative and content similarity blended per pair: S = w·CF + (1 - w)·c·content, w = min(w_i, w_j).

    w_i = n_i / (n_i + β) for an item with n_i users in the training matrix, so a pair is as collaborative as its
    less-played item: a pair of well-known games is (almost) the CF model alone, a game without plays is placed
    by its attributes only. Both parts are first scaled so that a typical row's strongest weight is 1;
    `content_weight` (c) then says how a content neighbour compares with a collaborative one, which sets how
    readily new games enter lists that CF already fills. The CF part keeps each row's `cf_neighbors` largest
    weights by magnitude (a dense EASE included).

    The content similarity is not a hyperparameter but data (`ItemContent`, over the same items as the matrix's
    columns), passed by `build_model(params, content=...)`; without it the model is its CF part alone.
    """

    name = "Hybrid"

    def __init__(
        self,
        cf: dict[str, Any] | None = None,
        beta: float = 10.0,
        content_weight: float = 0.1,
        cf_neighbors: int = 300,
        content: ItemContent | None = None,
    ) -> None:
        super().__init__()
        self.cf = dict(cf) if cf is not None else {"model": "RP3beta"}
        if self.cf.get("model") in ("Hybrid", "Popularity") or "serving_neighbors" in self.cf:
            raise ValueError(f"Hybrid needs an item-item CF model as its cf part, got {self.cf}")
        if beta < 0 or content_weight < 0 or cf_neighbors < 1:
            raise ValueError(f"need beta >= 0, content_weight >= 0, cf_neighbors >= 1; got {beta}, {content_weight}")
        self.beta, self.content_weight, self.cf_neighbors = float(beta), float(content_weight), int(cf_neighbors)
        self.content = content

    def _hyperparameters(self) -> dict[str, Any]:
        return {
            "cf": dict(self.cf),
            "beta": self.beta,
            "content_weight": self.content_weight,
            "cf_neighbors": self.cf_neighbors,
        }

    def cf_part(self, x: sp.csr_matrix) -> sp.csr_matrix:
        """The CF model fit on x, its `cf_neighbors` largest weights per row, scaled to a typical peak of 1: the
        same for every β and content weight, so a search can fit it once per split (`fit_with`)."""
        return self.cf_part_of(build_model(self.cf).fit(x).similarity)

    def cf_part_of(self, cf_similarity: sp.csr_matrix) -> sp.csr_matrix:
        """`cf_part` from the CF model's learned matrix (one a search fitted already)."""
        cf = servable_similarity(cf_similarity, self.cf_neighbors).astype(np.float64)
        cf.data /= _typical_peak(cf)
        return cf

    def fit_with(self, user_items: sp.spmatrix, cf_part: sp.csr_matrix) -> Self:
        """`fit` with the CF part already computed on the same matrix (`cf_part(user_items)`)."""
        self.similarity = self._blend(_as_float_csr(user_items), cf_part)
        return self

    def _learn(self, x: sp.csr_matrix) -> sp.csr_matrix:
        return self._blend(x, self.cf_part(x))

    def _blend(self, x: sp.csr_matrix, cf: sp.csr_matrix) -> sp.csr_matrix:
        n_items = x.shape[1]
        if self.content is not None and self.content.n_items != n_items:
            raise ValueError(f"content describes {self.content.n_items} items, user_items has {n_items} columns")
        if cf.shape != (n_items, n_items):
            raise ValueError(f"the CF part is {cf.shape}, user_items has {n_items} columns")
        if self.content is None or self.content_weight == 0:
            return sp.csr_matrix(cf, dtype=np.float32)
        content = sp.csr_matrix(self.content.similarity, dtype=np.float64, copy=True)
        content.data *= self.content_weight / _typical_peak(content)
        w = pair_weights(np.diff(sp.csc_matrix(x).indptr), self.beta)
        a, b = cf.tocoo(), content.tocoo()
        a.data = a.data * np.minimum(w[a.row], w[a.col])
        b.data *= 1.0 - np.minimum(w[b.row], w[b.col])
        blend = (a.tocsr() + b.tocsr()).tocsr()
        blend.eliminate_zeros()
        blend.sort_indices()
        return sp.csr_matrix(blend, dtype=np.float32)


MODELS: dict[str, type[Recommender]] = {
    "ItemCF": ItemCF,
    "Popularity": Popularity,
    "AsymmetricCosine": AsymmetricCosine,
    "TFIDF": TFIDF,
    "BM25": BM25,
    "RP3beta": RP3beta,
    "EASE": EASE,
    "Hybrid": Hybrid,
}


def build_model(params: dict[str, Any], content: ItemContent | None = None) -> Recommender:
    """An unfitted model from its `params` (the inverse of `model.params`), as served when they name
    `serving_neighbors`: the one factory for manifests, run config and selection. `content` is the catalogue's
    attributes over the matrix's items, for the models that read them (`Hybrid`); the others ignore it."""
    from gamerec_assets.recsys.factors import FACTOR_MODELS, FactorModel  # factors builds on this module

    if "serving_neighbors" in params:
        inner = build_model({k: v for k, v in params.items() if k != "serving_neighbors"}, content)
        if isinstance(inner, FactorModel):  # served from its factors: the cosine neighbours it publishes
            inner.neighbors = int(params["serving_neighbors"])
            return inner
        if not isinstance(inner, SimilarityModel | ItemCF):
            raise ValueError(f"{inner.name} learns no item-item matrix to serve (serving_neighbors needs one)")
        return ServableModel(inner, int(params["serving_neighbors"]))
    kind = params.get("model", "ItemCF")
    known: dict[str, type[Recommender]] = {**MODELS, **FACTOR_MODELS}
    if kind not in known:
        raise ValueError(f"unknown model {kind!r}; known: {sorted(known)}")
    kwargs = {k: v for k, v in params.items() if k != "model"}
    if kind == "Hybrid":
        kwargs["content"] = content
    return known[kind](**kwargs)
