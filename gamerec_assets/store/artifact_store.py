"""Immutable artifact storage with one key layout on a local folder and on S3: `<prefix>/<asset>/<version>/<file>`.

Objects are write-once (`put`); only small pointer objects (aliases, `_latest.json`) are replaced, and a
replacement is atomic on both backends (os.replace locally, a single PUT on S3).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Protocol


class ArtifactStoreError(RuntimeError):
    """The artifact backend refused or failed an operation."""


class ArtifactNotFound(ArtifactStoreError, KeyError):
    """No object under that key."""


class ArtifactStore(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Write a new object; fails if the key exists (artifacts are immutable)."""

    def replace(self, key: str, data: bytes) -> None:
        """Atomically write or overwrite a small pointer object."""

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[str]:
        """Keys below `prefix`, sorted."""

    def describe(self) -> str:
        """Where the objects live, for logs and metadata (`file:///...`, `s3://bucket/prefix`)."""


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ArtifactStoreError(f"invalid artifact key {key!r}")
    return key


class LocalArtifactStore:
    """A folder with the same layout as the S3 bucket: the embedded default."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def _write_tmp(self, path: Path, data: bytes) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return tmp

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._write_tmp(path, data)
        try:
            os.link(tmp, path)  # fails if the key exists: write-once without a race
        except FileExistsError as exc:
            raise ArtifactStoreError(f"artifact {key!r} already exists and is immutable") from exc
        finally:
            os.unlink(tmp)

    def replace(self, key: str, data: bytes) -> None:
        path = self._path(key)
        os.replace(self._write_tmp(path, data), path)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactNotFound(f"no artifact {key!r} in {self.describe()}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )

    def describe(self) -> str:
        return self.root.as_uri()


class S3ArtifactStore:
    """S3 or an S3-compatible store (MinIO, moto) through a boto3 client."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, op: str, key: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, op)(Bucket=self.bucket, Key=self._key(key), **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ArtifactNotFound(f"no artifact {key!r} in {self.describe()}") from exc
            raise ArtifactStoreError(f"S3 {op} {self.describe()}/{key} failed: {code} {exc}") from exc
        except BotoCoreError as exc:
            raise ArtifactStoreError(f"S3 {op} {self.describe()}/{key} failed: {exc}") from exc

    def put(self, key: str, data: bytes) -> None:
        if self.exists(key):
            raise ArtifactStoreError(f"artifact {key!r} already exists and is immutable")
        self._call("put_object", key, Body=data)

    def replace(self, key: str, data: bytes) -> None:
        self._call("put_object", key, Body=data)

    def get(self, key: str) -> bytes:
        return self._call("get_object", key)["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            self._call("head_object", key)
        except ArtifactNotFound:
            return False
        return True

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix) if prefix else self.prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        keys: list[str] = []
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full + "/" if full else ""):
                keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        except Exception as exc:
            raise ArtifactStoreError(f"S3 list {self.describe()}/{prefix} failed: {exc}") from exc
        return sorted(keys)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
