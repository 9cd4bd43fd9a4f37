"""Cold start bench: steam-200k linked to the 10,000-game RAWG catalogue, warm quality before/after the Hybrid
family, and the item cold-start protocol (hybrid and content against popularity and random).

Warm: the training protocol (`Holdout`, seed 42): selection on inner splits of the train fold, without the
catalogue's content (the zoo as it was) and with it (the `Hybrid` family enabled), each choice scored as served
(300 neighbours) on validation (the gate's figure) and on test (the report's). Cold: `evaluation.ColdStart`,
every interaction of a random 10 % of the played items held out, Recall@20 / NDCG@20 among the held-out games
(`_all`: among every game). Run: `.venv/bin/python bench/bench_cold_start.py [catalogue] [steam log] [budget_s]`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import polars as pl

from gamerec_assets.assets.interactions import steam_user_logs
from gamerec_assets.recsys.catalogue_file import catalogue_pages, read_catalogue
from gamerec_assets.recsys.cleaning import clean_games
from gamerec_assets.recsys.evaluation import ColdStart, Holdout
from gamerec_assets.recsys.rawg_pages import parse_pages
from gamerec_assets.recsys.selection import CF_FAMILIES, select_model_with_report

DATA = Path(__file__).resolve().parents[1].parent / "shared/data"
CATALOGUE = DATA / "rawg/rawg_games_2012_2016_10k.csv.gz"
STEAM = DATA / "steam-200k/steam-200k.csv.gz"
SERVING = 300
MAX_DROP = 0.01  # warm NDCG@10 may not drop by more than 1 %


def load(catalogue: Path, steam: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    features, _ = clean_games(parse_pages(catalogue_pages(read_catalogue(catalogue)), str(catalogue)))
    logs, _ = steam_user_logs(str(steam), features)
    return features, logs


def main() -> int:
    catalogue = Path(sys.argv[1]) if len(sys.argv) > 1 else CATALOGUE
    steam = Path(sys.argv[2]) if len(sys.argv) > 2 else STEAM
    budget = float(sys.argv[3]) if len(sys.argv) > 3 else 120.0
    features, logs = load(catalogue, steam)
    holdout = Holdout.of(logs, features)
    train_fold = holdout.folds("validation")[0].matrix
    print(f"{catalogue.name}: {features.height} games; {steam.name}: {logs.height} (user, game) pairs")
    print(f"items {len(holdout.item_ids)}, users {train_fold.shape[0]}\n")

    chosen: dict[str, dict[str, Any]] = {}
    for label, kwargs in (
        ("before (no content)", {"families": CF_FAMILIES}),
        ("after (Hybrid enabled)", {"content": holdout.item_content}),
    ):
        started = time.perf_counter()
        result = select_model_with_report(train_fold, time_budget_s=budget, refit=False, **kwargs)
        served = {**result.best, "serving_neighbors": SERVING}
        validation = holdout.score(served, "validation", (10,)).flat()["ndcg@10"]
        test = holdout.score(served, "test", (10,)).flat()["ndcg@10"]
        chosen[label] = {"params": served, "validation": validation, "test": test}
        print(f"warm {label}: {result.best}")
        print(
            f"  validation NDCG@10 {validation:.4f}   test NDCG@10 {test:.4f}   ({time.perf_counter() - started:.0f}s)"
        )
        hybrids = [t for t in result.trials if t.model == "Hybrid"]
        if hybrids:
            best = max(hybrids, key=lambda t: (t.n_splits, t.ndcg))
            print(f"  best Hybrid trial: {best.ndcg:.4f} over {best.n_splits} splits, {best.params}")
    before, after = chosen["before (no content)"], chosen["after (Hybrid enabled)"]
    drop = 1.0 - after["test"] / before["test"]
    print(f"\nwarm test NDCG@10 change: {-drop:+.2%} (limit -{MAX_DROP:.0%})\n")

    cold = ColdStart.of(logs, features, item_content=holdout.item_content)
    best_cf = before["params"]
    hybrid_params = {k: v for k, v in after["params"].items()}
    if hybrid_params["model"] != "Hybrid":  # selection rejected the hybrid: measure the default one anyway
        hybrid_params = {"model": "Hybrid", "cf": {k: v for k, v in best_cf.items() if k != "serving_neighbors"}}
        hybrid_params["serving_neighbors"] = SERVING
    content_only = {**hybrid_params, "beta": 1e12, "content_weight": 1.0}
    candidates = {
        "selected (after)": after["params"],
        "hybrid": hybrid_params,
        "content only": content_only,
        "selected CF (before)": best_cf,
    }
    started = time.perf_counter()
    result = cold.compare(candidates)
    print(f"item cold start: {result.protocol()} ({time.perf_counter() - started:.0f}s)")
    frame = result.frame()
    print(f"{'model':<22} {'Recall@20':>9} {'NDCG@20':>8} {'Recall@20 all':>14} {'NDCG@20 all':>12}")
    for row in frame.iter_rows(named=True):
        print(
            f"{row['model']:<22} {row['recall@20']:>9.4f} {row['ndcg@20']:>8.4f} "
            f"{row['recall@20_all']:>14.4f} {row['ndcg@20_all']:>12.4f}"
        )
    ok = drop <= MAX_DROP and result.metrics["hybrid"]["ndcg@20"] > 2 * result.metrics["random"]["ndcg@20"]
    print(f"\n{'PASS' if ok else 'FAIL'}: warm drop {drop:.2%} <= {MAX_DROP:.0%}, hybrid cold NDCG@20 > 2x random")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
