"""Batch scoring of user rows: score(u, j) = Σ_i w_ui · S_ij, the top-n unseen items with a positive score."""

from __future__ import annotations

import numba as nb
import numpy as np

from gamerec_assets.recsys.kernels.bounded_heap import offer, sort_best_first
from gamerec_assets.recsys.kernels.kernel_threads import run_rows


@nb.njit(cache=True, nogil=True)
def _recommend_rows(
    u_indptr,
    u_indices,
    u_data,
    s_indptr,
    s_indices,
    s_data,
    n_items,
    n,
    exclude_seen,
    acc_like,
    lo,
    hi_row,
    out_ids,
    out_vals,
):  # type: ignore[no-untyped-def]
    acc = np.zeros(n_items, acc_like.dtype)
    mark = np.zeros(n_items, np.bool_)
    touched = np.empty(n_items, np.int64)
    hv = np.zeros(n, acc_like.dtype)
    hi = np.zeros(n, np.int64)
    for r in range(lo, hi_row):
        nt = 0
        for p in range(u_indptr[r], u_indptr[r + 1]):
            i = u_indices[p]
            w = u_data[p]
            for q in range(s_indptr[i], s_indptr[i + 1]):
                j = s_indices[q]
                if not mark[j]:
                    mark[j] = True
                    touched[nt] = j
                    nt += 1
                acc[j] += w * s_data[q]
        if exclude_seen:
            for p in range(u_indptr[r], u_indptr[r + 1]):
                acc[u_indices[p]] = 0  # x - x: a seen item is never a candidate
        size = 0
        rv = hv[0]
        ri = hi[0]
        for t in range(nt):
            j = touched[t]
            v = acc[j]
            acc[j] = 0
            mark[j] = False
            if v > 0:  # negative sums (signed EASE weights) and zeros are no candidates
                size, rv, ri = offer(hv, hi, size, n, v, j, rv, ri)
        sort_best_first(hv, hi, size)
        for e in range(size):
            out_ids[r, e] = hi[e]
            out_vals[r, e] = hv[e]


def recommend_rows(
    user: tuple[np.ndarray, np.ndarray, np.ndarray],
    sim: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_items: int,
    N: int,
    exclude_seen: bool,
    dtype: np.dtype,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-N (ids int64, scores float32) per user row, padded -1 / 0; scores summed in `dtype`, each in the order
    of the user's row (as scipy's `user_items @ similarity` does)."""
    n_rows = len(user[0]) - 1
    out_ids = np.full((n_rows, N), -1, dtype=np.int64)
    out_vals = np.zeros((n_rows, N), dtype=dtype)
    acc_like = np.empty(0, dtype=dtype)

    def task(lo: int, hi: int, step: int) -> None:
        _recommend_rows(*user, *sim, n_items, N, exclude_seen, acc_like, lo, hi, out_ids, out_vals)

    if n_rows and N > 0:
        run_rows(n_rows, task)
    return out_ids, out_vals.astype(np.float32, copy=False)
