"""Artifact and table resources: thin Dagster wrappers around `gamerec_assets.store`.

Artifacts have a local and an S3 implementation behind `ArtifactsResource`; which one runs is chosen in
`gamerec_assets.resources.from_settings`, never in asset code.
"""

from abc import ABC, abstractmethod
from functools import lru_cache
from typing import Any

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
from gamerec_assets.store.artifact_store import s3_client_config
from gamerec_assets.store.event_store import EventStore


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
    """The endpoint (MinIO, moto) is configured on the S3Resource, as dagster-aws expects.

    dagster-aws's client has botocore's default 60 s timeouts and no way to bound them, so the store gets a client
    built from the same S3Resource fields with bounded connect/read timeouts (`store.s3_client_config`).
    """

    s3: S3Resource
    bucket: str
    prefix: str = "gamerec"
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0

    def client(self) -> Any:
        import boto3

        s3 = self.s3
        session = boto3.session.Session(profile_name=s3.profile_name) if s3.profile_name else boto3.session.Session()
        return session.client(
            "s3",
            region_name=s3.region_name,
            endpoint_url=s3.endpoint_url,
            use_ssl=s3.use_ssl,
            verify=s3.verify,
            aws_access_key_id=s3.aws_access_key_id,
            aws_secret_access_key=s3.aws_secret_access_key,
            aws_session_token=s3.aws_session_token,
            config=s3_client_config(self.connect_timeout_s, self.read_timeout_s, s3.max_attempts),
        )

    def store(self) -> ArtifactStore:
        return S3ArtifactStore(self.client(), self.bucket, self.prefix)


@lru_cache(maxsize=8)
def _table_store(url: str, connect_timeout: float, read_timeout: float, write_timeout: float) -> TableStore:
    return TableStore(url, connect_timeout=connect_timeout, read_timeout=read_timeout, write_timeout=write_timeout)


class TablesResource(dg.ConfigurableResource):
    """The table database: SQLite file (embedded default) or MySQL/MariaDB, with bounded network timeouts."""

    url: str
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 300.0
    write_timeout_s: float = 300.0

    def store(self) -> TableStore:
        return _table_store(self.url, self.connect_timeout_s, self.read_timeout_s, self.write_timeout_s)

    def events(self) -> EventStore:
        """The append-only `interaction_events` table in the same database (`POST /events` writes it)."""
        return EventStore(self.store())
