"""The one place that assembles assets, checks, schedules and resources, and picks backends from the environment.

No variables: SQLite + a local artifact folder under GAMEREC_HOME (the embedded default).
GAMEREC_MYSQL_URL: tables on MySQL/MariaDB.  GAMEREC_S3_BUCKET (+ AWS_ENDPOINT_URL): artifacts on S3.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from gamerec_assets.assets import features, ingestion, interactions, modeling, serving
from gamerec_assets.io_managers import ArtifactIOManager, TableIOManager
from gamerec_assets.rawg_api import DEFAULT_BASE_URL
from gamerec_assets.resources import (
    BUNDLED_SNAPSHOT,
    ArtifactsResource,
    LiveRawgClient,
    LocalArtifactsResource,
    RawgClient,
    S3ArtifactsResource,
    SnapshotRawgClient,
    TablesResource,
)
from gamerec_assets.schedules import daily_refresh, refresh_all
from gamerec_assets.store.settings import StorageSettings
from gamerec_assets.tracking import ExperimentTracker

# Steps run in parallel processes forked from a server that has already imported the project: without the
# preload every step pays the full import of dagster + polars + scipy (about 5 s each on this machine).
EXECUTOR = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["gamerec_assets.definitions"]}}}
)
ASSET_MODULES = [ingestion, features, interactions, modeling, serving]
log = logging.getLogger("gamerec")


def rawg_client(env: Mapping[str, str]) -> RawgClient:
    """Live API when RAWG_API_KEY is set (the key read through dg.EnvVar at run time); the snapshot otherwise."""
    if env.get("RAWG_API_KEY"):
        return LiveRawgClient(
            api_key=dg.EnvVar("RAWG_API_KEY"),
            base_url=env.get("RAWG_BASE_URL") or DEFAULT_BASE_URL,
            max_pages=int(env.get("GAMEREC_RAWG_MAX_PAGES", "5")),
        )
    return SnapshotRawgClient(path=env.get("GAMEREC_RAWG_SNAPSHOT") or str(BUNDLED_SNAPSHOT))


def build_resources(settings: StorageSettings, env: Mapping[str, str]) -> dict[str, Any]:
    artifacts: ArtifactsResource
    if settings.s3_bucket:
        artifacts = S3ArtifactsResource(
            s3=S3Resource(endpoint_url=settings.s3_endpoint_url),
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
        )
    else:
        artifacts = LocalArtifactsResource(root=str(settings.artifact_root))
    tables = TablesResource(url=settings.table_url)
    return {
        "rawg": rawg_client(env),
        "artifacts": artifacts,
        "tables": tables,
        "artifact_io_manager": ArtifactIOManager(artifacts=artifacts),
        "table_io_manager": TableIOManager(tables=tables),
        "tracker": ExperimentTracker(directory=str(settings.home)),
    }


def build_definitions(env: Mapping[str, str] | None = None) -> dg.Definitions:
    env = dict(os.environ if env is None else env)
    settings = StorageSettings.from_env(env)
    log.info("gamerec backends: tables=%s artifacts=%s", settings.table_backend, settings.artifact_backend)
    return dg.Definitions(
        assets=dg.load_assets_from_modules(ASSET_MODULES),
        asset_checks=dg.load_asset_checks_from_modules(ASSET_MODULES),
        jobs=[refresh_all],
        schedules=[daily_refresh],
        resources=build_resources(settings, env),
        executor=EXECUTOR,
    )


defs = build_definitions()
