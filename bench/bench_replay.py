"""Benchmark of online experiments by traffic replay: how many replayed players an A/B test and team-draft
interleaving each need before the online evaluation calls the selected model better than the popularity baseline.

Both versions are trained on the same training rows of a real log (steam-200k by default: each player with 5 games
or more has a seeded 20 % of them held out); popularity is production, the model selection picks is the challenger.
For each mode the held-out players are replayed against an in-process API (`gamerec_assets.traffic_replay`: ask
/predict, post impressions, click and play the shown games that are in the player's held-out set) in steps of
`--step` players; after each step `recsys.online_evaluation.evaluate` looks (its mSPRT p-value stays valid under
this peeking). Prints, per mode and seed, the players, impressions and answers when the verdict turned significant.
Figures, no assertions: the test (`tests/gamerec_assets/test_traffic_replay.py`) asserts the verdicts.

    .venv/bin/python bench/bench_replay.py [--log ../shared/data/steam-200k/steam-200k.csv.gz] [--step 10]
        [--max-users 3000] [--seeds 0 1 2] [--ab-traffic 0.5] [--budget 10] [--baseline popularity|itemcf]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gamerec_api.app import create_app  # noqa: E402
from gamerec_api.demo import snapshot_features  # noqa: E402
from gamerec_assets import backends  # noqa: E402
from gamerec_assets.recsys import training  # noqa: E402
from gamerec_assets.recsys.online_evaluation import evaluate  # noqa: E402
from gamerec_assets.recsys.steam import read_steam_log, steam_interactions  # noqa: E402
from gamerec_assets.settings import StorageSettings  # noqa: E402
from gamerec_assets.store.event_store import EventStore  # noqa: E402
from gamerec_assets.store.experiment_answers import ExperimentAnswers  # noqa: E402
from gamerec_assets.store.experiments import ExperimentStore  # noqa: E402
from gamerec_assets.store.registry import MODEL_NAME, ModelRegistry  # noqa: E402
from gamerec_assets.traffic_replay import ReplayUser, hold_out, replay  # noqa: E402
from tests.support.uvicorn_server import serve, wait_ready  # noqa: E402

# production's model: the popularity baseline (a large difference), or plain ItemCF (a small one)
BASELINES = {
    "popularity": {"model": "Popularity"},
    "itemcf": {"model": "ItemCF", "similarity": "cosine", "neighbors": 100},
}


def until_significant(
    settings: StorageSettings,
    name: str,
    mode: str,
    traffic: float,
    selected: str,
    popularity: str,
    users: list[ReplayUser],
    step: int,
    catalogue: int,
) -> dict[str, object]:
    registry = ModelRegistry(backends.artifact_store(settings), MODEL_NAME)
    experiments = ExperimentStore(registry.store, registry.name)
    app = create_app(settings, reload_interval=0.2, env={})
    with serve(app) as base, httpx.Client(base_url=base, timeout=30) as c:
        wait_ready(c)
        holder = app.state.holder
        record = experiments.start(name, selected, popularity, traffic, mode, by="bench")
        while holder.experiment is None or holder.experiment.name != name:
            time.sleep(0.05)
        tables = holder.tables()
        played, verdict, started = 0, None, time.perf_counter()
        while played < len(users):
            batch = users[played : played + step]
            counts = replay(base, batch, k=10, threads=4)
            if counts.failed:
                raise SystemExit(f"replay failed: {counts.failed[:3]}")
            played += len(batch)
            while len(ExperimentAnswers(tables).frame(name)) < played:
                time.sleep(0.1)
            result = evaluate(EventStore(tables).read(), ExperimentAnswers(tables).frame(name), [record], catalogue)
            verdict = result.verdict(name)
            if verdict is not None and verdict["verdict"] != "not yet significant":
                break
        experiments.end("bench over", by="bench", only=name)
    assert verdict is not None
    return {"users": played, "seconds": time.perf_counter() - started, **verdict}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", default=str(ROOT.parent / "shared/data/steam-200k/steam-200k.csv.gz"))
    parser.add_argument("--step", type=int, default=10)
    parser.add_argument("--max-users", type=int, default=3000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ab-traffic", type=float, default=0.5)
    parser.add_argument(
        "--baseline",
        choices=sorted(BASELINES),
        default="popularity",
        help="production's model (the challenger: selection's)",
    )
    parser.add_argument("--budget", type=float, default=10.0, help="model selection's budget (s of estimated work)")
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise

    features = snapshot_features()
    logs, _ = steam_interactions(read_steam_log(args.log), features)
    print(f"log: {args.log}: {logs.height} interactions, {logs['user_id'].n_unique()} players")
    rows = []
    for seed in args.seeds:
        train, users = hold_out(logs, fraction=0.2, min_games=5, seed=seed)
        users = users[: args.max_users]
        with tempfile.TemporaryDirectory(prefix="gamerec-bench-replay-") as home:
            settings = StorageSettings.from_env({"GAMEREC_HOME": home})
            registry = ModelRegistry(backends.artifact_store(settings), MODEL_NAME)
            baseline = BASELINES[args.baseline]
            popularity, _ = training.fit_artifact(train, features, baseline)
            pop = registry.publish(popularity)
            registry.promote(pop, reason="the baseline")
            selected = training.train(train, features, training.TrainingParams(time_budget_s=args.budget))
            sel = registry.publish(selected.artifact)
            print(f"seed {seed}: {len(users)} replay players; production {baseline}, challenger {selected.params}")
            n_items = len(popularity.item_ids)
            for mode, traffic in (("ab", args.ab_traffic), ("interleave", 1.0)):
                r = until_significant(
                    settings, f"b{seed}-{mode[:2]}", mode, traffic, sel, pop, users, args.step, n_items
                )
                rows.append((seed, mode, r))
                print(
                    f"  {mode:>10}: {r['verdict']} after {r['users']} players, {r['impressions']} impressions "
                    f"(p = {r['p_value']:.2g}, effect {r['effect']:+.4f} on {r['metric']}, "
                    f"{r['production_value']:.4f} -> {r['challenger_value']:.4f}; {r['seconds']:.0f} s)"
                )
    print("\nplayers needed to reach significance (alpha 0.05, mSPRT, looks every --step players):")
    for mode in ("ab", "interleave"):
        needed = [r["users"] for _, m, r in rows if m == mode]
        print(f"  {mode:>10}: {needed}  median {sorted(needed)[len(needed) // 2]}")


if __name__ == "__main__":
    main()
