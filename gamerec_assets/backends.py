"""The one place that chooses the storage backends from `StorageSettings` and builds them.

Settings only describe; this module decides: tables on MySQL/MariaDB when GAMEREC_MYSQL_URL is set (SQLite
otherwise), artifacts on S3 when GAMEREC_S3_BUCKET is set (the local folder otherwise). The Dagster resources and IO
managers, the scale location, the API, the CLI, the benchmarks and the tests all ask here, so they all see the same
stores built the same way.

Every S3 client is built by `s3_client`, with one policy: the configured connect/read timeouts and S3_ATTEMPTS
attempts (the first and two retries) in botocore's standard retry mode, set explicitly so that neither
AWS_MAX_ATTEMPTS, ~/.aws/config nor a library default (dagster-aws's S3Resource retries 5 times) changes it. A
frozen endpoint therefore fails one call after at most `s3_call_bound` seconds, in a Dagster step, a reload or the
CLI alike.

Pure: imports neither Dagster nor Litestar; the stores, SQLAlchemy and boto3 are imported when first built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from gamerec_assets.settings import S3_CONNECT_TIMEOUT_S, S3_READ_TIMEOUT_S, StorageSettings

if TYPE_CHECKING:
    from collections.abc import Callable

    from gamerec_assets.store.artifact_store import ArtifactStore, LocalArtifactStore, S3ArtifactStore
    from gamerec_assets.store.event_store import EventStore
    from gamerec_assets.store.registry import ModelRegistry
    from gamerec_assets.store.table_store import TableStore

S3_ATTEMPTS = 3  # attempts per S3 call, the first included (README: Configuration)
S3_RETRY_MODE = "standard"
# botocore's standard mode waits rand(0, 1) * min(scale * 2**i, 20) s before retry i+1 (scale 1 s for throttling,
# 50 ms otherwise; an `x-amz-retry-after` header, which a frozen endpoint never sends, may add up to 5 s more)
_S3_BACKOFF_CAP_S = 20.0
_S3_EXPECT_CONTINUE_S = 1.0  # an upload first waits this long for "100 Continue" (botocore's fixed wait), then sends


def s3_client_config(connect_timeout: float = S3_CONNECT_TIMEOUT_S, read_timeout: float = S3_READ_TIMEOUT_S) -> Any:
    """The botocore `Config` of every S3 client: bounded connect/read timeouts and the one retry policy.

    `total_max_attempts`, not `max_attempts`: botocore reads the latter as retries after the first attempt.
    """
    from botocore.config import Config

    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": S3_ATTEMPTS, "mode": S3_RETRY_MODE},
    )


def s3_client(
    endpoint_url: str | None = None,
    connect_timeout: float = S3_CONNECT_TIMEOUT_S,
    read_timeout: float = S3_READ_TIMEOUT_S,
) -> Any:
    """The one S3 client builder. Credentials and region come from boto3's usual chain (environment, profile).

    A session per client: boto3's default session is not safe to create clients from in several threads at once
    (a reload and a Dagster step both build theirs in worker threads).
    """
    import boto3

    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url, config=s3_client_config(connect_timeout, read_timeout))


def s3_call_bound(connect_timeout: float = S3_CONNECT_TIMEOUT_S, read_timeout: float = S3_READ_TIMEOUT_S) -> float:
    """Seconds after which one S3 call against an endpoint that never answers has failed, retries included:
    every attempt may wait for the connection, for an upload's "100 Continue" and then for the answer, plus the
    backoff between attempts."""
    backoff = sum(min(2.0**i, _S3_BACKOFF_CAP_S) for i in range(S3_ATTEMPTS - 1))
    return S3_ATTEMPTS * (connect_timeout + _S3_EXPECT_CONTINUE_S + read_timeout) + backoff


# -- what the settings choose ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TablesSpec:
    """The table database: a SQLAlchemy URL (SQLite file or MySQL/MariaDB) and its network timeouts."""

    url: str
    connect_timeout: float
    read_timeout: float
    write_timeout: float

    @property
    def backend(self) -> str:
        return "mysql" if self.url.startswith("mysql") else "sqlite"

    def build(self) -> TableStore:
        from gamerec_assets.store.table_store import TableStore

        return TableStore(
            self.url,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            write_timeout=self.write_timeout,
        )


@dataclass(frozen=True)
class LocalArtifactsSpec:
    """Artifacts in a local folder with the bucket's layout: the embedded default."""

    backend: ClassVar[str] = "local"
    root: Path

    def build(self) -> LocalArtifactStore:
        from gamerec_assets.store.artifact_store import LocalArtifactStore

        return LocalArtifactStore(self.root)

    def where(self) -> str:
        return self.root.as_uri()


