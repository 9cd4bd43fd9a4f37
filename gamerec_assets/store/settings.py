"""The one place that turns environment variables into storage backends."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gamerec_assets.store.artifact_store import ArtifactStore, LocalArtifactStore, S3ArtifactStore
from gamerec_assets.store.table_store import TableStore

REPO_ROOT = Path(__file__).resolve().parents[2]


def gamerec_home() -> Path:
    """Local state: embedded database, artifacts, Dagster home, W&B offline runs (default `.gamerec/`)."""
    return Path(os.environ.get("GAMEREC_HOME") or REPO_ROOT / ".gamerec").resolve()


@dataclass(frozen=True)
class StorageSettings:
    table_url: str
    artifact_root: Path
    home: Path
    s3_bucket: str | None = None
    s3_prefix: str = "gamerec"
    s3_endpoint_url: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> StorageSettings:
        env = dict(os.environ if env is None else env)
        home = Path(env.get("GAMEREC_HOME") or gamerec_home()).resolve()
        return cls(
            table_url=env.get("GAMEREC_MYSQL_URL") or f"sqlite:///{home / 'gamerec.db'}",
            artifact_root=home / "artifacts",
            home=home,
            s3_bucket=env.get("GAMEREC_S3_BUCKET") or None,
            s3_prefix=env.get("GAMEREC_S3_PREFIX", "gamerec"),
            s3_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        )

    @property
    def table_backend(self) -> str:
        return "mysql" if self.table_url.startswith("mysql") else "sqlite"

    @property
    def artifact_backend(self) -> str:
        return "s3" if self.s3_bucket else "local"

    def describe(self) -> dict[str, str]:
        return {"tables": self.table_backend, "artifacts": self.artifact_backend}

    def table_store(self) -> TableStore:
        return TableStore(self.table_url)

    def s3_client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_endpoint_url)

    def artifact_store(self) -> ArtifactStore:
        if self.s3_bucket:
            return S3ArtifactStore(self.s3_client(), self.s3_bucket, self.s3_prefix)
        return LocalArtifactStore(self.artifact_root)
