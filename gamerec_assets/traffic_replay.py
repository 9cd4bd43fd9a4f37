"""Traffic replay: players from a held-out part of a real log, replayed against a running API, so an online
experiment can be run (and its evaluation tested) without a site's traffic.

`hold_out` splits a log per user: a seeded random share of each player's games is held out, the rest trains the
models. `replay` then plays each held-out player against the API the way a site's page would: ask `/predict` for
recommendations, post an `impression` per game shown, and a `click` and a `play` for each shown game that is in
the player's held-out set (the games they went on to play), every event quoting the answer's `request_id` with the
answer's `event_token`. Which variant answered is the API's business: the replay only sees answers, exactly as a
browser does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import numpy as np
import polars as pl


@dataclass(frozen=True)
class ReplayUser:
    user_id: str
    held_out: frozenset[int]  # the games this player went on to play (never in the models' training data)


def hold_out(
    user_logs: pl.DataFrame, fraction: float = 0.2, min_games: int = 5, seed: int = 0
) -> tuple[pl.DataFrame, list[ReplayUser]]:
    """(the training rows, the replay users in a seeded random order). Players with at least `min_games` games
    keep ceil((1 - fraction) × n) of them for training; the rest are held out. Players with fewer games only
    train."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    ranked = user_logs.with_columns(
        pl.struct("user_id", "game_id").hash(seed).rank("ordinal").over("user_id").alias("_rank"),
        pl.len().over("user_id").alias("_n"),
    )
    held = (pl.col("_n") >= min_games) & (pl.col("_rank") > (pl.col("_n") * (1 - fraction)).ceil())
    train = ranked.filter(~held).drop("_rank", "_n")
    out = ranked.filter(held).group_by("user_id").agg(pl.col("game_id")).sort("user_id")
    order = np.random.default_rng(seed).permutation(out.height)
    users = [
        ReplayUser(str(u), frozenset(int(g) for g in games))
        for u, games in zip(out["user_id"].to_list(), out["game_id"].to_list(), strict=True)
    ]
    return train, [users[i] for i in order]


@dataclass
class ReplayCounts:
    users: int = 0
    answers: int = 0
    impressions: int = 0
    clicks: int = 0
    plays: int = 0
    failed: list[str] = field(default_factory=list)  # requests that did not succeed (status and text)
    variants: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, variant: str, shown: int, hits: int) -> None:
        with self._lock:
            self.users += 1
            self.answers += 1
            self.impressions += shown
            self.clicks += hits
            self.plays += hits
            self.variants[variant] = self.variants.get(variant, 0) + 1


def play_user(client: httpx.Client, user: ReplayUser, k: int, counts: ReplayCounts) -> None:
    """One player: an answer, then its events (posted with the answer's token)."""
    r = client.post("/predict", json={"user_id": user.user_id, "k": k})
    if r.status_code != 200:
        counts.failed.append(f"/predict {r.status_code}: {r.text[:200]}")
        return
    answer = r.json()
    rid = answer["request_id"]
    shown = [item["game_id"] for item in answer["items"]]
    hits = [g for g in shown if g in user.held_out]
    events = [{"user_id": user.user_id, "game_id": g, "type": "impression", "event_id": f"{rid}.i.{g}"} for g in shown]
    for g in hits:
        events.append({"user_id": user.user_id, "game_id": g, "type": "click", "event_id": f"{rid}.c.{g}"})
        events.append({"user_id": user.user_id, "game_id": g, "type": "play", "event_id": f"{rid}.p.{g}"})
    for e in events:
        e["request_id"] = rid
    posted = client.post(
        "/events", json={"events": events}, headers={"Authorization": f"Bearer {answer['event_token']}"}
    )
    if posted.status_code != 202 or posted.json()["rejected"]:
        counts.failed.append(f"/events {posted.status_code}: {posted.text[:200]}")
        return
    counts.add(answer.get("variant", "production"), len(shown), len(hits))


def replay(
    base_url: str,
    users: Sequence[ReplayUser],
    k: int = 10,
    threads: int = 4,
    on_progress: Callable[[ReplayCounts], None] | None = None,
) -> ReplayCounts:
    """Play `users` against the API at `base_url` with `threads` concurrent players; the counts (and every failed
    request, which a caller should treat as an error)."""
    counts = ReplayCounts()
    with httpx.Client(base_url=base_url, timeout=30) as client, ThreadPoolExecutor(threads) as pool:
        for done, _ in enumerate(pool.map(lambda u: play_user(client, u, k, counts), users), start=1):
            if on_progress is not None and done % 100 == 0:
                on_progress(counts)
    return counts
