"""Quality bench on the steam-200k purchase log: the selected model against every candidate and implicit.

Protocol: binary purchase feedback, users with >= 5 games, per-user random 80/20 holdout (seed 42), full ranking
over the catalogue with seen items excluded, NDCG@10 normalised by min(10, |held-out|) (`ranking_metrics`).
`select_model` only ever sees the 80 % part. Run: `.venv/bin/python bench/bench_quality.py [path] [budget_s]`.

It also runs the selection with the `Hybrid` family enabled, the content being the titles' words (this log has no
catalogue), and checks that the selected model's NDCG@10 drops by at most 1 % (`MAX_HYBRID_DROP`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from gamerec_assets.recsys import EASE, build_model, inner_split, ranking_metrics, read_steam_log
from gamerec_assets.recsys.content import ItemContent
from gamerec_assets.recsys.selection import default_candidates, select_model_with_report

DEFAULT_PATH = Path(__file__).resolve().parents[1].parent / "shared/data/steam-200k/steam-200k.csv.gz"
TARGET = 0.47
K = 10


MAX_HYBRID_DROP = 0.01


def purchase_matrix(path: Path) -> sp.csr_matrix:
    """users × titles binary purchase matrix of the users with at least 5 purchased games."""
    return purchases(path)[0]


def purchases(path: Path) -> tuple[sp.csr_matrix, np.ndarray]:
    """The purchase matrix and its columns' titles."""
    log = read_steam_log(path).filter(pl.col("purchased"))
    log = log.filter(pl.len().over("user_id") >= 5)
    _, rows = np.unique(log["user_id"].to_numpy(), return_inverse=True)
    titles, cols = np.unique(log["title"].to_numpy().astype(str), return_inverse=True)
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(rows.max() + 1, cols.max() + 1))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m, titles


def title_content(titles: np.ndarray) -> ItemContent:
    """Content over the matrix's columns from the titles' words (steam-200k has no other attributes)."""
    ids = np.arange(len(titles), dtype=np.int64)
    return ItemContent.of(pl.DataFrame({"game_id": ids, "name": titles.tolist()}), None, ids)


def ndcg(ids: np.ndarray, test: sp.csr_matrix, users: np.ndarray) -> float:
    return ranking_metrics(ids, test[users], K)["ndcg"]


def ours(model: Any, train: sp.csr_matrix, test: sp.csr_matrix, users: np.ndarray, fit: bool = True) -> float:
    if fit:
        model.fit(train)
    ids, _ = model.recommend(train[users], N=K)
    return ndcg(ids, test, users)


def implicit_baselines(train: sp.csr_matrix, test: sp.csr_matrix, users: np.ndarray) -> dict[str, float]:
    from implicit.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

    out = {}
    candidates = {
        "implicit CosineRecommender(K=100)": CosineRecommender(K=100),
        "implicit BM25Recommender(K=100)": BM25Recommender(K=100),
        "implicit ALS(f=64, reg=0.05, it=15)": AlternatingLeastSquares(
            factors=64, regularization=0.05, iterations=15, random_state=42
        ),
        "implicit ALS(f=128, reg=0.1, it=15, alpha=10)": AlternatingLeastSquares(
            factors=128, regularization=0.1, iterations=15, alpha=10.0, random_state=42
        ),
    }
    for name, model in candidates.items():
        model.fit(train, show_progress=False)
        ids, _ = model.recommend(users, train[users], N=K, filter_already_liked_items=True)
        out[name] = ndcg(np.asarray(ids), test, users)
    return out


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    budget = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0
    m, titles = purchases(path)
    train, test = inner_split(m, 0.2, seed=42, min_items=5)
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    print(f"steam-200k purchases: {m.shape[0]} users (>= 5 games) x {m.shape[1]} titles, {m.nnz} interactions")
    print(f"holdout: train {train.nnz}, test {test.nnz} interactions, {len(users)} test users\n")

    rows: list[tuple[str, float, str]] = []
    started = time.perf_counter()
    result = select_model_with_report(train, time_budget_s=budget)
    wall = time.perf_counter() - started
    selected = ours(result.model, train, test, users, fit=False)
    rows.append((f"select_model -> {result.best}", selected, f"{wall:.1f}s (budget {budget:.0f}s)"))
    started = time.perf_counter()
    hybrid = select_model_with_report(train, time_budget_s=budget, content=title_content(titles))
    hybrid_wall = time.perf_counter() - started
    with_hybrid = ours(hybrid.model, train, test, users, fit=False)
    rows.append((f"select_model + Hybrid -> {hybrid.best}", with_hybrid, f"{hybrid_wall:.1f}s (budget {budget:.0f}s)"))
    for params in default_candidates(train):
        t = time.perf_counter()
        rows.append(
            (f"default {params}", ours(build_model(params), train, test, users), f"{time.perf_counter() - t:.1f}s")
        )
    for params in ({"model": "ItemCF", "similarity": "cosine", "neighbors": 100}, EASE(l2=250.0).params):
        t = time.perf_counter()
        rows.append(
            (f"reference {params}", ours(build_model(params), train, test, users), f"{time.perf_counter() - t:.1f}s")
        )
    baselines = implicit_baselines(train, test, users)
    rows.extend((name, score, "") for name, score in baselines.items())

    width = max(len(r[0]) for r in rows)
    print(f"{'model':<{width}}  {'NDCG@10':>8}  time")
    for name, score, note in rows:
        print(f"{name:<{width}}  {score:>8.4f}  {note}")
    print(
        f"\nselection trials (inner splits of the 80 % part only; {result.elapsed_s:.1f}s, "
        f"refit {result.refit_s:.1f}s, budget exhausted: {result.budget_exhausted}):"
    )
    print(result.table())
    hybrid_trials = [t for t in hybrid.trials if t.model == "Hybrid"]
    print(f"\nHybrid trials of the second selection ({len(hybrid_trials)}):")
    for t in sorted(hybrid_trials, key=lambda t: -t.ndcg)[:5]:
        print(f"  {t.ndcg:.4f} over {t.n_splits} splits  beta={t.params['beta']} c={t.params['content_weight']}")
    best_implicit = max(baselines.values())
    drop = 1.0 - with_hybrid / selected
    ok = selected >= TARGET and all(selected > v for v in baselines.values()) and drop <= MAX_HYBRID_DROP
    verdict = "PASS" if ok else "FAIL"
    print(f"\nselected {selected:.4f} vs target {TARGET} and best implicit {best_implicit:.4f}; with the Hybrid family")
    print(f"{with_hybrid:.4f} ({-drop:+.2%}, limit -{MAX_HYBRID_DROP:.0%}): {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
