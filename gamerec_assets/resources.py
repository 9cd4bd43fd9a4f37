"""Dagster resources: thin wrappers around store/ and the RAWG clients.

RAWG follows the HN client of Dagster's project_fully_featured: one interface (`RawgClient`) with a snapshot
implementation (the default, offline) and a live one (issue #5). Artifacts have a local and an S3 implementation
behind `ArtifactsResource`. Which implementation runs is decided in definitions.py, never in asset code.
"""

import gzip
import json
from abc import ABC, abstractmethod
from functools import lru_cache
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from gamerec_assets.rawg_api import DEFAULT_BASE_URL, RawgApi, RawgApiError, RawgQuery
from gamerec_assets.recsys.rawg_pages import BUNDLED_SNAPSHOT, RawgPageError
from gamerec_assets.store import (
    ArtifactStore,
    LocalArtifactStore,
    ModelRegistry,
    S3ArtifactStore,
    TableStore,
)


class RawgClient(dg.ConfigurableResource, ABC):
    """Source of RAWG `/api/games` pages."""

    @abstractmethod
    def fetch_pages(self, log: Any = None) -> list[dict[str, Any]]:
        """Pages as RAWG returned them (envelope with `results`), in crawl order."""

    @abstractmethod
    def describe(self) -> str:
        """Where the pages come from, for metadata (never contains a key)."""


class SnapshotRawgClient(RawgClient):
    """Replays a bundled crawl: `{"pages": [...]}` gzip JSON, real RAWG responses."""

    path: str = str(BUNDLED_SNAPSHOT)
    max_pages: int = 0  # 0: all pages

    def describe(self) -> str:
        return f"snapshot {self.path}"

    def fetch_pages(self, log: Any = None) -> list[dict[str, Any]]:
        path = Path(self.path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise RawgPageError(f"snapshot {path}: cannot read: {exc.strerror or exc}") from exc
        if not raw:
            raise RawgPageError(f"snapshot {path}: file is empty")
        try:
            data = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RawgPageError(f"snapshot {path}: not valid (gzip) JSON: {exc}") from exc
        pages = data.get("pages") if isinstance(data, dict) and "pages" in data else [data]
        if not isinstance(pages, list) or not pages:
            raise RawgPageError(f"snapshot {path}: 'pages' must be a non-empty list")
        pages = pages[: self.max_pages] if self.max_pages else pages
        if log is not None:
            log.info(f"read {len(pages)} RAWG pages from {path}")
        return pages


class LiveRawgClient(RawgClient):
    """The RAWG API itself. The key comes from RAWG_API_KEY through dg.EnvVar and never leaves the request."""

    api_key: str
    base_url: str = DEFAULT_BASE_URL
    ordering: str = "-added"
    genres: str = ""
    tags: str = ""
    platforms: str = ""
    dates: str = ""
    page_size: int = 40
    max_pages: int = 5
    max_games: int = 0
    timeout_s: float = 10.0
    max_attempts: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0

    def query(self) -> RawgQuery:
        return RawgQuery(
            self.ordering or None,
            self.genres or None,
            self.tags or None,
            self.platforms or None,
            self.dates or None,
            self.page_size,
        )

    def describe(self) -> str:
        filters = ", ".join(f"{k}={v}" for k, v in self.query().params().items())
        return f"RAWG API {self.base_url}/games ({filters}; max_pages={self.max_pages}, max_games={self.max_games})"

    def fetch_pages(self, log: Any = None) -> list[dict[str, Any]]:
        api = RawgApi(
            self.api_key,
            self.base_url,
            self.timeout_s,
            self.max_attempts,
            self.backoff_initial_s,
            self.backoff_max_s,
            log=(log.info if log is not None else None),
        )
        try:
            return list(api.iter_pages(self.query(), self.max_pages, self.max_games))
        except (RawgApiError, ValueError) as exc:
            raise RawgPageError(str(exc)) from exc
        finally:
            api.close()


class ArtifactsResource(dg.ConfigurableResource, ABC):
    """Where artifacts (raw pages, model versions, aliases) live."""

    @abstractmethod
    def store(self) -> ArtifactStore: ...

    def registry(self, name: str = "item_similarity") -> ModelRegistry:
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
