"""The selection every kernel shares: a bounded heap whose root is the worst kept entry, and an nth_element,
both under one total order (value descending, then index ascending), so ties break to the lower index wherever
the candidates come from.

These are inlined into the kernels that call them (`inline="always"`, except `select_best`). numba does not see
a change here as a change of the cached kernels in the other modules: see the package docstring.
"""

from __future__ import annotations

import numba as nb


@nb.njit(inline="always")
def worse(v1, i1, v2, i2):  # type: ignore[no-untyped-def]
    return v1 < v2 or (v1 == v2 and i1 > i2)


@nb.njit(inline="always")
def better(v1, i1, v2, i2):  # type: ignore[no-untyped-def]
    return v1 > v2 or (v1 == v2 and i1 < i2)


@nb.njit(inline="always")
def sift_down(hv, hi, pos, size):  # type: ignore[no-untyped-def]
    while True:
        child = 2 * pos + 1
        if child >= size:
            return
        right = child + 1
        if right < size and worse(hv[right], hi[right], hv[child], hi[child]):
            child = right
        if worse(hv[child], hi[child], hv[pos], hi[pos]):
            hv[pos], hv[child] = hv[child], hv[pos]
            hi[pos], hi[child] = hi[child], hi[pos]
            pos = child
        else:
            return


@nb.njit(inline="always")
def offer(hv, hi, size, k, v, i, rv, ri):  # type: ignore[no-untyped-def]
    """Offer (v, i) to a heap of capacity k holding `size` entries; returns (size, root value, root index).

    The root is carried in registers by the caller (rv, ri: valid once size == k), so the common case, a candidate
    no better than the worst kept entry, costs one comparison.
    """
    if size == k:
        if v < rv or (v == rv and i >= ri):
            return size, rv, ri
        hv[0] = v
        hi[0] = i
        sift_down(hv, hi, 0, size)
        return size, hv[0], hi[0]
    pos = size
    hv[pos] = v
    hi[pos] = i
    while pos > 0:
        parent = (pos - 1) >> 1
        if worse(hv[pos], hi[pos], hv[parent], hi[parent]):
            hv[pos], hv[parent] = hv[parent], hv[pos]
            hi[pos], hi[parent] = hi[parent], hi[pos]
            pos = parent
        else:
            break
    return size + 1, hv[0], hi[0]


@nb.njit(inline="always")
def sort_best_first(hv, hi, size):  # type: ignore[no-untyped-def]
    """Heap sort in place: the heap's entries ordered best first (value desc, index asc)."""
    for end in range(size - 1, 0, -1):
        hv[0], hv[end] = hv[end], hv[0]
        hi[0], hi[end] = hi[end], hi[0]
        sift_down(hv, hi, 0, end)


@nb.njit(inline="always")
def sort_by_index(hv, hi, size):  # type: ignore[no-untyped-def]
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


@nb.njit(nogil=True)
def select_best(bv, bi, n, k):  # type: ignore[no-untyped-def]
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
            while better(bv[a], bi[a], pv, pi):
                a += 1
            while better(pv, pi, bv[b], bi[b]):
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
