"""A real, small GAMEREC_HOME (no Dagster): the RAWG snapshot's 400 games, 200 simulated users, an ItemCF model
published and promoted in the registry, and the batch_recommendations table."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from gamerec_api.app import create_app
from gamerec_api.demo import seed_home
from gamerec_assets.settings import StorageSettings
from tests.gamerec_api.support import Home, wait_ready

N_USERS = 200


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """Shared by every read-only test; tests that publish or promote models use `fresh_home`."""
    path = tmp_path_factory.mktemp("gamerec_home")
    seeded = seed_home(path, n_users=N_USERS, seed=42)
    return Home(path, StorageSettings.from_env({"GAMEREC_HOME": str(path)}), seeded)


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
