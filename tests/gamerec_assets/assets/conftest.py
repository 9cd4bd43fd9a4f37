"""Inputs for calling each asset alone, as a function: the upstream values come from calling the upstream assets
directly too, so every test here runs one asset body with no Dagster run, IO manager or instance around it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from gamerec_assets.assets.features import GameFeaturesConfig, game_features
from gamerec_assets.assets.ingestion import RawGamesConfig, raw_games
from gamerec_assets.assets.interactions import UserLogsConfig, user_logs
from gamerec_assets.io_managers import RawPages
from gamerec_assets.resources.rawg import SnapshotRawgClient
from gamerec_assets.resources.sources import InteractionSources
from gamerec_assets.resources.storage import LocalArtifactsResource, TablesResource
from gamerec_assets.resources.tracking import ExperimentTracker
from gamerec_assets.resources.trust import EventTrustResource


@pytest.fixture(scope="module")
def pages() -> RawPages:
    out = raw_games(dg.build_asset_context(), RawGamesConfig(crawl_date="2026-01-02"), SnapshotRawgClient())
    return out.value


@pytest.fixture(scope="module")
def features(pages: RawPages) -> pl.DataFrame:
    return game_features(dg.build_asset_context(), GameFeaturesConfig(), pages).value


@pytest.fixture(scope="module")
def no_events(tmp_path_factory: pytest.TempPathFactory) -> TablesResource:
    """A table database without an `interaction_events` table: user_logs is its base source alone."""
    return TablesResource(url=f"sqlite:///{tmp_path_factory.mktemp('tables') / 'gamerec.db'}")


@pytest.fixture(scope="module")
def logs(features: pl.DataFrame, no_events: TablesResource) -> pl.DataFrame:
    output, _check = user_logs(
        dg.build_asset_context(),
        UserLogsConfig(n_users=80, seed=3),
        features,
        InteractionSources(),
        no_events,
        LocalArtifactsResource(root="/nonexistent/gamerec-artifacts"),  # never read: no events, no yardstick
        EventTrustResource(),
    )
    return output.value


@pytest.fixture
def tracker(tmp_path: Path) -> ExperimentTracker:
    return ExperimentTracker(mode="offline", directory=str(tmp_path))


@pytest.fixture
def artifacts(tmp_path: Path) -> LocalArtifactsResource:
    return LocalArtifactsResource(root=str(tmp_path / "artifacts"))
