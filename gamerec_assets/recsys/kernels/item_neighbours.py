"""Item-item top-K: the rows of XᵀX (co-occurrence counts or weighted sums), each cut to its K best neighbours.

The hot loop of training: the accumulation prefetches the user rows it is about to visit, and the selection is
branch-free per candidate (a threshold and a buffer, cut back with `select_best` when full).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from gamerec_assets.recsys.kernels.bounded_heap import better, select_best, sort_by_index
from gamerec_assets.recsys.kernels.kernel_threads import run_rows

# How far ahead the item kernel prefetches the rows of the users it is about to visit: their offsets (further
# ahead), then their items. The rows are scattered over X, and each user row is only a few cache lines.
# A row that touched more than 1/DENSE_SCAN_RATIO of the items is scanned in column order.
DENSE_SCAN_RATIO = 8
PREFETCH_OFFSETS = 8
PREFETCH_ROWS = 4


@intrinsic
def _prefetch(typingctx, array, index):  # type: ignore[no-untyped-def]
    """A read prefetch of array[index] into all cache levels (llvm.prefetch); no effect on results."""
    sig = types.void(array, index)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        array_type = signature.args[0]
        ary = context.make_array(array_type)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, array_type, ary, [args[1]], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = builder.module.declare_intrinsic(
            "llvm.prefetch", [i8p], fnty=ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        )
        # rw = 0 (read), locality = 3 (keep in all levels), cache type = 1 (data)
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@nb.njit(inline="always")
def _count_cooccurrences(c_indptr, c_indices, r_indptr, r_indices, i, cnt, touched):  # type: ignore[no-untyped-def]
    """Every column holds one value: count each j's co-occurrences with item i in int32 (half the cache of float64
    sums, and no value loads); returns how many items were touched (their indices first in `touched`)."""
    nnz = len(c_indices)
    nt = 0
    for p in range(c_indptr[i], c_indptr[i + 1]):
        if p + PREFETCH_OFFSETS < nnz:
            _prefetch(r_indptr, c_indices[p + PREFETCH_OFFSETS])
        if p + PREFETCH_ROWS < nnz:
            _prefetch(r_indices, r_indptr[c_indices[p + PREFETCH_ROWS]])
        u = c_indices[p]
        for q in range(r_indptr[u], r_indptr[u + 1]):
            j = r_indices[q]
            c = cnt[j]
            touched[nt] = j  # branch-free: kept only on the first touch
            nt += c == 0
            cnt[j] = c + 1
    return nt


@nb.njit(inline="always")
def _sum_products(c_indptr, c_indices, c_data, r_indptr, r_indices, r_data, i, acc, touched):  # type: ignore[no-untyped-def]
    """Σ_u x_ui x_uj in the order scipy's (X[:, i]ᵀ X) sums: users ascending, then the user's items; returns how
    many items were touched. Values are positive (zeros were dropped), so a zero sum marks an untouched item; a
    product that underflows to 0 may list an item twice, and its second visit reads the reset 0 and is skipped."""
    nnz = len(c_indices)
    nt = 0
    for p in range(c_indptr[i], c_indptr[i + 1]):
        if p + PREFETCH_OFFSETS < nnz:
            _prefetch(r_indptr, c_indices[p + PREFETCH_OFFSETS])
        if p + PREFETCH_ROWS < nnz:
            ahead = r_indptr[c_indices[p + PREFETCH_ROWS]]
            _prefetch(r_indices, ahead)
            _prefetch(r_data, ahead)
        u = c_indices[p]
        w = c_data[p]
        for q in range(r_indptr[u], r_indptr[u + 1]):
            j = r_indices[q]
            if acc[j] == 0.0:
                touched[nt] = j
                nt += 1
            acc[j] += w * r_data[q]
    return nt


@nb.njit(inline="always")
def _keep_best(i, nt, touched, acc, cnt, weights, factors, jaccard, k, hv, hi):  # type: ignore[no-untyped-def]
    """The k best of row i's touched items into hv/hi (unordered; returns how many), resetting the accumulator.

    A threshold and a buffer: a candidate better than the threshold (the k-th best at the last compaction; -inf
    at first) is appended, and a full buffer is cut back to its k best. Branch-free per candidate: the values come
    from scattered loads, and a branch on them stalls on every misprediction.
    """
    n_items = len(weights)
    constant = len(factors) > 0
    cap = len(hv) - 1  # + 1: the branch-free append always writes one past the kept entries
    size = 0
    tv = -np.inf
    ti = n_items
    # A row that touched many items is read in column order (sequential memory) rather than touch order.
    dense = nt * DENSE_SCAN_RATIO > n_items
    fi = factors[i] if constant else 0.0
    for t in range(n_items if dense else nt):
        j = t if dense else touched[t]
        if constant:
            c = cnt[j]
            cnt[j] = 0
            v = c * fi * factors[j]
            present = c != 0
        else:
            v = acc[j]
            acc[j] = 0.0
            present = v != 0.0  # untouched, or a repeated touch already taken
        if jaccard:
            v = v / max(weights[i] + weights[j] - v, 1e-12)
        hv[size] = v
        hi[size] = j
        size += present & ((v > tv) | ((v == tv) & (j < ti)))
        if size == cap:
            select_best(hv, hi, size, k)
            size = k
            tv = hv[0]
            ti = hi[0]
            for e in range(1, k):
                if better(tv, ti, hv[e], hi[e]):
                    tv = hv[e]
                    ti = hi[e]
    if size > k:
        select_best(hv, hi, size, k)
        size = k
    return size


@nb.njit(cache=True, nogil=True)
def _item_rows(
    c_indptr,
    c_indices,
    c_data,
    r_indptr,
    r_indices,
    r_data,
    weights,
    factors,
    k,
    jaccard,
    base,
    lo,
    hi_row,
    step,
    out_ids,
    out_vals,
    out_n,
):  # type: ignore[no-untyped-def]
    """Rows i = lo, lo+step, ... < hi_row of the item-item top-k into out[i - base] (see item_topk_rows)."""
    n_items = len(weights)
    constant = len(factors) > 0
    acc = np.zeros(0 if constant else n_items, np.float64)
    cnt = np.zeros(n_items if constant else 0, np.int32)
    touched = np.empty(n_items + 1, np.int64)
    cap = max(4 * k, 64)
    hv = np.zeros(cap + 1, np.float64)  # + 1: the branch-free append always writes one past the kept entries
    hi = np.zeros(cap + 1, np.int64)
    for i in range(lo, hi_row, step):
        if constant:  # s_ij = (co-occurrence count) · f_i · f_j
            nt = _count_cooccurrences(c_indptr, c_indices, r_indptr, r_indices, i, cnt, touched)
        else:
            nt = _sum_products(c_indptr, c_indices, c_data, r_indptr, r_indices, r_data, i, acc, touched)
        size = _keep_best(i, nt, touched, acc, cnt, weights, factors, jaccard, k, hv, hi)
        sort_by_index(hv, hi, size)
        m = 0
        row = i - base
        for e in range(size):
            j = hi[e]
            if j == i:  # the item counts among its k, then is dropped
                continue
            out_ids[row, m] = j
            out_vals[row, m] = min(max(hv[e], 0.0), 1.0)
            m += 1
        out_n[row] = m


def item_topk_rows(
    by_item: tuple[np.ndarray, np.ndarray, np.ndarray],
    by_user: tuple[np.ndarray, np.ndarray, np.ndarray],
    weights: np.ndarray,
    start: int,
    stop: int,
    N: int,
    jaccard: bool,
    factors: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows [start, stop) of the item-item top-N.

    by_item: (indptr, indices, data) of X as CSC (each item's users); by_user: X as CSR (each user's items), both
    float64 with sorted indices and no stored zeros. Row i keeps the N best j of s_ij = Σ_u x_ui x_uj (Jaccard:
    s_ij / (w_i + w_j - s_ij)), the item itself counted among the N and then dropped; sorted by column, clipped to
    [0, 1].
    `factors`: when every column j of X holds the single value f_j, s_ij = count_ij · f_i · f_j is computed from
    co-occurrence counts (faster, and exact ties stay exact).
    Returns (ids (rows, N) int32, values float32, entries per row).
    """
    rows = max(stop - start, 0)
    out_ids = np.zeros((rows, max(N, 1)), np.int32)
    out_vals = np.zeros((rows, max(N, 1)), np.float32)
    out_n = np.zeros(rows, np.int64)
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    factors = np.empty(0, np.float64) if factors is None else np.ascontiguousarray(factors, dtype=np.float64)

    def task(lo: int, hi: int, step: int) -> None:
        _item_rows(
            *by_item,
            *by_user,
            weights,
            factors,
            N,
            jaccard,
            start,
            start + lo,
            start + hi,
            step,
            out_ids,
            out_vals,
            out_n,
        )

    if rows:
        # round-robin: popular (heavy) items are often numbered next to each other
        run_rows(rows, task, interleave=True)
    return out_ids, out_vals, out_n
