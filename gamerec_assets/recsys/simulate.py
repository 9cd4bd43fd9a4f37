"""Simulated play logs, vectorised: the original game-recommendation prototype's simulation.

Per user it draws `randint(1, max_games)` distinct games with probabilities

    p = alpha * p_weight + (1 - alpha) * uniform + Normal(0, noise_scale),   clipped at 0, renormalised,

where `p_weight ∝ rating × owned_ratio` and `uniform` is the uniform distribution (1 / n_games per game).
Users are processed a chunk at a time (a matrix of users × games), and the draw without replacement uses the
Efraimidis–Spirakis keys `U^(1/p)`: the top-k keys of a row are a weighted sample without replacement from p,
the same law as `numpy.random.choice(n, k, replace=False, p=p)`, without a Python loop per user.

Within a user the keys are ranked by value, ties to the lower game index (ties between finite keys have
probability ~0; games with p = 0 only tie at -inf, past the user's count).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl

from gamerec_assets.recsys import kernels


@dataclass(frozen=True)
class SimulationParams:
    n_users: int = 100
    max_games: int = 5
    alpha: float = 0.5
    noise_scale: float = 0.1
    seed: int = 42

    def validate(self, n_games: int) -> None:
        if self.n_users < 1:
            raise ValueError(f"n_users must be >= 1, got {self.n_users}")
        if not 1 <= self.max_games <= n_games:
            raise ValueError(f"max_games must be in [1, {n_games}] (the catalogue size), got {self.max_games}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.noise_scale < 0:
            raise ValueError(f"noise_scale must be >= 0, got {self.noise_scale}")


def preference_weights(rating: np.ndarray, owned_ratio: np.ndarray) -> np.ndarray:
    """p_weight ∝ rating × owned_ratio; uniform when every product is zero."""
    w = np.clip(np.asarray(rating, dtype=np.float64), 0, None) * np.clip(np.asarray(owned_ratio, np.float64), 0, None)
    total = w.sum()
    return w / total if total > 0 else np.full(len(w), 1.0 / len(w))


def simulate_interactions(
    game_ids: np.ndarray, p_weight: np.ndarray, params: SimulationParams, chunk_users: int = 20_000
) -> tuple[np.ndarray, np.ndarray]:
    """Return (user_ids, game_ids) arrays, users numbered 1..n_users, each with 1..max_games distinct games.

    The random stream is fixed by the seed and `chunk_users` (per chunk: the counts, the noise, the uniforms, in
    that order), so the draw for given (params, chunk_users) never changes. numpy makes the random numbers, which
    must come from one generator in order; the rest (logarithms, probabilities, keys, each user's top keys) runs in
    a compiled kernel (`kernels.simulate_select`). With GAMEREC_THREADS > 1 that rest runs on a second thread,
    overlapping the next chunk's random numbers (at most two chunks in memory).
    """
    game_ids = np.asarray(game_ids, dtype=np.int64)
    n_games = len(game_ids)
    params.validate(n_games)
    rng = np.random.default_rng(params.seed)
    base = np.ascontiguousarray(params.alpha * np.asarray(p_weight, np.float64) + (1 - params.alpha) / n_games)
    k_max = params.max_games

    def finish(
        start: int, counts: np.ndarray, noise: np.ndarray | None, log_u: np.ndarray, threads: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        # keys log(U)/p: larger is better; zero-probability games get -inf and are drawn only if nothing is left.
        # A user cannot draw more distinct games than have non-zero probability (numpy.choice would raise), so the
        # kernel caps counts at that number.
        with np.errstate(divide="ignore"):
            np.log(log_u, out=log_u)
        top = kernels.simulate_select(base, noise, log_u, counts, k_max, threads=threads)
        n = len(counts)
        keep = np.arange(k_max)[None, :] < counts[:, None]
        users = np.broadcast_to(np.arange(start + 1, start + n + 1)[:, None], (n, k_max))[keep]
        return users, game_ids[top[keep]]

    def draws(start: int) -> tuple[int, np.ndarray, np.ndarray | None, np.ndarray]:
        n = min(chunk_users, params.n_users - start)
        counts = rng.integers(1, k_max, size=n, endpoint=True)
        noise = rng.normal(0.0, params.noise_scale, size=(n, n_games)) if params.noise_scale else None
        return start, counts, noise, rng.random((n, n_games))

    starts = range(0, params.n_users, chunk_users)
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    if kernels.thread_count() == 1 or len(starts) == 1:
        parts = [finish(*draws(start), None) for start in starts]
    else:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gamerec-simulate") as worker:
            pending: Future[tuple[np.ndarray, np.ndarray]] | None = None
            for start in starts:
                chunk = draws(start)  # this thread: the random stream, in order
                if pending is not None:
                    parts.append(pending.result())
                pending = worker.submit(finish, *chunk, 1)  # the worker: everything after the draws
                del chunk
            if pending is not None:
                parts.append(pending.result())
    return np.concatenate([u for u, _ in parts]), np.concatenate([g for _, g in parts])


def simulate_user_logs(games: pl.DataFrame, params: SimulationParams) -> pl.DataFrame:
    """games needs game_id, rating and owned_ratio; returns user_id, game_id, weight (1.0: one play).

    The games are taken in game_id order, so a seed gives the same logs whatever order the rows arrive in (a table
    read back from SQLite or from MariaDB, a shuffled frame).
    """
    games = games.sort("game_id", maintain_order=True)
    p_weight = preference_weights(games["rating"].to_numpy(), games["owned_ratio"].to_numpy())
    users, game_ids = simulate_interactions(games["game_id"].to_numpy(), p_weight, params)
    return pl.DataFrame(
        {"user_id": users, "game_id": game_ids, "weight": np.ones(len(users), dtype=np.float64)},
        schema={"user_id": pl.Int64, "game_id": pl.Int64, "weight": pl.Float64},
    )
