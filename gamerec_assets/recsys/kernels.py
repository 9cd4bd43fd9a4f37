"""Compiled (numba) kernels of the recommendation core: item-item top-K, scoring (batch, and one history for the
API's request path), row top-n, simulated draws.

Every kernel works on raw CSR/CSC arrays, one output row at a time with an accumulator (dense; or, for one short
history, its sorted entries), and selects the top entries with a bounded heap under one total order: value
descending, then column index ascending. The selected set does not depend on the order candidates are visited in,
and ties break to the lower index exactly as the numpy reference code did (`lexsort((indices, -values, rows))`).

Threads
-------
``set_threads(n)`` sets how many threads a large call uses (default, or ``None``: every core this process may run
on); it takes effect at the next call, and values below 1 mean 1. The core does not read the environment: the
Dagster definitions, the scale location and the API apply the ``GAMEREC_THREADS`` setting at start. The kernels are
compiled with ``nogil=True`` and a large call splits its rows into tasks run by that many Python threads, each
task with its own accumulator, so both cores work without numba's threading layer (no OpenMP/TBB dependency, safe
to fork, safe to call from several threads of a web server). When several processes share a machine (Dagster's
multiprocess executor running one item block per process) give each ``GAMEREC_THREADS=1``. Small calls (fewer
than ``PARALLEL_MIN_ROWS`` rows, e.g. a single API request) run on the calling thread with the GIL released.

Results never depend on the thread count: rows are independent and each row is summed in a fixed order.

The numba runtime is initialised when this module is imported (about 0.4 s, once per process) rather than on
the first call, so neither the first fit nor the first API request pays it, and processes forked from a server
that imported the project (Dagster's forkserver preload) inherit it. Compilation is cached on disk
(``cache=True``: ``__pycache__`` next to this file, or ``NUMBA_CACHE_DIR``). The first call on a new machine
compiles each kernel for the argument types it sees (one to three seconds each); later processes load the machine
code in about 10 ms.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic


def _initialise_numba() -> None:
    """Load numba's typing and lowering registries now (what its first dispatch would do)."""
    from numba.core.registry import cpu_target

    cpu_target.typing_context.refresh()
    cpu_target.target_context.refresh()


_initialise_numba()

__all__ = [
    "PARALLEL_MIN_ROWS",
    "csr_rows_topn",
    "item_topk_rows",
    "recommend_history",
    "recommend_rows",
    "set_threads",
    "simulate_select",
    "thread_count",
    "weighted_select",
]

# Below this many rows a call runs on the calling thread only.
PARALLEL_MIN_ROWS = 256
# Tasks per thread: more tasks balance uneven rows (popular items) at the cost of one accumulator each.
TASKS_PER_THREAD = 8


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_threads: int | None = None  # None: every core; set by the caller's settings through set_threads


def set_threads(threads: int | None) -> None:
    """How many threads large calls use from now on: None for every core, values below 1 mean 1.

    The core never reads the environment: the Dagster definitions, the scale location and the API apply the
    GAMEREC_THREADS setting (`gamerec_assets.settings.ThreadSettings.apply`) when they start.
    """
    global _threads
    _threads = None if threads is None else max(1, int(threads))


def thread_count() -> int:
    """Threads for large calls: what `set_threads` chose, default all the cores this process may use."""
    return _cores() if _threads is None else _threads


