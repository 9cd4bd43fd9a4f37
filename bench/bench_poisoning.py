"""Poisoning bench (issue #22): 3,000 made-up users, each liking the least-played game and playing GTA V, on the
default data (the bundled RAWG snapshot, 1,000 simulated players, seed 42), trained clean, poisoned with the trust
rules off, and poisoned with them on (`recsys.event_trust`). Prints each model's trusted-holdout validation NDCG@10
(the gate's and the champion comparison's figure), the game's rank in the popular list new players get, and its rank
among GTA V's neighbours. Run: `.venv/bin/python bench/bench_poisoning.py [strategy: fixed | select]`.
"""

from __future__ import annotations

import sys

import dagster as dg
import polars as pl

from gamerec_assets.assets.features import GameFeaturesConfig, game_features
from gamerec_assets.assets.ingestion import RawGamesConfig, raw_games
from gamerec_assets.recsys.event_trust import Champion, TrustParams, assess
from gamerec_assets.recsys.feedback import event_pairs, merge_event_pairs
from gamerec_assets.recsys.served_model import ServingModel
from gamerec_assets.recsys.simulate import SimulationParams, simulate_user_logs
from gamerec_assets.recsys.training import TrainingParams, train
from gamerec_assets.resources.rawg import SnapshotRawgClient
from gamerec_assets.store.event_store import FRAME_SCHEMA

T0 = 1_796_000_000_000_000


def attack_events(target: int, gta: int, users: int = 3_000) -> pl.DataFrame:
    """Two events per made-up user (like the target, play GTA V 3 h), 1,000 per request, a second apart."""
    n = 2 * users
    types = ["like", "play"] * users
    received = [T0 + (i // 1_000) * 1_000_000 for i in range(n)]
    return pl.DataFrame(
        {
            "seq": range(1, n + 1),
            "event_id": [f"e{i}" for i in range(n)],
            "user_id": [f"sock{i // 2}" for i in range(n)],
            "game_id": [target, gta] * users,
            "type": types,
            "value": [None if t == "like" else 3.0 for t in types],
            "timestamp_us": received,
            "received_us": received,
            "request_id": [None] * n,
        },
        schema=FRAME_SCHEMA,
    )


def rank(ids: list[int], game: int) -> str:
    return str(ids.index(game) + 1) if game in ids else "> 10"


def main(strategy: str = "fixed") -> None:
    pages = raw_games(dg.build_asset_context(), RawGamesConfig(crawl_date="2026-01-02"), SnapshotRawgClient()).value
    features = game_features(dg.build_asset_context(), GameFeaturesConfig(), pages).value
    base = simulate_user_logs(features, SimulationParams(n_users=1_000, max_games=50, seed=42))
    base = base.with_columns(pl.col("user_id").cast(pl.Utf8))
    gta = int(features.filter(pl.col("name") == "Grand Theft Auto V")["game_id"].item())
    players = base.group_by("game_id").len().filter(pl.col("game_id") != gta).sort("len", "game_id")
    target, before = (int(v) for v in players.row(0))
    print(f"target game {target} ({before} player before), GTA V {gta}, training strategy {strategy}")
    events = attack_events(target, gta)
    poisoned, _ = merge_event_pairs(base, event_pairs(events))
    clean, _ = merge_event_pairs(base, event_pairs(events.head(0)))
    params = TrainingParams(strategy=strategy)  # type: ignore[arg-type]
    for name, logs, rules in (
        ("clean", clean, TrustParams()),
        ("poisoned, rules off", poisoned, TrustParams(enabled=False)),
        ("poisoned, rules on", poisoned, TrustParams()),
    ):
        marked, report = assess(logs, events if logs is poisoned else events.head(0), Champion(), rules)
        result = train(marked, features, params)
        model = ServingModel(result.artifact)
        popular = model.item_ids[model.popular_order[:10]].tolist()
        similar = model.similar([gta], 10)[0][0].tolist()
        print(
            f"{name:>20}: trusted validation ndcg@10 {result.validation.flat()['ndcg@10']:.4f} "
            f"(popularity {result.baseline.flat()['ndcg@10']:.4f}); popular rank {rank(popular, target)}; "
            f"GTA V neighbour rank {rank(similar, target)}; held back {report.held_back_pairs}"
        )


if __name__ == "__main__":
    main(*sys.argv[1:2])
