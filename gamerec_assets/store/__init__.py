"""Storage without Dagster: tables (SQLite | MySQL), artifacts (local folder | S3) and the model registry.

The assets (through IO managers and resources) and the API share these classes, so both see one layout. Which
backends run is configuration: `gamerec_assets.backends` chooses and builds them from the settings.
"""

from gamerec_assets.store.artifact_store import (
    ArtifactNotFound,
    ArtifactStore,
    ArtifactStoreError,
    LocalArtifactStore,
    S3ArtifactStore,
)
from gamerec_assets.store.registry import MODEL_NAME, ModelRegistry, RegistryError
from gamerec_assets.store.table_store import TableStore, TableStoreError

__all__ = [
    "MODEL_NAME",
    "ArtifactNotFound",
    "ArtifactStore",
    "ArtifactStoreError",
    "LocalArtifactStore",
    "ModelRegistry",
    "RegistryError",
    "S3ArtifactStore",
    "TableStore",
    "TableStoreError",
]