def _run_rows(
    n_rows: int, task: Callable[[int, int, int], None], interleave: bool = False, threads: int | None = None
) -> None:
    """Call task(lo, hi, step) over row sets covering range(n_rows): once on this thread for small calls, else as
    TASKS_PER_THREAD tasks per thread (contiguous ranges, or rows dealt round-robin when `interleave`)."""
    threads = (thread_count() if threads is None else max(1, threads)) if n_rows >= PARALLEL_MIN_ROWS else 1
    if threads == 1:
        task(0, n_rows, 1)
        return
    n_tasks = min(n_rows, threads * TASKS_PER_THREAD)
    if interleave:
        parts = [(c, n_rows, n_tasks) for c in range(n_tasks)]
    else:
        per = -(-n_rows // n_tasks)
        parts = [(lo, min(lo + per, n_rows), 1) for lo in range(0, n_rows, per)]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gamerec-kernel") as pool:
        for future in [pool.submit(task, *p) for p in parts]:
            future.result()


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


# ----------------------------------------------------------------------------------------------------------------
# bounded heap: the root is the worst kept entry under (value desc, index asc)


@nb.njit(inline="always")
def _worse(v1, i1, v2, i2):  # type: ignore[no-untyped-def]
    return v1 < v2 or (v1 == v2 and i1 > i2)


@nb.njit(inline="always")
def _sift_down(hv, hi, pos, size):  # type: ignore[no-untyped-def]
    while True:
        child = 2 * pos + 1
        if child >= size:
            return
        right = child + 1
        if right < size and _worse(hv[right], hi[right], hv[child], hi[child]):
            child = right
        if _worse(hv[child], hi[child], hv[pos], hi[pos]):
            hv[pos], hv[child] = hv[child], hv[pos]
            hi[pos], hi[child] = hi[child], hi[pos]
            pos = child
        else:
            return


@nb.njit(inline="always")
def _offer(hv, hi, size, k, v, i, rv, ri):  # type: ignore[no-untyped-def]
    """Offer (v, i) to a heap of capacity k holding `size` entries; returns (size, root value, root index).

    The root is carried in registers by the caller (rv, ri: valid once size == k), so the common case, a candidate
    no better than the worst kept entry, costs one comparison.
    """
    if size == k:
        if v < rv or (v == rv and i >= ri):
            return size, rv, ri
        hv[0] = v
        hi[0] = i
        _sift_down(hv, hi, 0, size)
        return size, hv[0], hi[0]
    pos = size
    hv[pos] = v
    hi[pos] = i
    while pos > 0:
        parent = (pos - 1) >> 1
        if _worse(hv[pos], hi[pos], hv[parent], hi[parent]):
            hv[pos], hv[parent] = hv[parent], hv[pos]
            hi[pos], hi[parent] = hi[parent], hi[pos]
            pos = parent
        else:
            break
    return size + 1, hv[0], hi[0]


@nb.njit(inline="always")
def _sort_best_first(hv, hi, size):  # type: ignore[no-untyped-def]
    """Heap sort in place: the heap's entries ordered best first (value desc, index asc)."""
    for end in range(size - 1, 0, -1):
        hv[0], hv[end] = hv[end], hv[0]
        hi[0], hi[end] = hi[end], hi[0]
        _sift_down(hv, hi, 0, end)


@nb.njit(inline="always")
def _sort_by_index(hv, hi, size):  # type: ignore[no-untyped-def]
    """Insertion sort in place of the first `size` entries by index (distinct indices, size <= K)."""
    for a in range(1, size):
        v = hv[a]
        i = hi[a]
        b = a - 1
        while b >= 0 and hi[b] > i:
            hv[b + 1] = hv[b]
            hi[b + 1] = hi[b]
            b -= 1
        hv[b + 1] = v
        hi[b + 1] = i


@nb.njit(inline="always")
def _better(v1, i1, v2, i2):  # type: ignore[no-untyped-def]
    return v1 > v2 or (v1 == v2 and i1 < i2)


@nb.njit(nogil=True)
def _select_best(bv, bi, n, k):  # type: ignore[no-untyped-def]
    """Reorder bv/bi[:n] so that the first k are the k best (value desc, index asc), in no particular order.

    Hoare selection (nth_element) around the middle element; indices are distinct, so the order is strict.
    """
    lo = 0
    hi_pos = n - 1
    target = k - 1
    while lo < hi_pos:
        mid = (lo + hi_pos) >> 1
        pv = bv[mid]
        pi = bi[mid]
        a = lo
        b = hi_pos
        while a <= b:
            while _better(bv[a], bi[a], pv, pi):
                a += 1
            while _better(pv, pi, bv[b], bi[b]):
                b -= 1
            if a <= b:
                bv[a], bv[b] = bv[b], bv[a]
                bi[a], bi[b] = bi[b], bi[a]
                a += 1
                b -= 1
        if target <= b:
            hi_pos = b
        elif target >= a:
            lo = a
        else:
            return


# ----------------------------------------------------------------------------------------------------------------
# item-item top-K: rows of Xᵀ X


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
    nnz = len(c_indices)
    constant = len(factors) > 0
    acc = np.zeros(0 if constant else n_items, np.float64)
    cnt = np.zeros(n_items if constant else 0, np.int32)
    touched = np.empty(n_items + 1, np.int64)
    cap = max(4 * k, 64)
    hv = np.zeros(cap + 1, np.float64)  # + 1: the branch-free append always writes one past the kept entries
    hi = np.zeros(cap + 1, np.int64)
    for i in range(lo, hi_row, step):
        nt = 0
        if constant:
            # every column holds one value: s_ij = (co-occurrence count) · f_i · f_j, counted in int32 (half the
            # cache of float64 sums, and no value loads)
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
        else:
            # Σ_u x_ui x_uj in the order scipy's (X[:, i]ᵀ X) sums: users ascending, then the user's items. Values
            # are positive (zeros were dropped), so a zero sum marks an untouched item; a product that underflows
            # to 0 may list an item twice, and its second visit reads the reset 0 and is skipped.
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
        # Top-k by a threshold and a buffer: a candidate better than the threshold (the k-th best at the last
        # compaction; -inf at first) is appended, and a full buffer is cut back to its k best. Branch-free per
        # candidate: the values come from scattered loads, and a branch on them stalls on every misprediction.
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
                _select_best(hv, hi, size, k)
                size = k
                tv = hv[0]
                ti = hi[0]
                for e in range(1, k):
                    if _better(tv, ti, hv[e], hi[e]):
                        tv = hv[e]
                        ti = hi[e]
        if size > k:
            _select_best(hv, hi, size, k)
            size = k
        _sort_by_index(hv, hi, size)
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
        _run_rows(rows, task, interleave=True)
    return out_ids, out_vals, out_n


# ----------------------------------------------------------------------------------------------------------------
# scoring: score(u, j) = Σ_i w_ui · S_ij, top-n unseen with a positive score


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
                size, rv, ri = _offer(hv, hi, size, n, v, j, rv, ri)
        _sort_best_first(hv, hi, size)
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
        _run_rows(n_rows, task)
    return out_ids, out_vals.astype(np.float32, copy=False)


# ----------------------------------------------------------------------------------------------------------------
# one request: score a single history, with the history items that explain each recommendation


# A history whose rows hold at least 1/DENSE_HISTORY_RATIO of the catalogue's entries is summed in a dense
# accumulator (O(items + work)); smaller ones sort their gathered entries (O(work log work), no catalogue-sized
# allocation). Both sum each column in history order, so they return bit-identical results.
DENSE_HISTORY_RATIO = 32


@nb.njit(inline="always")
def _keep_reason(bv, bi, sizes, r, n_because, v, i):  # type: ignore[no-untyped-def]
    """Insert (v, i) into row r of the best-first reasons (value desc, item asc), keeping at most n_because."""
    pos = sizes[r]
    while pos > 0 and (v > bv[r, pos - 1] or (v == bv[r, pos - 1] and i < bi[r, pos - 1])):
        if pos < n_because:
            bv[r, pos] = bv[r, pos - 1]
            bi[r, pos] = bi[r, pos - 1]
        pos -= 1
    if pos < n_because:
        bv[r, pos] = v
        bi[r, pos] = i
        if sizes[r] < n_because:
            sizes[r] += 1


@nb.njit(nogil=True)
def _history_sorted(s_indptr, s_indices, s_data, hist, k, total, hv, hi):  # type: ignore[no-untyped-def]
    """Gather the rows, stable-sort the entries by column, sum each group; returns (size, cols, vals, src, order)."""
    cols = np.empty(total, np.int64)
    vals = np.empty(total, np.float64)
    src = np.empty(total, np.int64)
    t = 0
    for a in range(hist.size):
        i = hist[a]
        for q in range(s_indptr[i], s_indptr[i + 1]):
            cols[t] = s_indices[q]
            vals[t] = s_data[q]
            src[t] = i
            t += 1
    order = np.argsort(cols, kind="mergesort")  # stable: each column's entries stay in history order
    size = 0
    rv = 0.0
    ri = 0
    h_pos = 0
    g = 0
    while g < total:
        j = cols[order[g]]
        e = g
        score = 0.0
        while e < total and cols[order[e]] == j:
            score += vals[order[e]]
            e += 1
        while h_pos < hist.size and hist[h_pos] < j:
            h_pos += 1
        if not (h_pos < hist.size and hist[h_pos] == j) and score > 0:
            size, rv, ri = _offer(hv, hi, size, k, score, j, rv, ri)
        g = e
    return size, cols, vals, src, order


@nb.njit(cache=True, nogil=True)
def _recommend_history(s_indptr, s_indices, s_data, hist, k, n_because, method, out_ids, out_vals, out_because):  # type: ignore[no-untyped-def]
    """Top-k unseen positive sums of the history's rows, best first, and per kept column the n_because largest
    positive contributions (value desc, history item asc). method: 0 choose, 1 dense, 2 sorted."""
    n_items = s_indptr.size - 1
    total = 0
    for a in range(hist.size):
        total += s_indptr[hist[a] + 1] - s_indptr[hist[a]]
    hv = np.zeros(k, np.float64)
    hi = np.zeros(k, np.int64)
    bv = np.zeros((k, max(n_because, 1)), np.float64)
    bi = np.zeros((k, max(n_because, 1)), np.int64)
    sizes = np.zeros(k, np.int64)
    dense = method == 1 or (method == 0 and total * DENSE_HISTORY_RATIO >= n_items)
    if dense:
        acc = np.zeros(n_items, np.float64)
        slot = np.full(n_items, -1, np.int64)  # -1 untouched, -2 seen, 0 touched, r + 1 kept at rank r
        touched = np.empty(min(total, n_items), np.int64)
        for a in range(hist.size):
            slot[hist[a]] = -2
        nt = 0
        for a in range(hist.size):
            i = hist[a]
            for q in range(s_indptr[i], s_indptr[i + 1]):
                j = s_indices[q]
                if slot[j] == -2:
                    continue
                if slot[j] == -1:
                    slot[j] = 0
                    touched[nt] = j
                    nt += 1
                acc[j] += s_data[q]
        size = 0
        rv = 0.0
        ri = 0
        for t in range(nt):
            j = touched[t]
            if acc[j] > 0:
                size, rv, ri = _offer(hv, hi, size, k, acc[j], j, rv, ri)
        _sort_best_first(hv, hi, size)
        if n_because > 0:
            for r in range(size):
                slot[hi[r]] = r + 1
            for a in range(hist.size):  # entries in history order: ties keep the lower item
                i = hist[a]
                for q in range(s_indptr[i], s_indptr[i + 1]):
                    j = s_indices[q]
                    if slot[j] > 0 and s_data[q] > 0:
                        _keep_reason(bv, bi, sizes, slot[j] - 1, n_because, np.float64(s_data[q]), i)
    else:
        size, cols, vals, src, order = _history_sorted(s_indptr, s_indices, s_data, hist, k, total, hv, hi)
        _sort_best_first(hv, hi, size)
        if n_because > 0:
            for r in range(size):
                j = hi[r]
                lo = 0
                up = total
                while lo < up:  # the group of column j: binary search over the sorted columns
                    mid = (lo + up) >> 1
                    if cols[order[mid]] < j:
                        lo = mid + 1
                    else:
                        up = mid
                p = lo
                while p < total and cols[order[p]] == j:
                    if vals[order[p]] > 0:
                        _keep_reason(bv, bi, sizes, r, n_because, vals[order[p]], src[order[p]])
                    p += 1
    for r in range(size):
        out_ids[r] = hi[r]
        out_vals[r] = hv[r]
        for c in range(sizes[r]):
            out_because[r, c] = bi[r, c]
    return size


_METHODS = {None: 0, "dense": 1, "sorted": 2}


def recommend_history(
    sim: tuple[np.ndarray, np.ndarray, np.ndarray],
    history: np.ndarray,
    N: int,
    n_because: int,
    method: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One user's top-N over a sorted, duplicate-free int64 history (item indices), for the API's request path.

    score(j) = Σ_{i in history} S_ij over unseen j with a positive score, summed in history order in float64;
    value desc, then index asc, as `recommend_rows` ranks. Returns (ids, scores float64, because) where because
    has one row per id holding the (up to) n_because history items with the largest positive S_ij, -1 padded.
    Runs on the calling thread (GIL released). `method` ("dense" or "sorted") overrides the automatic choice
    (DENSE_HISTORY_RATIO), for tests.
    """
    out_ids = np.empty(N, np.int64)
    out_vals = np.empty(N, np.float64)
    out_because = np.full((N, n_because), -1, np.int64)
    n = _recommend_history(*sim, history, N, n_because, _METHODS[method], out_ids, out_vals, out_because)
    return out_ids[:n], out_vals[:n], out_because[:n]


# ----------------------------------------------------------------------------------------------------------------
# top-n of the stored entries of each CSR row


@nb.njit(cache=True, nogil=True)
def _csr_topn_rows(indptr, indices, data, n, lo, hi_row, out_ids, out_vals):  # type: ignore[no-untyped-def]
    hv = np.zeros(n, data.dtype)
    hi = np.zeros(n, np.int64)
    for r in range(lo, hi_row):
        size = 0
        rv = hv[0]
        ri = hi[0]
        for p in range(indptr[r], indptr[r + 1]):
            size, rv, ri = _offer(hv, hi, size, n, data[p], indices[p], rv, ri)
        _sort_best_first(hv, hi, size)
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
        _run_rows(n_rows, task)
    return out_ids, (out_vals if keep_dtype else out_vals.astype(np.float32, copy=False))


# ----------------------------------------------------------------------------------------------------------------
# simulated play logs: weighted draws without replacement (Efraimidis–Spirakis keys), one row per user


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _simulate_rows(base, noise, log_u, counts, lo, hi_row, top):  # type: ignore[no-untyped-def]
    n_games = len(base)
    k_max = top.shape[1]
    with_noise = noise.shape[0] > 0
    hv = np.zeros(k_max, np.float64)
    hi = np.zeros(k_max, np.int64)
    probs = np.empty(n_games, np.float64)
    for r in range(lo, hi_row):
        positive = 0
        for g in range(n_games):
            p = base[g] + noise[r, g] if with_noise else base[g]
            # np.clip(p, 0.0, None), branch-free; p is never -0.0 (a sum is -0.0 only if both terms are, base >= 0)
            p = max(p, 0.0)
            probs[g] = p
            positive += p > 0.0
        if positive == 0:  # an all-zero row falls back to uniform
            probs[:] = 1.0
            positive = n_games
        size = 0
        rv = hv[0]
        ri = hi[0]
        for g in range(n_games):
            # p = 0: -inf, drawn only when nothing else is left (and then past the user's count)
            size, rv, ri = _offer(hv, hi, size, k_max, log_u[r, g] / probs[g], g, rv, ri)
        _sort_best_first(hv, hi, size)
        for e in range(size):
            top[r, e] = hi[e]
        if positive < counts[r]:
            counts[r] = positive


def simulate_select(
    base: np.ndarray,
    noise: np.ndarray | None,
    log_u: np.ndarray,
    counts: np.ndarray,
    N: int,
    threads: int | None = None,
) -> np.ndarray:
    """Per user row: p = clip(base + noise, 0) (all ones if every p is 0), keys log(U) / p, and the games of
    the N largest keys in key order (ties to the lower index), N the largest count. `counts` is capped in place
    at #{p > 0}."""
    n_rows = log_u.shape[0]
    top = np.zeros((n_rows, N), dtype=np.int64)
    noise_arr = np.empty((0, 0), np.float64) if noise is None else noise

    def task(lo: int, hi: int, step: int) -> None:
        _simulate_rows(base, noise_arr, log_u, counts, lo, hi, top)

    if n_rows:
        _run_rows(n_rows, task, threads=threads)
    return top


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _weighted_rows(probs, exponentials, counts, lo, hi_row, top):  # type: ignore[no-untyped-def]
    n_games = probs.shape[1]
    k_max = top.shape[1]
    hv = np.zeros(k_max, np.float64)
    hi = np.zeros(k_max, np.int64)
    for r in range(lo, hi_row):
        k = min(counts[r], k_max)
        size = 0
        rv = hv[0]
        ri = hi[0]
        for g in range(n_games):
            p = np.float64(probs[r, g])
            # key -E / p (larger is better, the Efraimidis–Spirakis log(U) / p); p <= 0: -inf, drawn last
            v = -np.float64(exponentials[r, g]) / p if p > 0.0 else -np.inf
            size, rv, ri = _offer(hv, hi, size, k, v, g, rv, ri)
        _sort_best_first(hv, hi, size)
        for e in range(size):
            top[r, e] = hi[e]


def weighted_select(
    probs: np.ndarray, exponentials: np.ndarray, counts: np.ndarray, N: int, threads: int | None = None
) -> np.ndarray:
    """Per row r: the games of the counts[r] (at most N) largest keys -exponentials[r, g] / probs[r, g] in key order
    (ties to the lower index), the rest of the row 0: counts[r] draws without replacement from probs[r] (any
    positive scale) when the exponentials are standard exponential. Like `simulate_select` with the probabilities
    given per row, and a heap only as large as each row's count (most simulated histories are short)."""
    n_rows = probs.shape[0]
    top = np.zeros((n_rows, N), dtype=np.int64)

    def task(lo: int, hi: int, step: int) -> None:
        _weighted_rows(probs, exponentials, counts, lo, hi, top)

    if n_rows and N > 0:
        _run_rows(n_rows, task, threads=threads)
    return top
