"""Immutable artifact storage with one key layout on a local folder and on S3: `<prefix>/<asset>/<version>/<file>`.

Objects are write-once (`put`, refused by the backend itself when the key exists: a hard link locally,
`If-None-Match: *` on S3); only small pointer objects (aliases, `_latest.json`) are replaced, atomically on both
backends (os.replace locally, a single PUT on S3). `update` is a compare-and-swap read-modify-write for pointers
that several writers move (the production alias): a lock file locally, conditional PUTs (`If-Match` on the ETag
read) on S3, so two concurrent updates never lose one another's change.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

CAS_ATTEMPTS = 16  # conditional-write retries of one update; each lost race means another writer succeeded


class ArtifactStoreError(RuntimeError):
    """The artifact backend refused or failed an operation."""


class ArtifactNotFound(ArtifactStoreError, KeyError):
    """No object under that key."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ArtifactConflict(ArtifactStoreError):
    """A conditional write lost its race (the object changed since it was read, or already exists)."""


Change = Callable[[bytes | None], bytes | None]


class ArtifactStore(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Write a new object; fails if the key exists (artifacts are immutable)."""

    def replace(self, key: str, data: bytes) -> None:
        """Atomically write or overwrite a small pointer object."""

    def update(self, key: str, change: Change) -> bytes | None:
        """Compare-and-swap: `change(current or None)` returns the new bytes (None: leave the object as it is).

        `change` may run more than once (after a lost race) and must not have side effects; returns what was
        written, or the current bytes when `change` returned None.
        """

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int:
        """Bytes stored under `key` (ArtifactNotFound when absent), without reading them."""

    def list(self, prefix: str) -> list[str]:
        """Keys below `prefix`, sorted."""

    def delete(self, key: str) -> None:
        """Remove an object (nothing when absent): only the retention of forgotten players' data deletes."""

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
        try:
            tmp = self._write_tmp(path, data)
            try:
                os.link(tmp, path)  # fails if the key exists: write-once without a race
            finally:
                os.unlink(tmp)
        except FileExistsError as exc:
            raise ArtifactStoreError(f"artifact {key!r} already exists and is immutable") from exc
        except OSError as exc:
            raise ArtifactStoreError(f"cannot write artifact {key!r} in {self.describe()}: {exc}") from exc

    def replace(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            os.replace(self._write_tmp(path, data), path)
        except OSError as exc:
            raise ArtifactStoreError(f"cannot write artifact {key!r} in {self.describe()}: {exc}") from exc

    def update(self, key: str, change: Change) -> bytes | None:
        """Read-modify-write under an exclusive flock on `.lock-<name>` beside the object, then an atomic rename.

        Readers never take the lock: they see the old or the new object. Every writer of the key goes through here.
        """
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f".lock-{path.name}", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                try:
                    current: bytes | None = path.read_bytes()
                except FileNotFoundError:
                    current = None
                new = change(current)
                if new is None:
                    return current
                os.replace(self._write_tmp(path, new), path)
                return new
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactNotFound(f"no artifact {key!r} in {self.describe()}") from exc
        except OSError as exc:  # a key that crosses a file (NotADirectoryError), a name too long, permissions
            raise ArtifactStoreError(
                f"cannot read artifact {key!r} in {self.describe()}: {exc.strerror or exc}"
            ) from exc

    def exists(self, key: str) -> bool:
        try:
            return self._path(key).is_file()
        except OSError:
            return False

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise ArtifactNotFound(f"no artifact {key!r} in {self.describe()}") from exc
        except OSError as exc:
            raise ArtifactStoreError(f"cannot stat artifact {key!r} in {self.describe()}: {exc}") from exc

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith((".tmp-", ".lock-"))
        )

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise ArtifactStoreError(f"cannot delete artifact {key!r} in {self.describe()}: {exc}") from exc

    def describe(self) -> str:
        return self.root.as_uri()


class S3ArtifactStore:
    """S3 or an S3-compatible store (MinIO, moto) through a boto3 client (built by `gamerec_assets.backends`, with
    bounded timeouts and the one retry policy)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def endpoint(self) -> str:
        return str(getattr(getattr(self.client, "meta", None), "endpoint_url", None) or "the default S3 endpoint")

    def _call(self, op: str, key: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, op)(Bucket=self.bucket, Key=self._key(key), **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ArtifactNotFound(f"no artifact {key!r} in {self.describe()}") from exc
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status == 412:
                raise ArtifactConflict(
                    f"S3 {op} {self.describe()}/{key}: {code or status} (changed concurrently)"
                ) from exc
            raise ArtifactStoreError(
                f"S3 {op} {self.describe()}/{key} at {self.endpoint()} failed: {code} {exc}"
            ) from exc
        except BotoCoreError as exc:
            raise ArtifactStoreError(
                f"S3 {op} {self.describe()}/{key} at {self.endpoint()} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def put(self, key: str, data: bytes) -> None:
        try:
            self._call("put_object", key, Body=data, IfNoneMatch="*")  # the server refuses an existing key
        except ArtifactConflict as exc:
            # botocore retries a PUT whose answer was lost; the retry then finds the object this call wrote
            etag = str(self._call("head_object", key).get("ETag", "")).strip('"')
            if etag == hashlib.md5(data, usedforsecurity=False).hexdigest():
                return
            raise ArtifactStoreError(f"artifact {key!r} already exists and is immutable") from exc

    def replace(self, key: str, data: bytes) -> None:
        self._call("put_object", key, Body=data)

    def update(self, key: str, change: Change) -> bytes | None:
        """Read with the ETag, then PUT `If-Match: <etag>` (`If-None-Match: *` when absent); retry on a lost race."""
        written: bytes | None = None
        for attempt in range(CAS_ATTEMPTS):
            try:
                obj = self._call("get_object", key)
                current: bytes | None = obj["Body"].read()
                condition = {"IfMatch": obj["ETag"]}
            except ArtifactNotFound:
                current, condition = None, {"IfNoneMatch": "*"}
            if written is not None and current == written:  # our PUT landed, its answer was lost and retried
                return current
            new = change(current)
            if new is None:
                return current
            try:
                written = new
                self._call("put_object", key, Body=new, **condition)
                return new
            except (ArtifactConflict, ArtifactNotFound):  # changed, created or deleted since the read
                time.sleep(random.uniform(0, 0.02 * (attempt + 1)))
        raise ArtifactConflict(
            f"S3 update of {self.describe()}/{key} lost the race {CAS_ATTEMPTS} times to concurrent writers"
        )

    def get(self, key: str) -> bytes:
        return self._call("get_object", key)["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            self._call("head_object", key)
        except ArtifactNotFound:
            return False
        return True

    def size(self, key: str) -> int:
        return int(self._call("head_object", key)["ContentLength"])

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix) if prefix else self.prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        keys: list[str] = []
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full + "/" if full else ""):
                keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        except Exception as exc:
            raise ArtifactStoreError(f"S3 list {self.describe()}/{prefix} at {self.endpoint()} failed: {exc}") from exc
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._call("delete_object", key)  # S3 answers 204 for an absent key too

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
