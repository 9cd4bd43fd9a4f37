"""Speed and scale of the recommendation core, side by side with implicit 0.7.

Synthetic implicit logs, seeded: Zipf item popularity, lognormal history lengths.
  (a) 280,000 users x 13,000 items x ~2.85 M interactions
  (b) 1,000,000 users x 100,000 items x ~13 M interactions
Each (size, library) runs in its own process so peak RSS is that library's alone. Timings include each library's
first call in a fresh process (for gamerec: loading the cached numba kernels, ~10 ms each; the numba runtime itself
is initialised when gamerec_assets.recsys is imported, like implicit's extension modules).

Usage: .venv/bin/python bench/bench_core.py [--sizes a b] [--libs gamerec implicit] [--threads N]
  --threads N: kernels.set_threads(N) for gamerec, num_threads=N for implicit (default: all cores for both)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import scipy.sparse as sp

SIZES = {"a": (280_000, 13_000, 2_850_000), "b": (1_000_000, 100_000, 13_000_000)}


def synthetic(users: int, items: int, interactions: int, seed: int = 42) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    sigma = 1.0
    lengths = rng.lognormal(mean=0.0, sigma=sigma, size=users)
    lengths = np.maximum(1, np.round(lengths * interactions / lengths.sum())).astype(np.int64)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.9
    popularity /= popularity.sum()
    cols = rng.choice(items, size=int(lengths.sum()), p=popularity)
    rows = np.repeat(np.arange(users), lengths)
    m = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(users, items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def work(m: sp.csr_matrix) -> float:
    """Σ_u |I_u|²: the co-occurrence work of an item-item fit."""
    return float((np.diff(m.indptr).astype(np.float64) ** 2).sum())


def run_one(size: str, lib: str, neighbors: int = 100, n_single: int = 2000, threads: int = 0) -> dict[str, float]:
    m = synthetic(*SIZES[size])
    out: dict[str, float] = {"users": m.shape[0], "items": m.shape[1], "nnz": m.nnz, "work": work(m)}
    if lib == "gamerec":
        from gamerec_assets.recsys import ItemCF

        model = ItemCF("cosine", neighbors)
        started = time.perf_counter()
        model.fit(m)
        out["fit_s"] = time.perf_counter() - started

        def batch(rows: np.ndarray) -> None:
            model.recommend(m[rows], N=10)

        def single(u: int) -> None:
            model.recommend(m[u : u + 1], N=10)
    else:
        from implicit.nearest_neighbours import CosineRecommender

        model = CosineRecommender(K=neighbors, num_threads=threads)
        started = time.perf_counter()
        model.fit(m, show_progress=False)
        out["fit_s"] = time.perf_counter() - started

        def batch(rows: np.ndarray) -> None:
            model.recommend(rows, m[rows], N=10)

        def single(u: int) -> None:
            model.recommend(u, m[u], N=10)

    users = np.arange(m.shape[0])
    started = time.perf_counter()
    for start in range(0, len(users), 50_000):
        batch(users[start : start + 50_000])
    out["batch_users_per_s"] = len(users) / (time.perf_counter() - started)
    rng = np.random.default_rng(1)
    lat = []
    for u in rng.choice(m.shape[0], n_single, replace=False):
        t = time.perf_counter()
        single(int(u))
        lat.append(time.perf_counter() - t)
    out["single_p50_ms"] = float(np.percentile(lat, 50) * 1e3)
    out["single_p99_ms"] = float(np.percentile(lat, 99) * 1e3)
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return out


def simulation_seconds(n_users: int = 1_000_000) -> float:
    from gamerec_assets.recsys.simulate import SimulationParams, preference_weights, simulate_interactions

    rng = np.random.default_rng(0)
    weights = preference_weights(rng.uniform(0, 5, 400), rng.uniform(0, 1, 400))
    started = time.perf_counter()
    simulate_interactions(np.arange(400), weights, SimulationParams(n_users=n_users))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["a", "b"])
    parser.add_argument("--libs", nargs="+", default=["gamerec", "implicit"])
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "LIB"))
    args = parser.parse_args()
    if args.child:
        from gamerec_assets.recsys import kernels

        kernels.set_threads(args.threads or None)  # the core reads no environment: it is told
        print(json.dumps(run_one(*args.child, threads=args.threads)))
        return
    print(f"machine: {os.cpu_count()} CPUs; threads={args.threads or 'all'}")
    print(f"simulate 1,000,000 users (the default simulation, 400 games): {simulation_seconds():.1f} s")
    results: dict[tuple[str, str], dict[str, float]] = {}
    for size in args.sizes:
        for lib in args.libs:
            cmd = [sys.executable, __file__, "--child", size, lib, "--threads", str(args.threads)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                print(f"{size}/{lib} failed: {done.stderr[-2000:]}")
                continue
            results[size, lib] = json.loads(done.stdout.strip().splitlines()[-1])
    header = f"{'size':4} {'lib':9} {'fit s':>8} {'work/s':>10} {'batch u/s':>11} {'p50 ms':>7} {'p99 ms':>7}"
    header += f" {'RSS GB':>7}"
    print(header)
    for (size, lib), r in results.items():
        print(
            f"{size:4} {lib:9} {r['fit_s']:8.2f} {r['work'] / r['fit_s']:10.3g} {r['batch_users_per_s']:11,.0f} "
            f"{r['single_p50_ms']:7.3f} {r['single_p99_ms']:7.3f} {r['peak_rss_gb']:7.2f}"
        )
    for size in args.sizes:
        ours, theirs = results.get((size, "gamerec")), results.get((size, "implicit"))
        if ours and theirs:
            print(
                f"({size}) ratios gamerec/implicit: fit time {ours['fit_s'] / theirs['fit_s']:.2f}x, "
                f"batch users/s {ours['batch_users_per_s'] / theirs['batch_users_per_s']:.2f}x, "
                f"p99 {ours['single_p99_ms'] / theirs['single_p99_ms']:.2f}x"
            )


if __name__ == "__main__":
    main()
