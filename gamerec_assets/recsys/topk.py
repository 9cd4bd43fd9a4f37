"""Row-wise top-k of sparse matrices without Python loops over rows (compiled kernels in `kernels/`)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from gamerec_assets.recsys import kernels


def rank_within_rows(indptr: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Given entries sorted by (row, key), return each sorted entry's rank inside its row."""
    counts = np.diff(indptr)
    starts = np.repeat(indptr[:-1], counts)
    return np.arange(len(order)) - starts


def _topn_arrays(matrix: sp.csr_matrix, N: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, values in the matrix dtype) of the top-N stored entries per row: value desc, then index asc."""
    data = matrix.data
    if data.dtype == np.bool_:
        data = data.astype(np.int8)
    return kernels.csr_rows_topn(matrix.indptr, matrix.indices, data, N, pad_id, keep_dtype=True)


def sparse_topk(matrix: sp.csr_matrix, N: int) -> sp.csr_matrix:
    """Keep the N largest entries per row; ties go to the lower column index."""
    matrix = matrix.tocsr()
    matrix.sum_duplicates()
    width = int(min(max(N, 0), np.diff(matrix.indptr).max(initial=0)))
    ids, values = _topn_arrays(matrix, width, -1)
    keep = ids >= 0
    counts = keep.sum(axis=1)
    out = sp.csr_matrix(
        (values[keep], ids[keep].astype(matrix.indices.dtype), np.concatenate([[0], np.cumsum(counts)])),
        shape=matrix.shape,
    )
    out.sort_indices()
    return out


def dense_rows_topk(matrix: sp.csr_matrix, N: int, pad_id: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Top-N column indices and values per row as (rows, n) arrays, padded with pad_id / 0.0.

    Order: value descending, then column index ascending (deterministic ties).
    """
    matrix = matrix.tocsr()
    ids, values = _topn_arrays(matrix, N, pad_id)
    return ids, values.astype(np.float32, copy=False)
