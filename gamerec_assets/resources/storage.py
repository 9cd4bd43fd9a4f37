"""Artifact and table resources: thin Dagster wrappers that carry a backend's description as config and ask
`gamerec_assets.backends` for the store.

Which backend runs is chosen in `gamerec_assets.backends` (mapped to these resources in
`gamerec_assets.resources.from_settings`), never here or in asset code; the S3 client of every step is the one
`backends.s3_client` builds (bounded timeouts, the documented retry policy), not dagster-aws's.
"""

from abc import ABC, abstractmethod
from functools import lru_cache
from pathlib import Path
from typing import Any

import dagster as dg

from gamerec_assets import backends
from gamerec_assets.settings import DB_CONNECT_TIMEOUT_S, DB_READ_TIMEOUT_S, DB_WRITE_TIMEOUT_S
from gamerec_assets.store import MODEL_NAME, ArtifactStore, ModelRegistry, TableStore
from gamerec_assets.store.event_store import EventStore


class ArtifactsResource(dg.ConfigurableResource, ABC):
    """Where artifacts (raw pages, model versions, aliases) live."""

    @abstractmethod
    def spec(self) -> backends.ArtifactsSpec: ...

    def store(self) -> ArtifactStore:
        return self.spec().build()

    def registry(self, name: str = MODEL_NAME) -> ModelRegistry:
        return ModelRegistry(self.store(), name)


class LocalArtifactsResource(ArtifactsResource):
    root: str

    def spec(self) -> backends.LocalArtifactsSpec:
        return backends.LocalArtifactsSpec(Path(self.root))


class S3ArtifactsResource(ArtifactsResource):
    """A bucket on AWS or an S3-compatible endpoint (MinIO, moto), with the timeouts of the settings."""

    bucket: str
    prefix: str = "gamerec"
    endpoint_url: str | None = None
    connect_timeout_s: float
    read_timeout_s: float

    def spec(self) -> backends.S3ArtifactsSpec:
        return backends.S3ArtifactsSpec(
            bucket=self.bucket,
            prefix=self.prefix,
            endpoint_url=self.endpoint_url,
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
        )

    def client(self) -> Any:
        return self.spec().client()


@lru_cache(maxsize=8)
def _table_store(spec: backends.TablesSpec) -> TableStore:
    """One store (one engine and connection pool) per database and process, shared by every step and IO manager."""
    return spec.build()


class TablesResource(dg.ConfigurableResource):
    """The table database: SQLite file (embedded default) or MySQL/MariaDB, with bounded network timeouts."""

    url: str
    connect_timeout_s: float = DB_CONNECT_TIMEOUT_S
    read_timeout_s: float = DB_READ_TIMEOUT_S
    write_timeout_s: float = DB_WRITE_TIMEOUT_S

    def spec(self) -> backends.TablesSpec:
        return backends.TablesSpec(self.url, self.connect_timeout_s, self.read_timeout_s, self.write_timeout_s)

    def store(self) -> TableStore:
        return _table_store(self.spec())

    def events(self) -> EventStore:
        """The append-only `interaction_events` table in the same database (`POST /events` writes it)."""
        return backends.event_store(self.store())
