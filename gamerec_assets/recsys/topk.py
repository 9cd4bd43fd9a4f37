"""Row-wise top-k of sparse matrices without Python loops over rows."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def rank_within_rows(indptr: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Given entries sorted by (row, key), return each sorted entry's rank inside its row."""
    counts = np.diff(indptr)
    starts = np.repeat(indptr[:-1], counts)
    return np.arange(len(order)) - starts


def sparse_topk(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries per row; ties go to the lower column index."""
    matrix = matrix.tocsr()
    matrix.sum_duplicates()
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    order = np.lexsort((matrix.indices, -matrix.data, rows))
    rank = rank_within_rows(matrix.indptr, order)
    keep = order[rank < k]
    keep.sort()
    out = sp.csr_matrix(
        (
            matrix.data[keep],
            matrix.indices[keep],
            np.concatenate([[0], np.cumsum(np.minimum(np.diff(matrix.indptr), k))]),
        ),
        shape=matrix.shape,
    )
    return out


def dense_rows_topk(matrix: sp.csr_matrix, n: int, pad_id: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Top-n column indices and values per row as (rows, n) arrays, padded with pad_id / 0.0.

    Order: value descending, then column index ascending (deterministic ties).
    """
    matrix = matrix.tocsr()
    n_rows = matrix.shape[0]
    rows = np.repeat(np.arange(n_rows), np.diff(matrix.indptr))
    order = np.lexsort((matrix.indices, -matrix.data, rows))
    rank = rank_within_rows(matrix.indptr, order)
    sel = order[rank < n]
    sel_rank = rank[rank < n]
    ids = np.full((n_rows, n), pad_id, dtype=np.int64)
    scores = np.zeros((n_rows, n), dtype=np.float32)
    ids[rows[sel], sel_rank] = matrix.indices[sel]
    scores[rows[sel], sel_rank] = matrix.data[sel]
    return ids, scores
