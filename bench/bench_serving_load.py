"""Start and reload of the service at 1,000,000 users × 50,000 games: load time and peak RSS in a fresh process.

Builds one synthetic version in a temporary registry (local artifact folder): Zipf item popularity, ~10 M
interactions (a geometric number of games per user, mean 10), 17-digit string user ids (Steam-like), a sparse
top-K similarity (`--neighbors` per item, 300 as the pipeline serves), one card per game. It is published through
`ModelRegistry.publish`, so the files are exactly what the pipeline writes (and validated on the way out).

Then, in a fresh Python process (what a new worker is), it times `load_state` (the start) and a second
`load_state` while the first state is still referenced (a reload: both states live until the swap), and prints
the peak RSS after each (VmHWM). Targets: under 10 s and under 1.5 GB per worker. The reload runs in a worker
thread while the main thread's asyncio loop ticks every millisecond: the ticks' lag is the stall a request would
see from the load (the GIL held by a long single call), whatever the machine's other load does to HTTP figures.

    .venv/bin/python bench/bench_serving_load.py [--users 1000000] [--games 50000] [--neighbors 300]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gamerec_assets import backends  # noqa: E402
from gamerec_assets.recsys.model_artifact import GameCard, ModelArtifact, ServingData  # noqa: E402
from gamerec_assets.settings import StorageSettings  # noqa: E402
from gamerec_assets.store.registry import MODEL_NAME, ModelRegistry  # noqa: E402


def synthetic_artifact(n_users: int, n_games: int, neighbors: int, seed: int = 0) -> ModelArtifact:
    rng = np.random.default_rng(seed)
    item_ids = np.arange(n_games, dtype=np.int64) * 7 + 11
    # Zipf popularity over a random permutation of the items, ~10 games per user
    weights = 1.0 / np.arange(1, n_games + 1) ** 0.9
    weights = weights[rng.permutation(n_games)]
    weights /= weights.sum()
    counts = np.minimum(rng.geometric(0.1, n_users), 1000)
    rows = np.repeat(np.arange(n_users, dtype=np.int32), counts)
    cols = rng.choice(n_games, size=len(rows), p=weights).astype(np.int32)
    hist = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_games))
    hist.sum_duplicates()
    hist.sort_indices()
    popularity = np.bincount(hist.indices, minlength=n_games).astype(np.float64)
    # top-K neighbours per item: K distinct random columns (no self), decreasing weights in (0, 1]
    k = min(neighbors, n_games - 1)
    nbr = (np.arange(n_games)[:, None] + 1 + rng.integers(0, n_games - 1, (n_games, k))) % n_games
    nbr.sort(axis=1)
    keep = np.ones_like(nbr, bool)
    keep[:, 1:] = nbr[:, 1:] != nbr[:, :-1]
    keep &= nbr != np.arange(n_games)[:, None]
    data = rng.random(nbr.shape, dtype=np.float32) * 0.99 + 0.01
    sim = sp.csr_matrix(
        (data[keep], nbr[keep].astype(np.int32), np.concatenate([[0], np.cumsum(keep.sum(1))])),
        shape=(n_games, n_games),
    )
    # 17-digit ids of equal length: numeric order is UTF-8 byte order
    ids = 76561197960265728 + np.sort(rng.choice(10 * n_users, n_users, replace=False))
    blob = np.frombuffer("".join(map(str, ids.tolist())).encode(), np.uint8).copy()
    offsets = np.arange(n_users + 1, dtype=np.int64) * 17
    genres = ["Action", "Adventure", "RPG", "Indie", "Strategy", "Shooter", "Puzzle"]
    cards = tuple(
        GameCard(
            game_id=int(g),
            name=f"Synthetic Game {i}: The Sequel",
            slug=f"synthetic-game-{i}",
            genres=[genres[i % 7], genres[(i * 3 + 1) % 7]],
            rating=round(1 + (i % 400) / 100, 2),
            released=f"{2000 + i % 25}-0{1 + i % 9}-1{i % 9}",
            background_image=f"https://media.rawg.io/media/games/{i:05d}/synthetic-{i}.jpg",
        )
        for i, g in enumerate(item_ids.tolist())
    )
    order = np.lexsort((np.arange(n_games), -popularity)).astype(np.int32)
    serving = ServingData(cards, blob, offsets, hist.indptr.astype(np.int64), hist.indices.astype(np.int32), order)
    manifest = {"parameters": {"model": "synthetic", "neighbors": k}, "source": {"interactions": "synthetic"}}
    return ModelArtifact(item_ids, sim, popularity, manifest, serving)


def rss_mb() -> float:
    """Peak RSS of this process so far: VmHWM, which starts afresh at exec (ru_maxrss carries the parent's peak
    across fork + exec, so it would report the builder's memory)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def loop_lag_during(fn, *args):  # type: ignore[no-untyped-def]
    """Run fn(*args) in a worker thread (as the holder's reload does) while this thread's asyncio loop ticks every
    millisecond; returns (fn's result, the tick lags in seconds). A lag is how late the event loop got to run: what
    every request being served would wait on top of its own time."""
    import asyncio

    async def run():  # type: ignore[no-untyped-def]
        lags: list[float] = []
        task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        clock = time.perf_counter
        while not task.done():
            t = clock()
            await asyncio.sleep(0.001)
            lags.append(clock() - t - 0.001)
        return await task, np.asarray(lags)

    return asyncio.run(run())


def measure(home: str) -> None:
    """In a fresh process: start (first load), then reload (second load with the first state alive)."""
    from gamerec_api.state import load_state

    registry = backends.registry(StorageSettings.from_env({"GAMEREC_HOME": home}), MODEL_NAME)
    base = rss_mb()
    t = time.perf_counter()
    first = load_state(registry)
    start_s, start_rss = time.perf_counter() - t, rss_mb()
    t = time.perf_counter()
    quiet = load_state(registry)  # a reload with nobody waiting for the GIL
    quiet_s = time.perf_counter() - t
    del quiet
    _, idle = loop_lag_during(time.sleep, 3.0)  # the machine's own scheduling noise, nothing holding the GIL
    t = time.perf_counter()
    second, lags = loop_lag_during(load_state, registry)  # the reload runs in a worker thread, like the holder's
    reload_s, reload_rss = time.perf_counter() - t, rss_mb()
    print(
        json.dumps(
            {
                "users": first.n_users,
                "games": first.model.n_items,
                "interactions": int(first.hist_indices.size),
                "neighbour_pairs": int(first.model.similarity.nnz),
                "import_rss_mb": round(base),
                "start_s": round(start_s, 2),
                "start_peak_rss_mb": round(start_rss),
                "reload_s": round(reload_s, 2),
                "reload_quiet_s": round(quiet_s, 2),
                "reload_peak_rss_mb": round(reload_rss),
                "same": second.version == first.version,
                "lag_p99_ms": round(float(np.percentile(lags, 99)) * 1000, 2),
                "lag_p999_ms": round(float(np.percentile(lags, 99.9)) * 1000, 2),
                "lag_max_ms": round(float(lags.max()) * 1000, 2),
                "ticks": int(lags.size),
                "idle_p999_ms": round(float(np.percentile(idle, 99.9)) * 1000, 2),
                "idle_max_ms": round(float(idle.max()) * 1000, 2),
            }
        )
    )


def report(home: str) -> None:
    """Measure in a fresh process (what a new worker is) and print."""
    out = subprocess.run(
        [sys.executable, __file__, "--measure", home], capture_output=True, text=True, check=True, cwd=ROOT
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"fresh process: {r['users']:,} users, {r['games']:,} games, {r['interactions']:,} interactions, "
        f"{r['neighbour_pairs']:,} neighbour pairs; after imports {r['import_rss_mb']} MB"
    )
    print(f"  start  (load_state): {r['start_s']:.2f} s, peak RSS {r['start_peak_rss_mb']} MB")
    print(
        f"  reload (second load_state, the first state alive): {r['reload_quiet_s']:.2f} s alone, "
        f"{r['reload_s']:.2f} s beside a 1 ms event-loop ticker, "
        f"peak RSS {r['reload_peak_rss_mb']} MB   (targets: < 10 s, < 1,500 MB)"
    )
    print(
        f"  event loop during the reload (1 ms ticks, {r['ticks']} of them): lag p99 {r['lag_p99_ms']} ms, "
        f"p99.9 {r['lag_p999_ms']} ms, max {r['lag_max_ms']} ms (idle baseline: p99.9 {r['idle_p999_ms']} ms, "
        f"max {r['idle_max_ms']} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--games", type=int, default=50_000)
    parser.add_argument("--neighbors", type=int, default=300)
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the fresh process's entry point
    parser.add_argument("--keep", type=Path, help="build the version in this folder and keep it (re-runs reuse it)")
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
        return
    if args.keep and any(args.keep.rglob("manifest.json")):
        report(str(args.keep))
        return
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="gamerec-load-"))
    try:
        t = time.perf_counter()
        artifact = synthetic_artifact(args.users, args.games, args.neighbors)
        built = time.perf_counter() - t
        registry = ModelRegistry(
            backends.artifact_store(StorageSettings.from_env({"GAMEREC_HOME": str(tmp)})), MODEL_NAME
        )
        t = time.perf_counter()
        version = registry.publish(artifact)
        registry.promote(version, reason="bench")
        published = time.perf_counter() - t
        del artifact
        files = {p.name: p.stat().st_size for p in tmp.rglob(f"{version}/*")}
        print(
            f"synthetic version {version}: {args.users:,} users × {args.games:,} games, built in {built:.1f}s, "
            f"published and promoted in {published:.1f}s; files "
            + ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in sorted(files.items()))
        )
        report(str(tmp))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
