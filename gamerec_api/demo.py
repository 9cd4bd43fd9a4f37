"""Seed a GAMEREC_HOME without Dagster: what the pipeline's assets produce, from the bundled RAWG snapshot.

For the service's tests and benchmark, and for trying the API without materialising the asset graph:

    python -m gamerec_api.demo --home /tmp/gamerec --users 100
    python -m gamerec_api.demo --home /tmp/gamerec --catalog data/games.csv --interactions data/interactions.csv

Games come from the bundled snapshot (as `GAMEREC_CATALOG=rawg`) or a catalogue file (as `file:<path>`); players are
simulated (as `GAMEREC_INTERACTIONS=simulated`) or read from an interaction file (as `file:<path>`); each with
the pipeline's own reader. Either way the rows carry their `catalog` and `source` and
the model's manifest records them in its `data` block, as `user_logs` and `item_similarity` do, so the service
can say where its players come from.
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
from gamerec_assets.recsys.catalogue_file import catalogue_pages, read_catalogue
from gamerec_assets.recsys.interaction_file import read_interactions
from gamerec_assets.recsys.provenance import provenance
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


def file_features(path: Path) -> pl.DataFrame:
    """A catalogue file's game_features, as `raw_games` + `game_features` make them from GAMEREC_CATALOG=file:."""
    features, _ = clean_games(parse_pages(catalogue_pages(read_catalogue(path)), f"file:{path}"))
    return features


def fit_artifact(features: pl.DataFrame, logs: pl.DataFrame, neighbors: int = 100) -> ModelArtifact:
    """Plain cosine ItemCF fit on all logs the way `item_similarity` fits its served matrix, without selection:
    fast, and a fixed model the service's tests can pin their expected answers on. Logs with `catalog` / `source`
    columns (the `user_logs` asset's) get the manifest's `data` block, like `training.train` records it."""
    params = {"model": "ItemCF", "similarity": "cosine", "neighbors": neighbors}
    artifact, _ = training.fit_artifact(logs, features, params)
    if "source" in logs.columns:
        artifact.manifest["data"] = provenance(logs, features)
    return artifact


def with_sources(logs: pl.DataFrame, interactions: str, catalog: str = "rawg") -> pl.DataFrame:
    """The provenance columns `user_logs` adds to every row (its catalogue's label and its source spec)."""
    return logs.with_columns(pl.lit(catalog, pl.Utf8).alias("catalog"), pl.lit(interactions, pl.Utf8).alias("source"))


def batch_table(model: ServingModel, logs: pl.DataFrame, k: int = 10) -> pl.DataFrame:
    """Top-k per user with the served model, in the batch_recommendations table's schema."""
    users = np.unique(logs["user_id"].to_numpy())
    rows = np.searchsorted(users, logs["user_id"].to_numpy())
    return batch_frame(model, users, rows, logs["game_id"].to_numpy(), k)


def seed_home(
    home: Path,
    n_users: int = 100,
    seed: int = 42,
    max_games: int = 5,
    batch: bool = True,
    interactions: Path | None = None,
    catalog: Path | None = None,
) -> Seeded:
    """Write game_features, user_logs, a promoted item_similarity model and batch_recommendations under home.

    `interactions` / `catalog`: an interaction file (`recsys.interaction_file`) instead of simulated players, a
    catalogue file (`recsys.catalogue_file`) instead of the snapshot; the manifest then records `file:<path>`, as
    a run with GAMEREC_INTERACTIONS / GAMEREC_CATALOG=file:<path> does."""
    from gamerec_assets.recsys import simulate_user_logs

    settings = StorageSettings.from_env({"GAMEREC_HOME": str(home)})
    features = snapshot_features() if catalog is None else file_features(catalog)
    catalog_label = "rawg" if catalog is None else f"file:{catalog}"
    if interactions is None:
        params = SimulationParams(n_users=n_users, max_games=max_games, seed=seed)
        logs = with_sources(simulate_user_logs(features, params), "simulated", catalog_label)
    else:
        logs = with_sources(read_interactions(interactions)[0], f"file:{interactions}", catalog_label)
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
    parser.add_argument("--interactions", type=Path, help="an interaction file instead of simulated players")
    parser.add_argument("--catalog", type=Path, help="a catalogue file instead of the bundled RAWG snapshot")
    args = parser.parse_args()
    seeded = seed_home(
        args.home, args.users, args.seed, args.max_games, interactions=args.interactions, catalog=args.catalog
    )
    print(f"seeded {args.home}: model {seeded.version}, {seeded.features.height} games, {seeded.logs.height} plays")


if __name__ == "__main__":
    main()
