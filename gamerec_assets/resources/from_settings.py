"""The one function that turns `Settings` into Dagster resources: both code locations call `build_resources`.

No variables: SQLite + a local artifact folder under GAMEREC_HOME, the bundled RAWG snapshot, offline W&B runs.
GAMEREC_MYSQL_URL: tables on MySQL/MariaDB. GAMEREC_S3_BUCKET (+ AWS_ENDPOINT_URL): artifacts on S3. Those two
choices are made in `gamerec_assets.backends`; this module only maps what it chose to the Dagster resources.
RAWG_API_KEY: the live RAWG API (the key itself read through `dg.EnvVar` when the resource starts, never stored).
GAMEREC_CATALOG=file:<path>: the catalogue file instead of RAWG; GAMEREC_INTERACTIONS: the play logs every run reads.
"""

from typing import Any

import dagster as dg

from gamerec_assets import backends
from gamerec_assets.io_managers import ArtifactIOManager, TableIOManager
from gamerec_assets.recsys.rawg_pages import BUNDLED_SNAPSHOT
from gamerec_assets.resources.online_gate import OnlineEvaluationResource
from gamerec_assets.resources.rawg import LiveRawgClient, RawgClient, SnapshotRawgClient
from gamerec_assets.resources.sources import CatalogueFileClient, InteractionSources
from gamerec_assets.resources.storage import (
    ArtifactsResource,
    LocalArtifactsResource,
    S3ArtifactsResource,
    TablesResource,
)
from gamerec_assets.resources.tracking import ExperimentTracker
from gamerec_assets.resources.trust import EventTrustResource
from gamerec_assets.settings import RawgSettings, Settings, SourceSettings, StorageSettings, source_path


def rawg_client(settings: RawgSettings, sources: SourceSettings | None = None) -> RawgClient:
    """The catalogue file when GAMEREC_CATALOG=file:<path>; else the live API when RAWG_API_KEY is set; else the
    snapshot."""
    if sources is not None and sources.catalog.startswith("file:"):
        return CatalogueFileClient(path=source_path(sources.catalog))
    if settings.live:
        return LiveRawgClient(
            api_key=dg.EnvVar("RAWG_API_KEY"), base_url=settings.base_url, max_pages=settings.max_pages
        )
    return SnapshotRawgClient(path=str(settings.snapshot or BUNDLED_SNAPSHOT))


def artifacts_resource(settings: StorageSettings) -> ArtifactsResource:
    """The resource over the artifact store `backends.artifacts` chose (S3 or the local folder)."""
    spec = backends.artifacts(settings)
    if isinstance(spec, backends.S3ArtifactsSpec):
        return S3ArtifactsResource(
            bucket=spec.bucket,
            prefix=spec.prefix,
            endpoint_url=spec.endpoint_url,
            connect_timeout_s=spec.connect_timeout,
            read_timeout_s=spec.read_timeout,
        )
    return LocalArtifactsResource(root=str(spec.root))


def tables_resource(settings: StorageSettings) -> TablesResource:
    """The resource over the table database `backends.tables` chose (MySQL/MariaDB or SQLite)."""
    spec = backends.tables(settings)
    return TablesResource(
        url=spec.url,
        connect_timeout_s=spec.connect_timeout,
        read_timeout_s=spec.read_timeout,
        write_timeout_s=spec.write_timeout,
    )


def build_resources(settings: Settings) -> dict[str, Any]:
    """Every resource either code location may use, by key; the IO managers share the chosen stores."""
    artifacts = artifacts_resource(settings.storage)
    tables = tables_resource(settings.storage)
    return {
        "rawg": rawg_client(settings.rawg, settings.sources),
        "artifacts": artifacts,
        "tables": tables,
        "artifact_io_manager": ArtifactIOManager(artifacts=artifacts),
        "table_io_manager": TableIOManager(tables=tables),
        "tracker": ExperimentTracker(mode=settings.tracking.mode, directory=str(settings.tracking.directory)),
        "event_trust": EventTrustResource(  # poisoning guards (issue #22 item 2)
            min_events=settings.retrain.trust_min_events,
            burst_window_s=settings.retrain.burst_window_s,
            burst_new_users=settings.retrain.burst_new_users,
            game_growth=settings.retrain.trust_game_growth,
            game_floor=settings.retrain.trust_game_floor,
        ),
        "online": OnlineEvaluationResource(  # online evaluation and production_model's online rule (issue #23)
            tables=tables,
            artifacts=artifacts,
            gate=settings.online.gate,
            alpha=settings.online.alpha,
            retention_days=settings.online.retention_days,
        ),
        "sources": InteractionSources(
            catalog=settings.sources.catalog,
            interactions=settings.sources.interactions,
            steam_path=settings.sources.steam_path,
        ),
    }
