"""Item-based collaborative filtering on a sparse users × items matrix.

`ItemCF` and the `Popularity` baseline keep the `Recommender` contract (implicit's `fit`, `recommend`,
`similar_items`, on matrix indices).

`neighbors` counts the item itself, as implicit's `K` does: the top-`neighbors` entries of each row of the full
similarity matrix are kept and then the diagonal is dropped. With the same count, recommendations equal implicit's
`CosineRecommender` (a test checks it), and the stored matrix has no self-similarity.

The fit is split into independent item blocks: `prepare_user_items` normalises X once, `item_similarity_block`
computes the top-K neighbours of a range of items (rows of X_blockᵀ X) and `merge_item_blocks` stacks them. Each
row is computed on its own, in a fixed summation order, so any split into blocks (one process, or one Dagster
partition per block, see `gamerec_assets/scale.py`) gives exactly the matrix of a single `fit`. The compiled
kernels and the `GAMEREC_THREADS` knob are in `kernels/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal, Self

import numpy as np
import scipy.sparse as sp

from gamerec_assets.recsys import kernels
from gamerec_assets.recsys.recommender import Recommender
from gamerec_assets.recsys.topk import dense_rows_topk

Similarity = Literal["cosine", "jaccard"]


def _check(similarity: str, neighbors: int) -> None:
    if similarity not in ("cosine", "jaccard"):
        raise ValueError(f"similarity must be 'cosine' or 'jaccard', got {similarity!r}")
    if neighbors < 1:
        raise ValueError(f"neighbors must be >= 1, got {neighbors}")


def _index_arrays(m: sp.csr_matrix | sp.csc_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return m.indptr, m.indices, m.data


@dataclass(frozen=True)
class PreparedItems:
    """X ready for the item-item product: float64, normalised (cosine) or binary (Jaccard), in both layouts.

    `weights` are the item norms (cosine) or user counts (Jaccard). `factors` is set when every column holds a
    single value (binary play logs, and always for Jaccard): the kernel then counts co-occurrences instead of
    summing products. Build with `prepare_user_items`; a block worker gets the same object from `to_arrays` /
    `from_arrays`.
    """

    by_user: sp.csr_matrix
    by_item: sp.csc_matrix
    weights: np.ndarray
    similarity: Similarity
    factors: np.ndarray | None = None

    @property
    def n_items(self) -> int:
        return int(self.by_user.shape[1])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (no pickle) for np.savez; the inverse of `from_arrays`."""
        return {
            "data": self.by_user.data,
            "indices": self.by_user.indices,
            "indptr": self.by_user.indptr,
            "shape": np.asarray(self.by_user.shape, np.int64),
            "weights": self.weights,
            "factors": np.empty(0, np.float64) if self.factors is None else self.factors,
            "similarity": np.asarray(self.similarity),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> PreparedItems:
        shape = tuple(int(v) for v in arrays["shape"])
        by_user = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape)
        similarity = str(arrays["similarity"])
        _check(similarity, 1)
        factors = np.asarray(arrays["factors"], np.float64)
        return cls(
            by_user,
            _by_item(by_user),
            np.asarray(arrays["weights"], np.float64),
            similarity,  # type: ignore[arg-type]
            factors if factors.size else None,
        )


def _by_item(by_user: sp.csr_matrix) -> sp.csc_matrix:
    by_item = by_user.tocsc()
    by_item.sort_indices()
    return by_item


def prepare_user_items(user_items: sp.spmatrix, similarity: Similarity = "cosine") -> PreparedItems:
    """Validate and normalise a users × items matrix once, for any number of item blocks."""
    _check(similarity, 1)
    x = sp.csr_matrix(user_items, dtype=np.float64, copy=True)
    x.sum_duplicates()
    x.sort_indices()
    if x.nnz and x.data.min() < 0:
        raise ValueError("user_items must be non-negative")
    x.eliminate_zeros()  # an explicit 0 contributes nothing (and the kernel relies on positive values)
    n_items = x.shape[1]
    # One value everywhere (play logs): every column of the prepared X holds a single value, the kernel counts.
    single = bool(x.nnz == 0 or (x.data == x.data[0]).all())
    factors: np.ndarray | None = None
    if similarity == "cosine":
        norms = np.sqrt(np.bincount(x.indices, weights=x.data * x.data, minlength=n_items))
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        if single and x.nnz:
            factors = x.data[0] * inv  # the value of each column: x.data[0] * inv[j], as stored below
        x.data *= inv[x.indices]
        weights = norms
    else:
        x.data = np.ones_like(x.data)
        weights = np.bincount(x.indices, minlength=n_items).astype(np.float64)
        factors = np.ones(n_items, np.float64)
    return PreparedItems(x, _by_item(x), weights, similarity, factors)


