"""Seed a GAMEREC_HOME without Dagster: what the pipeline's assets produce, from the bundled RAWG snapshot.

For the service's tests and benchmark, and for trying the API without materialising the asset graph:

    python -m gamerec_api.demo --home /tmp/gamerec --users 100
"""

from __future__ import annotations

import argparse
import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from gamerec_assets import backends
from gamerec_assets.recsys import ModelArtifact, SimulationParams, clean_games, parse_pages, training
from gamerec_assets.recsys.rawg_pages import BUNDLED_SNAPSHOT
from gamerec_assets.recsys.served_model import ServingModel, batch_frame
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store.registry import MODEL_NAME

SNAPSHOT = BUNDLED_SNAPSHOT


@dataclass(frozen=True)
class Seeded:
    settings: StorageSettings
    version: str
    features: pl.DataFrame
    logs: pl.DataFrame


def snapshot_features() -> pl.DataFrame:
    with gzip.open(SNAPSHOT, "rt", encoding="utf-8") as fh:
        pages = json.load(fh)["pages"]
    features, _ = clean_games(parse_pages(pages, str(SNAPSHOT)))
    return features


def fit_artifact(features: pl.DataFrame, logs: pl.DataFrame, neighbors: int = 100) -> ModelArtifact:
    """Plain cosine ItemCF fit on all logs the way `item_similarity` fits its served matrix, without selection:
    fast, and a fixed model the service's tests can pin their expected answers on."""
    params = {"model": "ItemCF", "similarity": "cosine", "neighbors": neighbors}
    artifact, _ = training.fit_artifact(logs, features, params)
    return artifact


def batch_table(model: ServingModel, logs: pl.DataFrame, k: int = 10) -> pl.DataFrame:
    """Top-k per user with the served model, in the batch_recommendations table's schema."""
    users = np.unique(logs["user_id"].to_numpy())
    rows = np.searchsorted(users, logs["user_id"].to_numpy())
    return batch_frame(model, users, rows, logs["game_id"].to_numpy(), k)


def seed_home(home: Path, n_users: int = 100, seed: int = 42, max_games: int = 5, batch: bool = True) -> Seeded:
    """Write game_features, user_logs, a promoted item_similarity model and batch_recommendations under home."""
    from gamerec_assets.recsys import simulate_user_logs

    settings = StorageSettings.from_env({"GAMEREC_HOME": str(home)})
    features = snapshot_features()
    logs = simulate_user_logs(features, SimulationParams(n_users=n_users, max_games=max_games, seed=seed))
    tables = backends.table_store(settings)
    tables.write("game_features", features, primary_key=["game_id"])
    tables.write("user_logs", logs, primary_key=["user_id", "game_id"])
    registry = backends.registry(settings, MODEL_NAME)
    version = registry.publish(fit_artifact(features, logs))
    registry.promote(version, reason="seed")
    if batch:
        served = ServingModel(registry.load(version))
        tables.write("batch_recommendations", batch_table(served, logs), primary_key=["user_id", "rank"])
    return Seeded(settings, version, features, logs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--max-games", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    seeded = seed_home(args.home, args.users, args.seed, args.max_games)
    print(f"seeded {args.home}: model {seeded.version}, {seeded.features.height} games, {seeded.logs.height} plays")


if __name__ == "__main__":
    main()
