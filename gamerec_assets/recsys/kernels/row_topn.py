"""Top-n of the stored entries of each CSR row (value desc, index asc): what `recsys.topk` builds on."""

from __future__ import annotations

import numba as nb
import numpy as np

from gamerec_assets.recsys.kernels.bounded_heap import offer, sort_best_first
from gamerec_assets.recsys.kernels.kernel_threads import run_rows


@nb.njit(cache=True, nogil=True)
def _csr_topn_rows(indptr, indices, data, n, lo, hi_row, out_ids, out_vals):  # type: ignore[no-untyped-def]
    hv = np.zeros(n, data.dtype)
    hi = np.zeros(n, np.int64)
    for r in range(lo, hi_row):
        size = 0
        rv = hv[0]
        ri = hi[0]
        for p in range(indptr[r], indptr[r + 1]):
            size, rv, ri = offer(hv, hi, size, n, data[p], indices[p], rv, ri)
        sort_best_first(hv, hi, size)
        for e in range(size):
            out_ids[r, e] = hi[e]
            out_vals[r, e] = hv[e]


def csr_rows_topn(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, N: int, pad_id: int = -1, keep_dtype: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Top-N stored entries per row (value desc, index asc) as (ids int64, values), padded pad_id / 0.

    Values are float32 unless `keep_dtype` (then the dtype of `data`).
    """
    n_rows = len(indptr) - 1
    out_ids = np.full((n_rows, N), pad_id, dtype=np.int64)
    out_vals = np.zeros((n_rows, N), dtype=data.dtype)

    def task(lo: int, hi: int, step: int) -> None:
        _csr_topn_rows(indptr, indices, data, N, lo, hi, out_ids, out_vals)

    if n_rows and N > 0 and len(data):
        run_rows(n_rows, task)
    return out_ids, (out_vals if keep_dtype else out_vals.astype(np.float32, copy=False))