def item_blocks(n_items: int, n_blocks: int) -> list[tuple[int, int]]:
    """`n_blocks` contiguous item ranges [start, stop) covering 0..n_items (some empty when n_blocks > n_items)."""
    if n_blocks < 1:
        raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
    edges = [n_items * b // n_blocks for b in range(n_blocks + 1)]
    return list(pairwise(edges))


def item_similarity_block(prepared: PreparedItems, start: int, stop: int, neighbors: int = 100) -> sp.csr_matrix:
    """Rows [start, stop) of the item-item matrix, as a (stop - start) × items CSR (see `item_similarity_matrix`)."""
    _check(prepared.similarity, neighbors)
    n_items = prepared.n_items
    if not 0 <= start <= stop <= n_items:
        raise ValueError(f"block [{start}, {stop}) is not inside [0, {n_items}]")
    ids, values, counts = kernels.item_topk_rows(
        _index_arrays(prepared.by_item),
        _index_arrays(prepared.by_user),
        prepared.weights,
        start,
        stop,
        neighbors,
        prepared.similarity == "jaccard",
        prepared.factors,
    )
    keep = np.arange(ids.shape[1])[None, :] < counts[:, None]
    indptr = np.zeros(stop - start + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    index_dtype = np.int32 if n_items < 2**31 and indptr[-1] < 2**31 else np.int64
    block = sp.csr_matrix(
        (values[keep], ids[keep].astype(index_dtype, copy=False), indptr.astype(index_dtype, copy=False)),
        shape=(stop - start, n_items),
    )
    block.has_sorted_indices = True
    return block


def merge_item_blocks(blocks: list[sp.csr_matrix], n_items: int) -> sp.csr_matrix:
    """Stack item blocks (in item order) into the items × items matrix."""
    if not blocks:
        return sp.csr_matrix((0, n_items), dtype=np.float32)
    rows = sum(b.shape[0] for b in blocks)
    if rows != n_items or any(b.shape[1] != n_items for b in blocks):
        raise ValueError(f"blocks cover {rows} rows of width {[b.shape[1] for b in blocks]}, expected {n_items}")
    full = sp.vstack(blocks, format="csr", dtype=np.float32)
    full.sort_indices()
    return full


def item_similarity_matrix(
    user_items: sp.csr_matrix, similarity: Similarity = "cosine", neighbors: int = 100, block_size: int | None = None
) -> sp.csr_matrix:
    """items × items CSR: row i holds i's top neighbours (self excluded), values in [0, 1] for non-negative data.

    `block_size` computes the rows in blocks of that many items (bounding the working memory of the dense
    top-K buffers); the result is the same for any value.
    """
    _check(similarity, neighbors)
    prepared = prepare_user_items(user_items, similarity)
    n_items = prepared.n_items
    step = n_items if not block_size else max(1, int(block_size))
    blocks = [item_similarity_block(prepared, a, min(a + step, n_items), neighbors) for a in range(0, n_items, step)]
    return merge_item_blocks(blocks, n_items)


def _as_csr_for_scoring(m: sp.spmatrix) -> sp.csr_matrix:
    m = m if isinstance(m, sp.csr_matrix | sp.csr_array) else sp.csr_matrix(m)
    if m.dtype.kind != "f":
        m = m.astype(np.float64)
    return m


def recommend_from_similarity(
    similarity: sp.csr_matrix, user_items: sp.csr_matrix, N: int, exclude_seen: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """score(j|u) = Σ_i w_ui · sim(i, j); top-N unseen per row, ties to the lower index, padded with -1 / 0.

    Signed weights (EASE) can sum below zero: that is evidence against, not a candidate, so only positive scores
    are ranked. Scores are summed in scipy's product dtype (float32 for float32 inputs), item by item in the
    user's row order, as `(user_items @ similarity)` would.
    """
    user_items = _as_csr_for_scoring(user_items)
    similarity = _as_csr_for_scoring(similarity)
    if user_items.shape[1] != similarity.shape[0]:
        raise ValueError(f"dimension mismatch: user_items {user_items.shape} @ similarity {similarity.shape}")
    if not user_items.has_canonical_format:
        user_items = user_items.copy()
        user_items.sum_duplicates()
    dtype = np.result_type(user_items.dtype, similarity.dtype)
    return kernels.recommend_rows(
        _index_arrays(user_items), _index_arrays(similarity), similarity.shape[1], int(N), exclude_seen, dtype
    )


class ItemCF(Recommender):
    """Item-item nearest-neighbour recommender (cosine or Jaccard co-occurrence)."""

    name = "ItemCF"

    def __init__(self, similarity: Similarity = "cosine", neighbors: int = 100) -> None:
        if similarity not in ("cosine", "jaccard"):
            raise ValueError(f"similarity must be 'cosine' or 'jaccard', got {similarity!r}")
        self.similarity_kind: Similarity = similarity
        self.neighbors = neighbors
        self.similarity: sp.csr_matrix | None = None

    def _hyperparameters(self) -> dict[str, Any]:
        return {"similarity": self.similarity_kind, "neighbors": self.neighbors}

    def fit(self, user_items: sp.spmatrix) -> Self:
        self.similarity = item_similarity_matrix(user_items, self.similarity_kind, self.neighbors)
        return self

    def _learned(self) -> sp.csr_matrix | None:
        return self.similarity

    def _recommend(self, learned: sp.csr_matrix, user_items: sp.csr_matrix, N: int) -> tuple[np.ndarray, np.ndarray]:
        return recommend_from_similarity(learned, user_items, N)

    def _similar_items(self, learned: sp.csr_matrix, item_ids: np.ndarray, N: int) -> tuple[np.ndarray, np.ndarray]:
        return dense_rows_topk(learned[item_ids], N)


class Popularity(Recommender):
    """Most-played unseen items: the baseline every model must beat.

    Popularity knows nothing about pairs of items, so the items "similar" to an item are what it would recommend
    to someone who played only that item: the most popular other items, with their play counts as scores. That
    keeps it usable wherever a model's neighbours are asked for (a baseline for similar-games lists too).
    """

    name = "Popularity"

    def __init__(self) -> None:
        self.counts: np.ndarray | None = None

    def fit(self, user_items: sp.spmatrix) -> Self:
        binary = sp.csr_matrix(user_items, copy=True)
        binary.data = np.ones_like(binary.data)
        self.counts = np.asarray(binary.sum(axis=0)).ravel().astype(np.float64)
        return self

    def _learned(self) -> np.ndarray | None:
        return self.counts

    def _recommend(self, learned: np.ndarray, user_items: sp.csr_matrix, N: int) -> tuple[np.ndarray, np.ndarray]:
        user_items = sp.csr_matrix(user_items)
        n_rows, n_items = user_items.shape
        # A popularity row shared by every user, as a sparse matrix so the same top-k code applies.
        order = np.lexsort((np.arange(n_items), -learned))
        take = order[: N + int(np.diff(user_items.indptr).max(initial=0))]
        cand = sp.csr_matrix(
            (
                np.tile(learned[take] + 1.0, n_rows),
                np.tile(take, n_rows),
                np.arange(n_rows + 1) * len(take),
            ),
            shape=(n_rows, n_items),
        )
        seen = user_items.copy()
        seen.data = np.ones_like(seen.data)
        cand = (cand - cand.multiply(seen)).tocsr()
        cand.eliminate_zeros()
        ids, scores = dense_rows_topk(cand, N)
        return ids, np.where(ids >= 0, scores - 1.0, 0.0).astype(np.float32)

    def _similar_items(self, learned: np.ndarray, item_ids: np.ndarray, N: int) -> tuple[np.ndarray, np.ndarray]:
        one_hot = sp.csr_matrix(
            (np.ones(len(item_ids)), item_ids, np.arange(len(item_ids) + 1)), shape=(len(item_ids), len(learned))
        )
        return self._recommend(learned, one_hot, N)
