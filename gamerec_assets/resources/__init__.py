"""Dagster resources: RAWG clients (`rawg`), artifact and table stores (`storage`), W&B tracking (`tracking`) and
interaction-log sources (`sources`). `from_settings.build_resources` picks the implementations from `Settings`.

`build_resources` is not re-exported here: it imports the IO managers, which import these resources.
"""

from gamerec_assets.resources.rawg import LiveRawgClient, RawgClient, SnapshotRawgClient
from gamerec_assets.resources.sources import InteractionSources
from gamerec_assets.resources.storage import (
    ArtifactsResource,
    LocalArtifactsResource,
    S3ArtifactsResource,
    TablesResource,
)
from gamerec_assets.resources.tracking import ExperimentTracker, wandb_table

__all__ = [
    "ArtifactsResource",
    "ExperimentTracker",
    "InteractionSources",
    "LiveRawgClient",
    "LocalArtifactsResource",
    "RawgClient",
    "S3ArtifactsResource",
    "SnapshotRawgClient",
    "TablesResource",
    "wandb_table",
]