@dataclass(frozen=True)
class S3ArtifactsSpec:
    """Artifacts in an S3 bucket (AWS or an S3-compatible endpoint: MinIO, moto), through `s3_client`."""

    backend: ClassVar[str] = "s3"
    bucket: str
    prefix: str
    endpoint_url: str | None
    connect_timeout: float
    read_timeout: float

    def client(self) -> Any:
        return s3_client(self.endpoint_url, self.connect_timeout, self.read_timeout)

    def build(self) -> S3ArtifactStore:
        from gamerec_assets.store.artifact_store import S3ArtifactStore

        return S3ArtifactStore(self.client(), self.bucket, self.prefix)

    def call_bound(self) -> float:
        return s3_call_bound(self.connect_timeout, self.read_timeout)

    def where(self) -> str:
        path = f"s3://{self.bucket}/{self.prefix.strip('/')}".rstrip("/")
        return f"{path} at {self.endpoint_url or 'AWS'}"


ArtifactsSpec = LocalArtifactsSpec | S3ArtifactsSpec


def tables(storage: StorageSettings) -> TablesSpec:
    """The table database the settings name (GAMEREC_MYSQL_URL, else GAMEREC_HOME's SQLite file)."""
    return TablesSpec(storage.table_url, storage.db_connect_timeout, storage.db_read_timeout, storage.db_write_timeout)


def artifacts(storage: StorageSettings) -> ArtifactsSpec:
    """S3 when a bucket is set, the local folder under GAMEREC_HOME otherwise: the one place this is decided."""
    if storage.s3_bucket:
        return S3ArtifactsSpec(
            bucket=storage.s3_bucket,
            prefix=storage.s3_prefix,
            endpoint_url=storage.s3_endpoint_url,
            connect_timeout=storage.s3_connect_timeout,
            read_timeout=storage.s3_read_timeout,
        )
    return LocalArtifactsSpec(storage.artifact_root)


def describe(storage: StorageSettings) -> dict[str, str]:
    """Which backends the settings chose, for logs and status (no credentials)."""
    chosen = artifacts(storage)
    described = {"tables": tables(storage).backend, "artifacts": chosen.backend, "artifact_store": chosen.where()}
    if isinstance(chosen, S3ArtifactsSpec):
        described["s3_client"] = (
            f"{S3_ATTEMPTS} attempts ({S3_RETRY_MODE} retries), connect {chosen.connect_timeout:g} s, read "
            f"{chosen.read_timeout:g} s: a call to a frozen endpoint fails within {chosen.call_bound():g} s"
        )
    return described


# -- building ----------------------------------------------------------------------------------------------------


def table_store(storage: StorageSettings) -> TableStore:
    return tables(storage).build()


def event_store(source: StorageSettings | TableStore) -> EventStore:
    """`interaction_events` in the table database of the settings, or on a table store already open (one engine)."""
    from gamerec_assets.store.event_store import EventStore

    return EventStore(table_store(source) if isinstance(source, StorageSettings) else source)


def artifact_store(storage: StorageSettings) -> ArtifactStore:
    return artifacts(storage).build()


def registry(
    storage: StorageSettings, name: str | None = None, events_seq: Callable[[], int | None] | None = None
) -> ModelRegistry:
    """The model registry (default: `item_similarity`, the served model) on the artifact store of the settings.
    `events_seq`: the events table's newest seq, so loading refuses a version claiming events beyond it."""
    from gamerec_assets.store.registry import MODEL_NAME, ModelRegistry

    return ModelRegistry(artifact_store(storage), name or MODEL_NAME, events_seq)
