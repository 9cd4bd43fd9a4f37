"""Cost of a request-time `filter` on /predict at 50,000 games: prints figures, asserts nothing.

A synthetic version (50,000 games, 50 neighbours each, 20 genres, 2,000 tags with 10 per game, 10 platforms,
release dates; 5,000 players of 20 games) served in process through `answers.predict_json` with the answer cache
off, so every request is scored: unfiltered, then with a typical filter (two genres any-of, a platform, a tag
none-of, a release bound, three excluded ids), the same with a boost (x1.5 for games released since 2020), with
a narrow one (one tag: ~0.5 % of the catalogue, so the popularity fill runs under the filter), and with a filter
never sent before (its mask computed, not cached).
Reports p50 / p99 per kind and the ratio to the unfiltered p50, and the load-time cost of the masks.

    .venv/bin/python bench/bench_filter.py [--requests 3000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gamerec_api.answers import predict_json
from gamerec_api.schemas import Boost, GameFilter, PredictRequest, ValueFilter
from gamerec_api.state import build_state
from gamerec_assets.recsys.model_artifact import ModelArtifact
from gamerec_assets.recsys.served_model import ServingModel

N_GAMES, N_USERS, PLAYED, NEIGHBOURS = 50_000, 5_000, 20, 50


def synthetic_state():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    ids = np.arange(1, N_GAMES + 1, dtype=np.int64)
    pop_weight = 1.0 / np.arange(1, N_GAMES + 1) ** 0.8
    pop_weight /= pop_weight.sum()
    users = np.repeat(np.arange(N_USERS), PLAYED)
    games = rng.choice(ids, N_USERS * PLAYED, p=pop_weight)
    logs = pl.DataFrame({"user_id": users, "game_id": games}).unique()
    rows = np.repeat(np.arange(N_GAMES), NEIGHBOURS)
    cols = rng.choice(N_GAMES, N_GAMES * NEIGHBOURS, p=pop_weight)
    sim = sp.csr_matrix((rng.random(N_GAMES * NEIGHBOURS), (rows, cols)), shape=(N_GAMES, N_GAMES))
    sim.setdiag(0)
    sim.eliminate_zeros()
    sim.sum_duplicates()
    genres = [f"Genre {i}" for i in range(20)]
    tags = [f"Tag {i}" for i in range(2000)]
    platforms = [f"Platform {i}" for i in range(10)]
    day0 = dt.date(2000, 1, 1)
    features = pl.DataFrame(
        {
            "game_id": ids,
            "name": [f"Game {i}" for i in ids],
            "genres": [list(rng.choice(genres, 2, replace=False)) for _ in ids],
            "tags": [list(rng.choice(tags, 10, replace=False)) for _ in ids],
            "platforms": [list(rng.choice(platforms, 3, replace=False)) for _ in ids],
            "released": [day0 + dt.timedelta(days=int(d)) for d in rng.integers(0, 9000, N_GAMES)],
        }
    )
    popularity = np.bincount(np.searchsorted(ids, logs["game_id"].to_numpy()), minlength=N_GAMES).astype(float)
    artifact = ModelArtifact(ids, sim, popularity, {"version": "bench-filter"}).with_serving(logs, features)
    started = time.perf_counter()
    state = build_state(ServingModel(artifact), cache_size=0)
    return state, time.perf_counter() - started


def timed(state, requests: list[PredictRequest]) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for req in requests:
        t = time.perf_counter()
        predict_json(state, req)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    state, load = synthetic_state()
    masks = state.filter_masks
    print(f"state built in {load:.2f} s ({N_GAMES:,} games; filter masks included)")
    assert masks is not None
    users = [str(u) for u in np.random.default_rng(1).integers(0, N_USERS, args.requests)]
    typical = GameFilter(
        genres=ValueFilter(any=["Genre 1", "Genre 2"]),
        platforms=ValueFilter(any=["Platform 0"]),
        tags=ValueFilter(none=["Tag 5"]),
        released_after=dt.date(2010, 1, 1),
        exclude=[1, 2, 3],
    )
    narrow = GameFilter(tags=ValueFilter(any=["Tag 7"]))
    fresh = [  # a filter no earlier request sent: its mask is computed, not found in the state's mask cache
        GameFilter(genres=typical.genres, platforms=typical.platforms, tags=typical.tags, exclude=[j, j + 1])
        for j in range(10, 10 + 4 * len(users), 2)
    ]
    recent = [Boost(filter=GameFilter(released_after=dt.date(2020, 1, 1)), factor=1.5)]
    kinds = {
        "unfiltered": None,
        "typical filter": typical,
        "filter + boost": (typical, recent),
        "narrow filter": narrow,
        "new filter each": fresh,
    }

    def requests(f: object, round_: int) -> list[PredictRequest]:
        if isinstance(f, tuple):
            return [PredictRequest(user_id=u, k=10, filter=f[0], boost=f[1]) for u in users]
        if isinstance(f, list):
            f = f[round_ * len(users) : (round_ + 1) * len(users)]
            return [PredictRequest(user_id=u, k=10, filter=g) for u, g in zip(users, f, strict=False)]
        return [PredictRequest(user_id=u, k=10, filter=f) for u in users]  # type: ignore[arg-type]

    for f in (None, typical, (typical, recent), narrow):  # warm up (numba compile, caches)
        timed(state, requests(f, 0)[:50])
    results = {}
    for round_ in range(2):  # interleaved rounds, the best median of each kind
        for name, f in kinds.items():
            t = timed(state, requests(f, round_))
            best = results.get(name)
            if best is None or statistics.median(t) < statistics.median(best):
                results[name] = t
    base = statistics.median(results["unfiltered"])
    for name, t in results.items():
        t.sort()
        p50, p99 = statistics.median(t), t[int(len(t) * 0.99)]
        print(f"{name:15s} p50 {p50 * 1e6:7.1f} µs  p99 {p99 * 1e6:7.1f} µs  ({p50 / base:.2f}x unfiltered p50)")


if __name__ == "__main__":
    main()
