"""One request: score a single history, with the history items that explain each recommendation.

Runs on the calling thread (GIL released), with one of two accumulators: dense (catalogue-sized) for histories
whose rows cover much of the catalogue, sorted entries for the short ones. Both sum each column in history order,
so they return bit-identical results.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from gamerec_assets.recsys.kernels.bounded_heap import offer, sort_best_first

# A history whose rows hold at least 1/DENSE_HISTORY_RATIO of the catalogue's entries is summed in a dense
# accumulator (O(items + work)); smaller ones sort their gathered entries (O(work log work), no catalogue-sized
# allocation).
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
def _history_dense(
    s_indptr, s_indices, s_data, hist, k, n_because, total, hv, hi, bv, bi, sizes, allowed, filtered, weight, weighted
):  # type: ignore[no-untyped-def]
    """The dense accumulator: the best k best first into hv/hi, their reasons into bv/bi/sizes; returns how many."""
    n_items = s_indptr.size - 1
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
        if acc[j] > 0 and (not filtered or allowed[j]):
            size, rv, ri = offer(hv, hi, size, k, acc[j] * weight[j] if weighted else acc[j], j, rv, ri)
    sort_best_first(hv, hi, size)
    if n_because > 0:
        for r in range(size):
            slot[hi[r]] = r + 1
        for a in range(hist.size):  # entries in history order: ties keep the lower item
            i = hist[a]
            for q in range(s_indptr[i], s_indptr[i + 1]):
                j = s_indices[q]
                if slot[j] > 0 and s_data[q] > 0:
                    _keep_reason(bv, bi, sizes, slot[j] - 1, n_because, np.float64(s_data[q]), i)
    return size


@nb.njit(nogil=True)
def _history_sorted(s_indptr, s_indices, s_data, hist, k, total, hv, hi, allowed, filtered, weight, weighted):  # type: ignore[no-untyped-def]
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
        if not (h_pos < hist.size and hist[h_pos] == j) and score > 0 and (not filtered or allowed[j]):
            size, rv, ri = offer(hv, hi, size, k, score * weight[j] if weighted else score, j, rv, ri)
        g = e
    return size, cols, vals, src, order


@nb.njit(nogil=True)
def _history_sparse(
    s_indptr, s_indices, s_data, hist, k, n_because, total, hv, hi, bv, bi, sizes, allowed, filtered, weight, weighted
):  # type: ignore[no-untyped-def]
    """The sorted-entries accumulator: same contract and results as `_history_dense`."""
    size, cols, vals, src, order = _history_sorted(
        s_indptr, s_indices, s_data, hist, k, total, hv, hi, allowed, filtered, weight, weighted
    )
    sort_best_first(hv, hi, size)
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
    return size


@nb.njit(cache=True, nogil=True)
def _recommend_history(
    s_indptr,
    s_indices,
    s_data,
    hist,
    k,
    n_because,
    method,
    out_ids,
    out_vals,
    out_because,
    allowed,
    filtered,
    weight,
    weighted,
):  # type: ignore[no-untyped-def]
    """Top-k unseen positive sums of the history's rows, best first, and per kept column the n_because largest
    positive contributions (value desc, history item asc). method: 0 choose, 1 dense, 2 sorted. `filtered`: only
    items with `allowed[j]` are candidates (the request's filter, inside the top-k rather than after it);
    `weighted`: each candidate's sum is multiplied by `weight[j]` (> 0, the request's boosts) before ranking."""
    n_items = s_indptr.size - 1
    total = 0
    for a in range(hist.size):
        total += s_indptr[hist[a] + 1] - s_indptr[hist[a]]
    hv = np.zeros(k, np.float64)
    hi = np.zeros(k, np.int64)
    bv = np.zeros((k, max(n_because, 1)), np.float64)
    bi = np.zeros((k, max(n_because, 1)), np.int64)
    sizes = np.zeros(k, np.int64)
    if method == 1 or (method == 0 and total * DENSE_HISTORY_RATIO >= n_items):
        size = _history_dense(
            s_indptr,
            s_indices,
            s_data,
            hist,
            k,
            n_because,
            total,
            hv,
            hi,
            bv,
            bi,
            sizes,
            allowed,
            filtered,
            weight,
            weighted,
        )
    else:
        size = _history_sparse(
            s_indptr,
            s_indices,
            s_data,
            hist,
            k,
            n_because,
            total,
            hv,
            hi,
            bv,
            bi,
            sizes,
            allowed,
            filtered,
            weight,
            weighted,
        )
    for r in range(size):
        out_ids[r] = hi[r]
        out_vals[r] = hv[r]
        for c in range(sizes[r]):
            out_because[r, c] = bi[r, c]
    return size


_METHODS = {None: 0, "dense": 1, "sorted": 2}
_NO_FILTER = np.ones(1, np.bool_)  # the `allowed` of an unfiltered call: never read (filtered=False)
_NO_WEIGHT = np.ones(1, np.float64)  # the `weight` of an unboosted call: never read (weighted=False)


def recommend_history(
    sim: tuple[np.ndarray, np.ndarray, np.ndarray],
    history: np.ndarray,
    N: int,
    n_because: int,
    method: str | None = None,
    allowed: np.ndarray | None = None,
    weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One user's top-N over a sorted, duplicate-free int64 history (item indices), for the API's request path.

    score(j) = Σ_{i in history} S_ij over unseen j with a positive score, summed in history order in float64;
    value desc, then index asc, as `recommend_rows` ranks. Returns (ids, scores float64, because) where because
    has one row per id holding the (up to) n_because history items with the largest positive S_ij, -1 padded.
    Runs on the calling thread (GIL released). `method` ("dense" or "sorted") overrides the automatic choice
    (DENSE_HISTORY_RATIO), for tests. `allowed`: a bool mask over the items (a request's filter); only those are
    ranked, so the top-N is the best N allowed items. None: no filter, no extra work. `weight`: a positive float64
    multiplier per item (a request's boosts): the ranking and the returned scores are sum × weight.
    """
    out_ids = np.empty(N, np.int64)
    out_vals = np.empty(N, np.float64)
    out_because = np.full((N, n_because), -1, np.int64)
    filtered = allowed is not None
    mask = np.ascontiguousarray(allowed, np.bool_) if filtered else _NO_FILTER
    if not mask.flags.writeable:  # numba compiles read-only arrays into another kernel (seconds, once): a copy
        mask = mask.copy()
    weighted = weight is not None
    w = np.ascontiguousarray(weight, np.float64) if weighted else _NO_WEIGHT
    if not w.flags.writeable:
        w = w.copy()
    n = _recommend_history(
        *sim, history, N, n_because, _METHODS[method], out_ids, out_vals, out_because, mask, filtered, w, weighted
    )
    return out_ids[:n], out_vals[:n], out_because[:n]
