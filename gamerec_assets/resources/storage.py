"""Artifact and table resources: thin Dagster wrappers around `gamerec_assets.store`.

Artifacts have a local and an S3 implementation behind `ArtifactsResource`; which one runs is chosen in
`gamerec_assets.resources.from_settings`, never in asset code.
"""

from abc import ABC, abstractmethod
from functools import lru_cache

import dagster as dg
from dagster_aws.s3 import S3Resource

from gamerec_assets.store import (
    MODEL_NAME,
    ArtifactStore,
    LocalArtifactStore,
    ModelRegistry,
    S3ArtifactStore,
    TableStore,
)


class ArtifactsResource(dg.ConfigurableResource, ABC):
    """Where artifacts (raw pages, model versions, aliases) live."""

    @abstractmethod
    def store(self) -> ArtifactStore: ...

    def registry(self, name: str = MODEL_NAME) -> ModelRegistry:
        return ModelRegistry(self.store(), name)


class LocalArtifactsResource(ArtifactsResource):
    root: str

    def store(self) -> ArtifactStore:
        return LocalArtifactStore(self.root)


class S3ArtifactsResource(ArtifactsResource):
    """The endpoint (MinIO, moto) is configured on the S3Resource, as dagster-aws expects."""

    s3: S3Resource
    bucket: str
    prefix: str = "gamerec"

    def store(self) -> ArtifactStore:
        return S3ArtifactStore(self.s3.get_client(), self.bucket, self.prefix)


@lru_cache(maxsize=8)
def _table_store(url: str) -> TableStore:
    return TableStore(url)


class TablesResource(dg.ConfigurableResource):
    """The table database: SQLite file (embedded default) or MySQL/MariaDB."""

    url: str

    def store(self) -> TableStore:
        return _table_store(self.url)
