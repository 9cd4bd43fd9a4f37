"""Simulated play logs: weighted draws without replacement (Efraimidis–Spirakis keys), one row per user."""

from __future__ import annotations

import numba as nb
import numpy as np

from gamerec_assets.recsys.kernels.bounded_heap import offer, sort_best_first
from gamerec_assets.recsys.kernels.kernel_threads import run_rows


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
            size, rv, ri = offer(hv, hi, size, k_max, log_u[r, g] / probs[g], g, rv, ri)
        sort_best_first(hv, hi, size)
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
        run_rows(n_rows, task, threads=threads)
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
            size, rv, ri = offer(hv, hi, size, k, v, g, rv, ri)
        sort_best_first(hv, hi, size)
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
        run_rows(n_rows, task, threads=threads)
    return top
