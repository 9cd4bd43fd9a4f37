"""Simulated play logs, vectorised: users with tastes (the default), or the original prototype's law.

The taste model (``model="taste"``)
-----------------------------------
Every game has a profile over the catalogue's genres and tags (the topics: every genre and every tag that at
least ``min_topic_games`` games carry; a genre and a tag of the same name are two topics): a unit vector whose
genre part holds ``genre_share`` of its squared length and its tag part the rest, each spread evenly over the
game's genres (tags). Every user has a taste, a unit vector over the same topics: the profile of a favourite game
(drawn by popularity) plus Gaussian noise of length about ``taste_noise`` in a random direction, renormalised. A
user's games are drawn from

    p_ug ∝ π_g × exp(taste_strength × cos(taste_u, profile_g)),

where π is the popularity, ``π_g ∝ rank_g ** -popularity_exponent``, games ranked by RAWG's ``added`` count (the
number of RAWG users who have the game in their library; rating × owned_ratio when the catalogue has no
``added``), ties to the lower game_id. So a user whose favourite is a multiplayer shooter mostly plays other
shooters with similar tags, the popular ones more often, and the item-item signal of the logs is the genre/tag
similarity of the games. The draw is without replacement: the first game follows p_u, the next p_u without the
games already drawn (the Efraimidis–Spirakis keys below).

Defaults: ``popularity_exponent = 0.69`` is the slope of log(owners) against log(rank) over steam-200k's 400
most-owned titles (the bundled catalogue holds RAWG's 400 most-added games). ``taste_strength = 25``,
``taste_noise = 0.5`` and ``genre_share = 0.5`` are set so that, with the steam-200k history lengths below,
1,000 simulated users on the bundled catalogue separate item-CF from popularity about as much as 1,000 real
steam-200k users do: test NDCG@10 item-CF 0.24 vs popularity 0.12 (10 seeds' mean; a 1,000-user sample of
steam-200k: 0.19-0.24 vs 0.13-0.16, all 12,393 users: 0.34 vs 0.15). A catalogue without genres and tags has no
profiles: every user then draws from the popularity alone.

History lengths follow steam-200k (``../shared/data/steam-200k``, 12,393 users, one row per (user, title) as
`steam.read_steam_log` aggregates it): the number of games a user has is ``ceil(X)``, ``X ~ LogNormal(history_mu,
history_sigma)``, capped at ``max_games``. The parameters are the maximum-likelihood fit of that discretised
lognormal to steam-200k's games per user (mean 10.4, median 2, 46 % of users with one game, p90 20, p99 154); it
reproduces the observed shares of users with ≤ 1, 2, 3, 5, 10, 20, 50, 100 games within 1.2 points.

The default cap, ``max_games = 50``, keeps 95.8 % of steam-200k's users uncapped (the median and the
single-game mass are untouched) while keeping a user below an eighth of the bundled 400-game catalogue; the
original model's default was 5, which would cap 27 % of real users and leave a test fold of one game to every
user the holdout scores.

``weight`` is play-time-like, as the steam adapter weighs real logs: ``1 + log1p(hours)``, where a game is
unplayed (hours 0, weight 1: owned, never launched) with probability ``1 - play_share`` and otherwise
``hours ~ LogNormal(hours_mu, hours_sigma)``. steam-200k: 54.7 % of (user, title) pairs have play time, and the
played hours have log-mean 1.590 and log-sd 2.068 (a median of exp(1.590) = 4.9 h). The hours lean towards the
taste: the normal score of log(hours) is ``hours_taste × r + sqrt(1 - hours_taste²) × noise``, r the normal score
of the game's place in the user's draw order (the games drawn first, nearest the taste, play longest). With 0.5,
weighting by hours costs item-CF 17 % of its NDCG@10 against unit weights (0.30 → 0.25, 10 seeds of 1,000 users),
as it does on 1,000-user samples of steam-200k (0.29 → 0.24, 0.25 → 0.19); with 0 the hours would be pure noise.

The original model (``model="original"``)
------------------------------------------
The original game-recommendation prototype's simulation: per user ``randint(1, max_games)`` distinct games with

    p = alpha * p_weight + (1 - alpha) * uniform + Normal(0, noise_scale),   clipped at 0, renormalised,

where ``p_weight ∝ rating × owned_ratio`` and ``uniform`` is the uniform distribution (1 / n_games per game).
Every user follows the same law, so its logs carry no item-item signal. ``weight`` is 1.0. ``alpha`` and
``noise_scale`` belong to this model only (the taste model ignores them, and the taste fields do not affect it).

The draw
--------
Users are processed a chunk at a time (a matrix of users × games), and the draw without replacement uses the
Efraimidis–Spirakis keys ``U^(1/p)``: the top-k keys of a row are a weighted sample without replacement from p,
the same law as ``numpy.random.choice(n, k, replace=False, p=p)``, without a Python loop per user. Within a user
the keys are ranked by value, ties to the lower game index (ties between finite keys have probability ~0; games
with p = 0 only tie at -inf, past the user's count). A user cannot draw more distinct games than have p > 0.

Both models take the games in game_id order, so a seed gives the same logs whatever order the rows arrive in.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy import special

from gamerec_assets.recsys import kernels

Model = Literal["taste", "original"]
MODELS: tuple[Model, ...] = ("taste", "original")

# steam-200k (see the module docstring): fitted by maximum likelihood, P(n) = F(n) - F(n - 1), F the LogNormal CDF.
STEAM_HISTORY_MU = 0.2375
STEAM_HISTORY_SIGMA = 2.1226
# steam-200k: share of (user, title) pairs with play time, and the log-mean / log-sd of the hours played.
STEAM_PLAY_SHARE = 0.547
STEAM_HOURS_MU = 1.590
STEAM_HOURS_SIGMA = 2.068


@dataclass(frozen=True)
class SimulationParams:
    n_users: int = 100
    max_games: int = 50  # a user's history is at most this long (both models); see the module docstring
    alpha: float = 0.5  # original model only
    noise_scale: float = 0.1  # original model only
    seed: int = 42
    # the taste model (see the module docstring)
    taste_strength: float = 25.0
    taste_noise: float = 0.5
    genre_share: float = 0.5
    min_topic_games: int = 5
    popularity_exponent: float = 0.69
    history_mu: float = STEAM_HISTORY_MU
    history_sigma: float = STEAM_HISTORY_SIGMA
    play_share: float = STEAM_PLAY_SHARE
    hours_mu: float = STEAM_HOURS_MU
    hours_sigma: float = STEAM_HOURS_SIGMA
    hours_taste: float = 0.5
    model: Model = "taste"

    def validate(self, n_games: int) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.n_users < 1:
            raise ValueError(f"n_users must be >= 1, got {self.n_users}")
        if not 1 <= self.max_games <= n_games:
            raise ValueError(f"max_games must be in [1, {n_games}] (the catalogue size), got {self.max_games}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.noise_scale < 0:
            raise ValueError(f"noise_scale must be >= 0, got {self.noise_scale}")
        if self.min_topic_games < 1:
            raise ValueError(f"min_topic_games must be >= 1, got {self.min_topic_games}")
        for name in ("genre_share", "play_share", "hours_taste"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("taste_strength", "taste_noise", "popularity_exponent", "history_sigma", "hours_sigma"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("history_mu", "hours_mu"):
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)}")


def preference_weights(rating: np.ndarray, owned_ratio: np.ndarray) -> np.ndarray:
    """p_weight ∝ rating × owned_ratio; uniform when every product is zero."""
    w = np.clip(np.asarray(rating, dtype=np.float64), 0, None) * np.clip(np.asarray(owned_ratio, np.float64), 0, None)
    total = w.sum()
    return w / total if total > 0 else np.full(len(w), 1.0 / len(w))


def _run_chunks(
    n_users: int,
    chunk_users: int,
    draws: Callable[[int], tuple[Any, ...]],
    finish: Callable[..., tuple[np.ndarray, ...]],
) -> list[tuple[np.ndarray, ...]]:
    """finish(*draws(start), threads) per chunk start, in order. draws makes the chunk's random numbers (one generator,
    in order, on this thread); with GAMEREC_THREADS > 1 finish runs on a second thread, overlapping the next
    chunk's draws (at most two chunks in memory)."""
    starts = range(0, n_users, chunk_users)
    if kernels.thread_count() == 1 or len(starts) == 1:
        return [finish(*draws(start), None) for start in starts]
    parts: list[tuple[np.ndarray, ...]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gamerec-simulate") as worker:
        pending: Future[tuple[np.ndarray, ...]] | None = None
        for start in starts:
            chunk = draws(start)  # this thread: the random stream, in order
            if pending is not None:
                parts.append(pending.result())
            pending = worker.submit(finish, *chunk, 1)  # the worker: everything after the draws
            del chunk
        if pending is not None:
            parts.append(pending.result())
    return parts


def simulate_interactions(
    game_ids: np.ndarray, p_weight: np.ndarray, params: SimulationParams, chunk_users: int = 20_000
) -> tuple[np.ndarray, np.ndarray]:
    """The original model: (user_ids, game_ids) arrays, users numbered 1..n_users, each with 1..max_games games.

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

    parts = _run_chunks(params.n_users, chunk_users, draws, finish)
    return np.concatenate([u for u, _ in parts]), np.concatenate([g for _, g in parts])


# ----------------------------------------------------------------------------------------------------------------
# the taste model


@dataclass(frozen=True)
class Tastes:
    """What the taste model draws from, for games in game_id order: log π (the popularity), the topics
    ("genre:…" then "tag:…", each sorted) and the topics × games profiles (each game's column has unit length, or
    is zero for a game without any topic)."""

    log_popularity: np.ndarray
    topics: list[str]
    loadings: np.ndarray


def popularity(games: pl.DataFrame, exponent: float) -> np.ndarray:
    """π_g ∝ rank ** -exponent, games (in game_id order) ranked by `added`, else by rating × owned_ratio."""
    if "added" in games.columns:
        score = np.nan_to_num(games["added"].cast(pl.Float64).to_numpy(), nan=0.0)
    else:
        score = preference_weights(games["rating"].to_numpy(), games["owned_ratio"].to_numpy())
    order = np.argsort(-score, kind="stable")  # ties: the lower game_id (games are in game_id order) ranks first
    rank = np.empty(len(score), np.float64)
    rank[order] = np.arange(1, len(score) + 1)
    pi = rank**-exponent
    return pi / pi.sum()


def topic_membership(games: pl.DataFrame, column: str, min_games: int) -> tuple[list[str], np.ndarray]:
    """The values of list column `column` that at least `min_games` games carry (sorted), and the games × topics
    membership (bool); none when the catalogue has no such column."""
    if column not in games.columns:
        return [], np.zeros((games.height, 0), dtype=bool)
    pairs = (
        games.select(pl.int_range(pl.len()).alias("game"), pl.col(column).alias("topic"))
        .explode("topic")
        .drop_nulls()
        .unique()
    )
    counts = pairs.group_by("topic").len().filter(pl.col("len") >= min_games).sort("topic")
    pairs = pairs.join(counts.with_row_index("k"), on="topic", how="inner")
    member = np.zeros((games.height, counts.height), dtype=bool)
    member[pairs["game"].to_numpy(), pairs["k"].to_numpy()] = True
    return counts["topic"].to_list(), member


def tastes_of(games: pl.DataFrame, params: SimulationParams) -> Tastes:
    """The taste model's ingredients for `games` (sorted by game_id)."""
    topics: list[str] = []
    blocks: list[np.ndarray] = []
    for column, share in (("genres", params.genre_share), ("tags", 1.0 - params.genre_share)):
        names, member = topic_membership(games, column, params.min_topic_games)
        norm = np.sqrt(member.sum(axis=1, keepdims=True))
        blocks.append(np.sqrt(share) * member / np.maximum(norm, 1.0))
        topics += [f"{column[:-1]}:{name}" for name in names]
    loadings = np.concatenate(blocks, axis=1)
    norm = np.linalg.norm(loadings, axis=1, keepdims=True)  # below 1 for a game with genres but no tags (or back)
    loadings = np.divide(loadings, norm, out=np.zeros_like(loadings), where=norm > 0)
    return Tastes(np.log(popularity(games, params.popularity_exponent)), topics, np.ascontiguousarray(loadings.T))


def simulate_tastes(
    game_ids: np.ndarray, tastes: Tastes, params: SimulationParams, chunk_users: int = 20_000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The taste model: (user_ids, game_ids, weights), users numbered 1..n_users.

    The random stream is fixed by the seed and `chunk_users`; per chunk, in order: the history lengths (normal),
    the favourites (uniform), the taste noise (users × topics, float32 normal), the keys' exponentials (users ×
    games, float32), then per drawn row the play flag (uniform) and the hours (normal). The draw is
    `kernels.weighted_select`: the Efraimidis–Spirakis keys of `kernels.simulate_select` (-E / p, E = -log U), with
    the probabilities given per user and a heap only as large as each user's history.
    """
    game_ids = np.asarray(game_ids, dtype=np.int64)
    n_games = len(game_ids)
    params.validate(n_games)
    rng = np.random.default_rng(params.seed)
    k_max = params.max_games
    n_topics = tastes.loadings.shape[0]
    # float32 from the tastes on (the product, the exponentials, the keys' inputs; the keys themselves are float64):
    # half the memory traffic, and a probability's relative error of ~1e-7 does not change the law that matters
    profiles = np.ascontiguousarray(tastes.loadings.T, dtype=np.float32)  # games × topics
    strong = np.ascontiguousarray(tastes.loadings * params.taste_strength, dtype=np.float32)  # topics × games
    log_popularity = tastes.log_popularity.astype(np.float32)
    popularity_cdf = np.cumsum(np.exp(tastes.log_popularity))
    noise = np.float32(params.taste_noise / np.sqrt(max(n_topics, 1)))
    # logits lie in [min log π - strength, strength] (the cosines are in [-1, 1]); while that stays inside float32's
    # exp range every p is a normal float and no shift is needed, else each row is shifted by its maximum and
    # floored at exp(-80) relative to it (so every p > 0: no count is capped, every key is finite)
    shift = params.taste_strength - float(log_popularity.min()) > 80.0

    def draws(start: int) -> tuple[Any, ...]:
        n = min(chunk_users, params.n_users - start)
        log_len = params.history_mu + params.history_sigma * rng.standard_normal(n)
        counts = np.minimum(np.ceil(np.exp(np.minimum(log_len, np.log(k_max)))), k_max).astype(np.int64)
        counts = np.maximum(counts, 1)
        favourite = rng.random(n)
        taste = rng.standard_normal((n, n_topics), dtype=np.float32)
        exponentials = rng.standard_exponential((n, n_games), dtype=np.float32)  # -log(U): the keys' randomness
        total = int(counts.sum())
        played = rng.random(total) < params.play_share
        hours_noise = rng.standard_normal(total)
        return start, counts, favourite, taste, exponentials, played, hours_noise

    def finish(
        start: int,
        counts: np.ndarray,
        favourite: np.ndarray,
        taste: np.ndarray,
        exponentials: np.ndarray,
        played: np.ndarray,
        hours_noise: np.ndarray,
        threads: int | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(counts)
        anchor = np.minimum(np.searchsorted(popularity_cdf, favourite * popularity_cdf[-1], side="right"), n_games - 1)
        taste *= noise
        taste += profiles[anchor]
        norm = np.linalg.norm(taste, axis=1, keepdims=True)
        np.divide(taste, norm, out=taste, where=norm > 0)
        logits = taste @ strong
        logits += log_popularity
        if shift:
            logits -= logits.max(axis=1, keepdims=True)
            np.maximum(logits, np.float32(-80.0), out=logits)
        probs = np.exp(logits, out=logits)
        top = kernels.weighted_select(probs, exponentials, counts, k_max, threads=threads)
        keep = np.arange(k_max)[None, :] < counts[:, None]
        users = np.broadcast_to(np.arange(start + 1, start + n + 1)[:, None], (n, k_max))[keep]
        # hours: log-normal; its normal score leans (hours_taste) towards the game's place in the user's draw order,
        # the normal score of (place + 1/2) / count, so the games a user drew first, nearest the taste, play longest
        place = np.nonzero(keep)[1]
        order_score = special.ndtri(1.0 - (place + 0.5) / np.repeat(counts, counts))
        rho = params.hours_taste
        z = rho * order_score + np.sqrt(1.0 - rho * rho) * hours_noise
        hours = np.exp(params.hours_mu + params.hours_sigma * z)
        weights = np.where(played, 1.0 + np.log1p(hours), 1.0)
        return users, game_ids[top[keep]], weights

    parts = _run_chunks(params.n_users, chunk_users, draws, finish)
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


def simulate_user_logs(games: pl.DataFrame, params: SimulationParams) -> pl.DataFrame:
    """user_id (int64, 1..n_users), game_id, weight: one row per (user, game), a user's games in draw order.

    The taste model (default) reads game_id, genres, tags and added (see the module docstring; a catalogue without
    genres and tags draws every user from the popularity alone, one without added ranks popularity by
    rating × owned_ratio); weight is 1 + log1p(hours played). The original model reads game_id, rating and
    owned_ratio; weight is 1.0 (one play).

    The games are taken in game_id order, so a seed gives the same logs whatever order the rows arrive in (a table
    read back from SQLite or from MariaDB, a shuffled frame).
    """
    games = games.sort("game_id", maintain_order=True)
    params.validate(games.height)
    if params.model == "original":
        p_weight = preference_weights(games["rating"].to_numpy(), games["owned_ratio"].to_numpy())
        users, game_ids = simulate_interactions(games["game_id"].to_numpy(), p_weight, params)
        weights = np.ones(len(users), dtype=np.float64)
    else:
        users, game_ids, weights = simulate_tastes(games["game_id"].to_numpy(), tastes_of(games, params), params)
    return pl.DataFrame(
        {"user_id": users, "game_id": game_ids, "weight": weights},
        schema={"user_id": pl.Int64, "game_id": pl.Int64, "weight": pl.Float64},
    )
