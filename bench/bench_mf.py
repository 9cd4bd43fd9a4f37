"""Matrix factorisation on steam-200k: a little-tuned ALS (served by fold-in) against the selected model.

Protocol: `bench_quality.py`'s (binary purchases, users with >= 5 games, per-user 80/20 holdout seed 42, full
ranking, NDCG@10). The ALS is tuned on an inner split of the 80 % part only (a small grid around the selection
default), refitted on the 80 %, and scored on the 20 % exactly as served: each test user's training history folded
in (`factors.FoldIn`). Printed beside: the same ALS ranked with implicit's trained user factors (what the fold-in
gives up, if anything), BPR's default, the selection (every family, ALS and BPR included) and the fold-in's time
per history on the request path (`ServingModel.recommend_history`). No assertions: figures for the note.
Run: `.venv/bin/python bench/bench_mf.py [path] [budget_s]`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from bench_quality import DEFAULT_PATH, K, ndcg, purchases
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from gamerec_assets.recsys import ModelArtifact, build_model, inner_split, select_model_with_report
from gamerec_assets.recsys.factors import ALS
from gamerec_assets.recsys.selection import default_candidates
from gamerec_assets.recsys.served_model import ServingModel


def served_ndcg(params: dict, train: sp.csr_matrix, test: sp.csr_matrix, users: np.ndarray) -> tuple[float, object]:
    model = build_model(params).fit(train)
    ids, _ = model.recommend(train[users], N=K)
    return ndcg(ids, test, users), model


def trained_vectors_ndcg(model: ALS, train: sp.csr_matrix, test: sp.csr_matrix, users: np.ndarray) -> float:
    """The same configuration ranked with implicit's own user factors (no fold-in)."""
    with threadpool_limits(1, "blas"):
        ref = AlternatingLeastSquares(
            factors=model.factors,
            regularization=model.regularization,
            alpha=model.alpha,
            iterations=model.iterations,
            random_state=model.seed,
        )
        ref.fit(train, show_progress=False)
        ids, _ = ref.recommend(users, train[users], N=K, filter_already_liked_items=True)
    return ndcg(np.asarray(ids), test, users)


def request_latency_us(model: ALS, train: sp.csr_matrix, users: np.ndarray) -> tuple[float, float]:
    """Median and p99 microseconds of one /predict-sized ranking (k=10, `because` included) from the artifact."""
    n = train.shape[1]
    artifact = ModelArtifact(np.arange(n), model.similarity, np.ones(n), {"version": "bench"}, factors=model.fold)
    served = ServingModel(ModelArtifact.from_files(artifact.to_files()))
    histories = [train[u].indices for u in users[:2000]]
    for h in histories[:50]:
        served.recommend_history(h, 10)
    times = []
    for h in histories:
        t = time.perf_counter()
        served.recommend_history(h, 10)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e6), float(np.quantile(times, 0.99) * 1e6)


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    budget = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0
    m, _ = purchases(path)
    train, test = inner_split(m, 0.2, seed=42, min_items=5)
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    print(f"steam-200k purchases: {m.shape[0]} users x {m.shape[1]} titles, {m.nnz} interactions; {len(users)} test")

    # a little tuning, on an inner split of the 80 % part only
    inner_train, inner_held = inner_split(train, 0.2, seed=1)
    inner_users = np.flatnonzero(np.diff(inner_held.indptr) > 0)
    pop = np.diff(sp.csc_matrix(train).indptr)
    mean_pop = float(pop.sum()) / max(int((pop > 0).sum()), 1)
    grid = [
        {"model": "ALS", "factors": f, "alpha": a, "regularization": round(mean_pop * r, 3), "iterations": 15}
        for f in (64, 128, 256)
        for a in (20.0, 40.0)
        for r in (1.0, 4.0)
    ]
    tuned: list[tuple[float, dict]] = []
    for params in grid:
        t = time.perf_counter()
        score, _ = served_ndcg(params, inner_train, inner_held, inner_users)
        tuned.append((score, params))
        print(f"  inner {score:.4f}  {params}  {time.perf_counter() - t:.1f}s", flush=True)
    best_inner, best = max(tuned, key=lambda s: s[0])
    t = time.perf_counter()
    als_test, als = served_ndcg(best, train, test, users)
    als_s = time.perf_counter() - t
    als_trained = trained_vectors_ndcg(als, train, test, users)
    defaults = {c["model"]: c for c in default_candidates(train, ("ALS", "BPR"))}  # selection's starting points
    default_test, default_model = served_ndcg(defaults["ALS"], train, test, users)
    bpr_test, _ = served_ndcg(defaults["BPR"], train, test, users)
    lat_best = request_latency_us(als, train, users)
    lat_default = request_latency_us(default_model, train, users)

    t = time.perf_counter()
    result = select_model_with_report(train, time_budget_s=budget)
    selection_s = time.perf_counter() - t
    ids, _ = result.model.recommend(train[users], N=K)
    selected = ndcg(ids, test, users)
    mf_trials = sorted((t for t in result.trials if t.model in ("ALS", "BPR")), key=lambda t: -t.ndcg)

    print(f"\ntuned ALS {best} (inner {best_inner:.4f}): test NDCG@10 {als_test:.4f} served by fold-in")
    print(f"  same ALS ranked with implicit's trained user factors: {als_trained:.4f}; fit+score {als_s:.1f}s")
    print(f"  request path (k=10, because): median {lat_best[0]:.0f} us, p99 {lat_best[1]:.0f} us")
    print(f"selection's default ALS {defaults['ALS']}: {default_test:.4f}; ", end="")
    print(f"request median {lat_default[0]:.0f} us, p99 {lat_default[1]:.0f} us")
    print(f"selection's default BPR {defaults['BPR']}: {bpr_test:.4f}")
    print(f"select_model (all families, budget {budget:.0f}s, {selection_s:.1f}s wall) -> {result.best}")
    print(f"  test NDCG@10 {selected:.4f}")
    if mf_trials:
        top = mf_trials[0]
        print(f"  best MF trial in selection: {top.model} {top.ndcg:.4f} over {top.n_splits} splits", end="")
        print(f" ({len(mf_trials)} MF trials)")
    print(f"\nselected {selected:.4f} vs tuned ALS {als_test:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
