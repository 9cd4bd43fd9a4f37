"""Item-based collaborative filtering on a sparse users × items matrix.

The interface follows implicit's recommenders (`fit`, `recommend`, `similar_items`) and works on matrix
indices; id mapping lives in `Interactions` and the model artifact.

`neighbors` counts the item itself, as implicit's `K` does: the top-`neighbors` entries of each row of the full
similarity matrix are kept and then the diagonal is dropped. With the same count, recommendations equal implicit's
`CosineRecommender` (a test checks it), and the stored matrix has no self-similarity.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

from gamerec_assets.recsys.topk import dense_rows_topk, sparse_topk

Similarity = Literal["cosine", "jaccard"]


def _item_block_similarity(
    left: sp.csc_matrix, right: sp.csr_matrix, similarity: Similarity, counts: np.ndarray, block: slice
) -> sp.csr_matrix:
    """Similarity of the items in `block` (rows) against every item (columns)."""
    product = (left[:, block].T @ right).tocsr()
    if similarity == "jaccard":
        product.sort_indices()
        rows = np.repeat(np.arange(product.shape[0]), np.diff(product.indptr)) + block.start
        union = counts[rows] + counts[product.indices] - product.data
        product.data = product.data / np.maximum(union, 1e-12)
    return product


def item_similarity_matrix(
    user_items: sp.csr_matrix, similarity: Similarity = "cosine", neighbors: int = 100, block_size: int = 4096
) -> sp.csr_matrix:
    """items × items CSR: row i holds i's top neighbours (self excluded), values in [0, 1] for non-negative data."""
    if similarity not in ("cosine", "jaccard"):
        raise ValueError(f"similarity must be 'cosine' or 'jaccard', got {similarity!r}")
    if neighbors < 1:
        raise ValueError(f"neighbors must be >= 1, got {neighbors}")
    x = sp.csr_matrix(user_items, dtype=np.float64)
    if x.nnz and x.data.min() < 0:
        raise ValueError("user_items must be non-negative")
    n_items = x.shape[1]
    if similarity == "cosine":
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        x = (x @ sp.diags(inv)).tocsr()
        counts = norms
    else:
        x.data = np.ones_like(x.data)
        counts = np.asarray(x.sum(axis=0)).ravel()
    left = x.tocsc()
    blocks = []
    for start in range(0, n_items, block_size):
        block = slice(start, min(start + block_size, n_items))
        sims = _item_block_similarity(left, x, similarity, counts, block)
        sims = sparse_topk(sims, neighbors)
        blocks.append(sims)
    full = sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, 0))
    full.setdiag(0)
    full.eliminate_zeros()
    full.data = np.clip(full.data, 0.0, 1.0).astype(np.float32)
    full.sort_indices()
    return full


def recommend_from_similarity(
    similarity: sp.csr_matrix, user_items: sp.csr_matrix, n: int, exclude_seen: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """score(j|u) = Σ_i w_ui · sim(i, j); top-n unseen per row, ties to the lower index, padded with -1 / 0."""
    user_items = sp.csr_matrix(user_items)
    scores = (user_items @ similarity).tocsr()
    if exclude_seen:
        seen = user_items.copy()
        seen.data = np.ones_like(seen.data)
        scores = (scores - scores.multiply(seen)).tocsr()
    # Signed weights (EASE) can sum below zero: that is evidence against, not a candidate.
    scores.data[scores.data < 0] = 0
    scores.eliminate_zeros()
    return dense_rows_topk(scores, n)


class ItemCF:
    """Item-item nearest-neighbour recommender (cosine or Jaccard co-occurrence)."""

    def __init__(self, similarity: Similarity = "cosine", neighbors: int = 100) -> None:
        if similarity not in ("cosine", "jaccard"):
            raise ValueError(f"similarity must be 'cosine' or 'jaccard', got {similarity!r}")
        self.similarity_kind: Similarity = similarity
        self.neighbors = neighbors
        self.similarity: sp.csr_matrix | None = None

    @property
    def params(self) -> dict[str, object]:
        return {"model": "ItemCF", "similarity": self.similarity_kind, "neighbors": self.neighbors}

    def fit(self, user_items: sp.csr_matrix) -> ItemCF:
        self.similarity = item_similarity_matrix(user_items, self.similarity_kind, self.neighbors)
        return self

    def _fitted(self) -> sp.csr_matrix:
        if self.similarity is None:
            raise RuntimeError("ItemCF is not fitted: call fit(user_items) first")
        return self.similarity

    def recommend(self, user_items: sp.csr_matrix, N: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Top-N item indices and scores for each row of user_items; seen items excluded."""
        return recommend_from_similarity(self._fitted(), user_items, N)

    def similar_items(self, item_ids: np.ndarray | list[int], N: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The N most similar other items of each given item index."""
        sim = self._fitted()
        idx = np.asarray(item_ids, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= sim.shape[0]):
            raise IndexError(f"item index out of range [0, {sim.shape[0]})")
        return dense_rows_topk(sim[idx], N)


class Popularity:
    """Most-played unseen items: the baseline every model must beat."""

    def __init__(self) -> None:
        self.counts: np.ndarray | None = None

    @property
    def params(self) -> dict[str, object]:
        return {"model": "Popularity"}

    def fit(self, user_items: sp.csr_matrix) -> Popularity:
        binary = sp.csr_matrix(user_items, copy=True)
        binary.data = np.ones_like(binary.data)
        self.counts = np.asarray(binary.sum(axis=0)).ravel().astype(np.float64)
        return self

    def recommend(self, user_items: sp.csr_matrix, N: int = 10) -> tuple[np.ndarray, np.ndarray]:
        if self.counts is None:
            raise RuntimeError("Popularity is not fitted")
        user_items = sp.csr_matrix(user_items)
        n_rows, n_items = user_items.shape
        # A popularity row shared by every user, as a sparse matrix so the same top-k code applies.
        order = np.lexsort((np.arange(n_items), -self.counts))
        take = order[: N + int(np.diff(user_items.indptr).max(initial=0))]
        cand = sp.csr_matrix(
            (
                np.tile(self.counts[take] + 1.0, n_rows),
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
