"""Matrix factorisation families (ALS, BPR) and the fold-in that serves them from item factors alone.

Both are fitted with `implicit`'s CPU models and published as item factors Y (items × f, float32) plus what the
fold-in needs, never the user factors: a history (a known player's, a realtime overlay's, a guest's basket) is
turned into a user vector at request time, so one version answers all three the same way.

Fold-in (`FoldIn`): the ALS user step for fixed Y on a binary history h, as implicit's `recalculate_user` does
with its exact solver: x = A⁻¹ b with A = G + (α - 1) Σ_{j∈h} y_j y_jᵀ, b = α Σ_{j∈h} y_j and G = YᵀY + λI
precomputed once per model (α: the confidence of a played game, λ: the regularisation). Items are scored
by score_i = y_iᵀ x; unseen items with a positive score are ranked (score desc, index asc), as `models.rank_unseen`
does for the signed item-item models, and serving fills the rest with popular games.

`because` is exact: x = Σ_{j∈h} α A⁻¹ y_j, so score_i = Σ_{j∈h} w_ij with w_ij = α y_iᵀ A⁻¹ y_j, and the history
games with the largest positive w_ij explain item i (`FoldIn.contributions`).

ALS is trained on the binarised matrix (the served histories are binary, so training sees what serving sees),
and its fold-in is its own user step: a known player's folded-in vector is the one the last ALS sweep would give.
BPR (pairwise ranking by SGD) has no closed-form user step; its fold-in is the same least-squares step over its
item factors (their bias column included), with λ = `fold_regularization` and α = `fold_alpha`: a documented
approximation that selection judges as served, since `recommend` ranks through the fold-in for every family.

`similar_items` is the cosine of the item factors; the artifact stores each item's `neighbors` nearest by it as its
similarity matrix, so /games/{id}/similar reads them as for any model.

Threads: ALS uses the kernels' thread setting (`kernels.thread_count`), with BLAS kept to one thread (implicit's
advice); its results do not depend on the thread count. The fold-in's products are small (f × f, |h| × f) and run
on the kernels' own threads, so it keeps BLAS to the calling thread too (`one_blas_thread`): OpenBLAS's own
threads on such sizes cost 7-50 × on a busy 2-core machine (256 factors: 13.6 ms a history against 0.25 ms).
BPR's SGD updates race between threads (hogwild), so it runs on one thread to stay deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
from threadpoolctl import ThreadpoolController, threadpool_limits

from gamerec_assets.recsys.kernels import thread_count
from gamerec_assets.recsys.kernels.fold_in import fold_in_rows
from gamerec_assets.recsys.models import block_rows, dense_topn, topn_to_csr
from gamerec_assets.recsys.recommender import Recommender

_blas: ThreadpoolController | None = None


def one_blas_thread() -> Any:
    """A context keeping BLAS (numpy's and scipy's, which numba's linear algebra calls) to the calling thread; about
    5 µs to enter and leave. Thread counts are process-wide, so a concurrent large product elsewhere in the process
    may run on one thread meanwhile: slower, never different."""
    global _blas
    if _blas is None:
        import scipy.linalg.cython_blas
        import scipy.linalg.cython_lapack  # noqa: F401 - loaded before the scan, so it is limited as well

        _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas")


def _binary(user_items: sp.spmatrix) -> sp.csr_matrix:
    x = sp.csr_matrix(user_items, dtype=np.float32)
    x.sum_duplicates()
    if x.nnz and x.data.min() < 0:
        raise ValueError("user_items must be non-negative")
    x.eliminate_zeros()
    x.data[:] = 1.0
    x.sort_indices()
    return x


@dataclass(frozen=True, eq=False)
class FoldIn:
    """Item factors and the fold-in's Gram matrix and confidence: everything an MF version serves from."""

    item_factors: np.ndarray  # (items, f) float32, as stored
    gram: np.ndarray  # (f, f) float64: YᵀY + λI
    alpha: float  # confidence of a played game (> 0)

    @classmethod
    def of(cls, item_factors: np.ndarray, regularization: float, alpha: float) -> FoldIn:
        y = np.ascontiguousarray(item_factors, dtype=np.float32)
        y64 = y.astype(np.float64)
        gram = y64.T @ y64 + float(regularization) * np.eye(y.shape[1])
        return cls(y, (gram + gram.T) / 2.0, float(alpha))

    @property
    def n_items(self) -> int:
        return int(self.item_factors.shape[0])

    @property
    def factors64(self) -> np.ndarray:
        """The item factors in float64 (what the fold-in and the scores compute with); cached per object."""
        cached = self.__dict__.get("_y64")
        if cached is None:
            cached = np.ascontiguousarray(self.item_factors, dtype=np.float64)
            object.__setattr__(self, "_y64", cached)
        return cached

    @property
    def gram_inv(self) -> np.ndarray:
        """G⁻¹ (the fold-in's Woodbury form for short histories, `kernels.fold_in`); cached per object."""
        cached = self.__dict__.get("_gram_inv")
        if cached is None:
            cached = np.ascontiguousarray(np.linalg.inv(self.gram))
            cached = (cached + cached.T) / 2.0
            object.__setattr__(self, "_gram_inv", cached)
        return cached

    def user_vectors(self, user_items: sp.csr_matrix) -> np.ndarray:
        """(rows, f) folded-in user vectors of a users × items matrix's rows (binary: values are ignored)."""
        x = sp.csr_matrix(user_items)
        with one_blas_thread():
            return fold_in_rows(x.indptr, x.indices, self.factors64, self.gram64, self.gram_inv, self.alpha)

    @property
    def gram64(self) -> np.ndarray:
        return np.ascontiguousarray(self.gram, dtype=np.float64)

    def history_vector(self, history: np.ndarray) -> np.ndarray:
        """One history's user vector (sorted, duplicate-free item indices): the batch path's kernel on one row."""
        h = np.asarray(history, dtype=np.int64)
        indptr = np.array([0, len(h)], np.int64)
        with one_blas_thread():
            return fold_in_rows(indptr, h, self.factors64, self.gram64, self.gram_inv, self.alpha)[0]

    def contributions(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """w (len(items), len(history)): w_ij = α y_iᵀ A⁻¹ y_j, so that score_i = Σ_j w_ij exactly (module doc).

        A⁻¹ Y_hᵀ by Woodbury for a history shorter than the factor count, as the fold-in itself."""
        with one_blas_thread():
            return self._contributions(np.asarray(history, dtype=np.int64), np.asarray(items, dtype=np.int64))

    def _contributions(self, h: np.ndarray, items: np.ndarray) -> np.ndarray:
        y = self.factors64
        yh = y[h]
        k, f = yh.shape
        if self.alpha == 1.0:
            z = self.gram_inv @ yh.T
        elif k < f:
            p = yh @ self.gram_inv  # (k, f)
            s = p @ yh.T + np.eye(k) / (self.alpha - 1.0)
            z = p.T - p.T @ np.linalg.solve(s, yh @ p.T)
        else:
            z = np.linalg.solve(self.gram + (self.alpha - 1.0) * (yh.T @ yh), yh.T)  # (f, |h|)
        return self.alpha * (y[items] @ z)

    def rank(self, user_items: sp.csr_matrix, N: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-N unseen items with a positive score per row, (rows, N) padded -1 / 0 (float32 scores)."""
        x = sp.csr_matrix(user_items)
        return rank_vectors(self.user_vectors(x), self.factors64, x, N)


def rank_vectors(
    vectors: np.ndarray, factors: np.ndarray, seen: sp.csr_matrix, N: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-N items by vectors @ factorsᵀ per row, leaving out `seen` and non-positive scores, in row blocks."""
    n_rows, n_items = vectors.shape[0], factors.shape[0]
    ids = np.full((n_rows, N), -1, dtype=np.int64)
    top = np.zeros((n_rows, N), dtype=np.float32)
    step = block_rows(n_items, budget=1 << 24)
    for start in range(0, n_rows, step):
        rows = seen[start : start + step]
        scores = vectors[start : start + step] @ factors.T
        scores[scores <= 0] = -np.inf
        seen_rows = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
        scores[seen_rows, rows.indices] = -np.inf
        ids[start : start + step], top[start : start + step] = dense_topn(scores, N)
    return ids, top


def cosine_neighbours(factors: np.ndarray, item_ids: np.ndarray, N: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-N other items by cosine of the item factors (positive only), (len(item_ids), N) padded -1 / 0."""
    y = np.asarray(factors, dtype=np.float64)
    norms = np.linalg.norm(y, axis=1)
    unit = y / np.where(norms > 0, norms, 1.0)[:, None]
    ids = np.full((len(item_ids), N), -1, dtype=np.int64)
    top = np.zeros((len(item_ids), N), dtype=np.float32)
    step = block_rows(len(y), budget=1 << 24)
    for start in range(0, len(item_ids), step):
        rows = np.asarray(item_ids[start : start + step], dtype=np.int64)
        block = unit[rows] @ unit.T
        block[np.arange(len(rows)), rows] = -np.inf
        block[block <= 0] = -np.inf
        ids[start : start + step], top[start : start + step] = dense_topn(block, N)
    return ids, top


def neighbour_matrix(factors: np.ndarray, N: int) -> sp.csr_matrix:
    """Each item's N nearest items by factor cosine as an items × items CSR (the artifact's similarity)."""
    n = factors.shape[0]
    ids, values = cosine_neighbours(factors, np.arange(n), max(1, min(N, max(n - 1, 1))))
    return topn_to_csr(ids, values, n)


class FactorModel(Recommender):
    """Shared serving side of the MF families: recommend through the fold-in, similar items by factor cosine.

    `neighbors` is how many cosine neighbours per item the published similarity keeps (`build_model` sets it from
    `serving_neighbors`); it does not change the recommendations.
    """

    name: ClassVar[str] = "FactorModel"

    def __init__(self, neighbors: int = 100, seed: int = 0) -> None:
        if neighbors < 1:
            raise ValueError(f"neighbors must be >= 1, got {neighbors}")
        self.neighbors, self.seed = int(neighbors), int(seed)
        self.fold: FoldIn | None = None
        self._similarity: sp.csr_matrix | None = None

    def _fit_factors(self, x: sp.csr_matrix) -> FoldIn:
        raise NotImplementedError

    def fit(self, user_items: sp.spmatrix) -> Self:
        self.fold = self._fit_factors(_binary(user_items))
        self._similarity = None
        return self

    @property
    def similarity(self) -> sp.csr_matrix | None:
        """The `neighbors` nearest items of each item by factor cosine (built on first access, for the artifact)."""
        if self._similarity is None and self.fold is not None:
            self._similarity = neighbour_matrix(self.fold.item_factors, self.neighbors)
        return self._similarity

    def _learned(self) -> np.ndarray | None:
        return None if self.fold is None else self.fold.item_factors

    def _recommend(self, learned: np.ndarray, user_items: sp.csr_matrix, N: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.fold is not None
        return self.fold.rank(_binary(user_items), N)

    def _similar_items(self, learned: np.ndarray, item_ids: np.ndarray, N: int) -> tuple[np.ndarray, np.ndarray]:
        return cosine_neighbours(learned, item_ids, N)


class ALS(FactorModel):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) with implicit's CPU solver; confidence of a play = α."""

    name = "ALS"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 1.0,
        alpha: float = 10.0,
        iterations: int = 15,
        neighbors: int = 100,
        seed: int = 0,
    ) -> None:
        super().__init__(neighbors, seed)
        if factors < 1 or iterations < 1 or regularization <= 0 or alpha < 1:
            raise ValueError(
                f"need factors >= 1, iterations >= 1, regularization > 0, alpha >= 1; "
                f"got {factors}, {iterations}, {regularization}, {alpha}"
            )
        self.factors, self.iterations = int(factors), int(iterations)
        self.regularization, self.alpha = float(regularization), float(alpha)

    def _hyperparameters(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "neighbors": self.neighbors,
            "seed": self.seed,
        }

    def _fit_factors(self, x: sp.csr_matrix) -> FoldIn:
        from implicit.cpu.als import AlternatingLeastSquares

        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.seed,
                num_threads=thread_count(),
            )
            model.fit(x, show_progress=False)
        return FoldIn.of(model.item_factors, self.regularization, self.alpha)


class BPR(FactorModel):
    """Bayesian personalised ranking (Rendle et al. 2009) with implicit's CPU SGD; served by a least-squares fold-in
    over its item factors (module docstring)."""

    name = "BPR"

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.05,
        regularization: float = 0.01,
        iterations: int = 100,
        fold_regularization: float = 1.0,
        fold_alpha: float = 10.0,
        neighbors: int = 100,
        seed: int = 0,
    ) -> None:
        super().__init__(neighbors, seed)
        if factors < 1 or iterations < 1 or learning_rate <= 0 or regularization < 0:
            raise ValueError("need factors, iterations >= 1, learning_rate > 0, regularization >= 0")
        if fold_regularization <= 0 or fold_alpha < 1:
            raise ValueError(f"need fold_regularization > 0, fold_alpha >= 1; got {fold_regularization}, {fold_alpha}")
        self.factors, self.iterations = int(factors), int(iterations)
        self.learning_rate, self.regularization = float(learning_rate), float(regularization)
        self.fold_regularization, self.fold_alpha = float(fold_regularization), float(fold_alpha)

    def _hyperparameters(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "learning_rate": self.learning_rate,
            "regularization": self.regularization,
            "iterations": self.iterations,
            "fold_regularization": self.fold_regularization,
            "fold_alpha": self.fold_alpha,
            "neighbors": self.neighbors,
            "seed": self.seed,
        }

    def _fit_factors(self, x: sp.csr_matrix) -> FoldIn:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        with threadpool_limits(1, "blas"):
            model = BayesianPersonalizedRanking(
                factors=self.factors,
                learning_rate=self.learning_rate,
                regularization=self.regularization,
                iterations=self.iterations,
                random_state=self.seed,
                num_threads=1,  # hogwild SGD: more threads make the result depend on scheduling
            )
            model.fit(x, show_progress=False)
        return FoldIn.of(model.item_factors, self.fold_regularization, self.fold_alpha)


FACTOR_MODELS: dict[str, type[FactorModel]] = {"ALS": ALS, "BPR": BPR}
