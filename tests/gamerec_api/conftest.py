"""A real, small GAMEREC_HOME (no Dagster): the RAWG snapshot's 400 games, 200 simulated users, an ItemCF model
published and promoted in the registry, and the batch_recommendations table. `file_home`: the same from an
interaction file (string ids, one of the longest allowed), its manifest recording `file:<path>` as the source."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from gamerec_api.app import create_app
from gamerec_api.demo import seed_home, snapshot_features
from gamerec_assets.recsys import SimulationParams, simulate_user_logs
from gamerec_assets.settings import StorageSettings
from tests.gamerec_api.support import Home, wait_ready

N_USERS = 200
LONG_ID = "player" + "0123456789abcdef" * 7 + "0123456END"  # 128 characters (the longest allowed), no break


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """Shared by every read-only test; tests that publish or promote models use `fresh_home`."""
    path = tmp_path_factory.mktemp("gamerec_home")
    seeded = seed_home(path, n_users=N_USERS, seed=42)
    return Home(path, StorageSettings.from_env({"GAMEREC_HOME": str(path)}), seeded)


@pytest.fixture(scope="session")
def file_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """Own data, both files in the documented formats: the snapshot's games as a catalogue file (the site's own
    catalogue, not RAWG's) and players as an interaction file (`player-N` ids, and LONG_ID)."""
    assert len(LONG_ID) == 128
    path = tmp_path_factory.mktemp("gamerec_file_home")
    (path / "data").mkdir()
    games = snapshot_features()
    catalogue = path / "data" / "games.csv"
    lists = [pl.col(c).list.join("|") for c in ("genres", "tags")]
    games.select("game_id", "name", *lists, "released", "rating", "playtime", "background_image").write_csv(catalogue)
    logs = simulate_user_logs(games, SimulationParams(n_users=60, max_games=5, seed=3))
    ids = pl.col("user_id")
    named = pl.when(ids == 1).then(pl.lit(LONG_ID)).otherwise(pl.format("player-{}", ids)).alias("user_id")
    interactions = path / "data" / "interactions.csv"
    logs.select(named, "game_id", pl.lit("play").alias("event")).write_csv(interactions)
    home = path / "home"
    seeded = seed_home(home, interactions=interactions, catalog=catalogue)
    return Home(home, StorageSettings.from_env({"GAMEREC_HOME": str(home)}), seeded)


@pytest.fixture
def fresh_home(home: Home, tmp_path: Path) -> Home:
    """A private copy of the session home, for tests that change the registry."""
    path = tmp_path / "home"
    shutil.copytree(home.path, path)
    return Home(path, StorageSettings.from_env({"GAMEREC_HOME": str(path)}), home.seeded)


@pytest.fixture(scope="session")
def app(home: Home) -> Litestar:
    return create_app(home.settings, reload_interval=0, env={})


@pytest.fixture(scope="session")
def client(app: Litestar) -> Iterator[TestClient]:
    with TestClient(app) as c:
        wait_ready(c)
        yield c
