"""RAWG as a Dagster resource: `RawgClient` with a snapshot implementation (the offline default) and a live one.

The live one drives `RawgApi`, the httpx client: paging, timeouts, retries with backoff, validation, key hygiene.
Retries (tenacity) cover 429, 5xx, transport errors, timeouts and truncated bodies, with exponential backoff and
jitter, honouring `Retry-After`. After the budget the error names the URL (without the key), the status and an
excerpt of the body. The key travels only as a query parameter of the request: it is stripped from every URL
that is logged, raised or stored (RAWG echoes it in `next` links). Parsing pages into rows is the core's
(`gamerec_assets.recsys.rawg_pages`); which client runs is chosen in `gamerec_assets.resources.from_settings`.
"""

from __future__ import annotations

import gzip
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import dagster as dg
import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from gamerec_assets.recsys.rawg_pages import BUNDLED_SNAPSHOT, RawgPageError, validate_page
from gamerec_assets.settings import RAWG_DEFAULT_BASE_URL

DEFAULT_BASE_URL = RAWG_DEFAULT_BASE_URL
RETRY_STATUS = {429, 500, 502, 503, 504}


class RawgApiError(RuntimeError):
    """The API could not be read (after retries, or a non-retryable status)."""


class _Retryable(Exception):
    def __init__(self, message: str, status: int | None = None, body: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.body = body
        self.retry_after = retry_after


def redact(url: str) -> str:
    """The URL without its `key` query parameter."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() != "key"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def key_forms(key: str) -> list[str]:
    """Every spelling of `key` that can come back from a server: raw, percent-encoded (as httpx sends it, and
    fully, with upper- and lower-case hex), form-encoded (`+` for a space) and JSON-escaped; longest first."""
    encoded = {
        key,
        quote(key, safe=""),
        quote(key, safe="/"),
        quote_plus(key, safe=""),
        str(httpx.QueryParams({"k": key}))[2:],
        json.dumps(key)[1:-1],
        json.dumps(key)[1:-1].replace("/", "\\/"),
    }
    lower = {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), form) for form in encoded}
    return sorted((f for f in encoded | lower if f), key=len, reverse=True)


def redact_page(page: dict[str, Any]) -> dict[str, Any]:
    return {**page, **{k: redact(page[k]) for k in ("next", "previous") if isinstance(page.get(k), str)}}


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


@dataclass(frozen=True)
class RawgQuery:
    """`/api/games` filters: ordering, genres, tags, platforms, dates and the page size."""

    ordering: str | None = "-added"
    genres: str | None = None
    tags: str | None = None
    platforms: str | None = None
    dates: str | None = None
    page_size: int = 40

    def params(self) -> dict[str, str]:
        if not 1 <= self.page_size <= 40:
            raise ValueError(f"page_size must be in 1..40 (RAWG's limit), got {self.page_size}")
        raw = {
            "ordering": self.ordering,
            "genres": self.genres,
            "tags": self.tags,
            "platforms": self.platforms,
            "dates": self.dates,
            "page_size": str(self.page_size),
        }
        return {k: v for k, v in raw.items() if v}


class RawgApi:
    """The HTTP client behind `LiveRawgClient` (plain Python, so it is tested without Dagster)."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        max_attempts: int = 5,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if not api_key:
            raise RawgApiError("RAWG_API_KEY is empty")
        self._key = api_key
        self._key_forms = key_forms(api_key)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.log = log or (lambda message: None)
        self._client = httpx.Client(timeout=timeout, headers={"User-Agent": "gamerec (+https://rawg.io)"})

    def close(self) -> None:
        self._client.close()

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self.backoff_max)
        return wait_exponential_jitter(initial=self.backoff_initial, max=self.backoff_max)(state)

    @staticmethod
    def _merge(url: str, params: dict[str, str]) -> tuple[str, dict[str, str]]:
        """httpx replaces a URL's query with `params`: merge them (a `next` link carries page and filters)."""
        parsed = httpx.URL(url)
        return str(parsed.copy_with(query=None)), {**dict(parsed.params), **params}

    def _scrub(self, text: str) -> str:
        """RAWG echoes the key inside bodies (`next` links, error details): never let it into an error or a log,
        in any of the encodings a URL or a JSON body can carry it."""
        for form in self._key_forms:
            text = text.replace(form, "***")
        return text

    def _display(self, url: str, params: dict[str, str]) -> str:
        base, merged = self._merge(url, params)
        return redact(str(httpx.URL(base, params=merged)))

    def _get_once(self, url: str, params: dict[str, str]) -> dict[str, Any]:
        shown = self._display(url, params)
        url, params = self._merge(url, params)
        try:
            response = self._client.get(url, params={**params, "key": self._key})
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timeout after {self.timeout}s") from exc
        except httpx.TransportError as exc:
            raise _Retryable(f"connection error: {type(exc).__name__}") from exc
        body = response.text
        if response.status_code in RETRY_STATUS:
            raise _Retryable(
                f"HTTP {response.status_code}",
                response.status_code,
                body,
                _retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code >= 400:
            raise RawgApiError(f"GET {shown} failed: HTTP {response.status_code}: {self._scrub(body)[:200]!r}")
        try:
            return json.loads(body)
        except json.JSONDecodeError as exc:
            raise _Retryable(f"invalid JSON ({exc.msg} at char {exc.pos})", response.status_code, body) from exc

    def get_page(self, url: str, params: dict[str, str]) -> dict[str, Any]:
        shown = self._display(url, params)
        retrying = Retrying(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            reraise=True,
            before_sleep=lambda s: self.log(
                self._scrub(f"retrying {shown} (attempt {s.attempt_number} failed: {s.outcome.exception()})")  # type: ignore[union-attr]
            ),
        )
        try:
            return retrying(self._get_once, url, params)
        except _Retryable as exc:
            status = f"HTTP {exc.status}" if exc.status else "no response"
            raise RawgApiError(
                f"GET {shown} failed after {self.max_attempts} attempts: {exc} ({status}); "
                f"body: {self._scrub(exc.body)[:200]!r}"
            ) from exc

    def iter_pages(self, query: RawgQuery, max_pages: int = 5, max_games: int = 0) -> Iterator[dict[str, Any]]:
        """Follow `next` links from `/games`; each page validated, redacted and yielded as fetched."""
        url: str | None = f"{self.base_url}/games"
        params = query.params()
        pages = games = 0
        while url and (not max_pages or pages < max_pages) and (not max_games or games < max_games):
            page = self.get_page(url, params)
            validate_page(page, f"RAWG page {pages + 1} ({redact(url)})")
            pages += 1
            games += len(page["results"])
            self.log(f"page {pages}: {len(page['results'])} games ({games} so far)")
            yield redact_page(page)
            nxt = page.get("next")
            if nxt is not None and not isinstance(nxt, str):
                raise RawgPageError(f"RAWG page {pages}: 'next' is {type(nxt).__name__}, not a URL")
            url, params = (redact(nxt), {}) if nxt else (None, {})


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
