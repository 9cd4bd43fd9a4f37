"""Simulated play logs, as the prototype defined them, vectorised.

Per user the prototype drew `randint(1, max_games)` distinct games with probabilities

    p = alpha * p_weight + (1 - alpha) * uniform + Normal(0, noise_scale),   clipped at 0, renormalised,

where `p_weight ∝ rating × owned_ratio` and `uniform` is the uniform distribution (1 / n_games per game).
Users are processed a chunk at a time (a matrix of users × games), and the draw without replacement uses the
Efraimidis–Spirakis keys `U^(1/p)`: the top-k keys of a row are a weighted sample without replacement from p,
the same law as `numpy.random.choice(n, k, replace=False, p=p)`, without a Python loop per user.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl


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
    """Return (user_ids, game_ids) arrays, users numbered 1..n_users, each with 1..max_games distinct games."""
    game_ids = np.asarray(game_ids, dtype=np.int64)
    n_games = len(game_ids)
    params.validate(n_games)
    rng = np.random.default_rng(params.seed)
    base = params.alpha * np.asarray(p_weight, np.float64) + (1 - params.alpha) / n_games
    k_max = params.max_games
    users_out: list[np.ndarray] = []
    games_out: list[np.ndarray] = []
    for start in range(0, params.n_users, chunk_users):
        n = min(chunk_users, params.n_users - start)
        counts = rng.integers(1, k_max, size=n, endpoint=True)
        probs = (
            base + rng.normal(0.0, params.noise_scale, size=(n, n_games))
            if params.noise_scale
            else np.broadcast_to(base, (n, n_games)).copy()
        )
        np.clip(probs, 0.0, None, out=probs)
        # Renormalising does not change the ranking of keys, but a row that is all zeros falls back to uniform.
        empty = probs.sum(axis=1) == 0
        probs[empty] = 1.0
        # log(U)/p: larger is better; zero-probability games get -inf and are drawn only if nothing else is left.
        with np.errstate(divide="ignore"):
            keys = np.log(rng.random((n, n_games))) / probs
        # A user cannot draw more distinct games than have non-zero probability (numpy.choice would raise).
        counts = np.minimum(counts, (probs > 0).sum(axis=1))
        top = (
            np.argpartition(-keys, k_max - 1, axis=1)[:, :k_max]
            if k_max < n_games
            else np.tile(np.arange(n_games), (n, 1))
        )
        order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        keep = np.arange(k_max)[None, :] < counts[:, None]
        users_out.append(np.broadcast_to(np.arange(start + 1, start + n + 1)[:, None], (n, k_max))[keep])
        games_out.append(game_ids[top[keep]])
    return np.concatenate(users_out), np.concatenate(games_out)


def simulate_user_logs(games: pl.DataFrame, params: SimulationParams) -> pl.DataFrame:
    """games needs game_id, rating and owned_ratio; returns user_id, game_id, weight (1.0: one play)."""
    p_weight = preference_weights(games["rating"].to_numpy(), games["owned_ratio"].to_numpy())
    users, game_ids = simulate_interactions(games["game_id"].to_numpy(), p_weight, params)
    return pl.DataFrame(
        {"user_id": users, "game_id": game_ids, "weight": np.ones(len(users), dtype=np.float64)},
        schema={"user_id": pl.Int64, "game_id": pl.Int64, "weight": pl.Float64},
    )
