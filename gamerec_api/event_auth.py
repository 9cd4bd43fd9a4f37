"""Who may post events, for what, and how fast: the credentials and limits of `POST /events`.

A request carries `Authorization: Bearer <credential>`, one of:
- a **write key** (`gamerec keys create NAME`, for servers): any event of any user. Keys live hashed in the
  `write_keys` table (`gamerec_assets/store/write_keys.py`); each worker caches {SHA-256: name} for
  GAMEREC_WRITE_KEYS_TTL s (5), so a revoked key stops working on every worker within that time, and a key it does
  not know makes it re-read the table (at most once a second) so a new key works at once;
- an **answer token** (the `event_token` of a /predict, /games/{id}/similar or /users/{id}/recommendations answer,
  for browsers: `answer_tokens.py`): click, impression and play events of that answer's user for that answer's
  games only; anything else is a 403 naming the first event that is not.
Without a valid credential the answer is a 401 that says how to get one, unless GAMEREC_EVENTS_OPEN=true (a local
demo: every request is then accepted as the credential `open`).

Token buckets per credential name (GAMEREC_EVENTS_KEY_RATE events/s, burst GAMEREC_EVENTS_KEY_BURST) and per user id
(GAMEREC_EVENTS_USER_RATE, GAMEREC_EVENTS_USER_BURST), in memory per worker: a request that would overdraw one is a
429 with `Retry-After` (whole seconds) and takes nothing from any bucket. Events are counted by credential in
`gamerec_events_by_key_total{key, result}`, refused requests in `gamerec_events_refused_total{key, status}`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import time
from collections import Counter as Tally
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
from litestar.connection import ASGIConnection
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ServiceUnavailableException,
)
from prometheus_client import Counter

from gamerec_api.answer_tokens import TOKEN_EVENT_TYPES, AnswerTokens, BadToken, Claims
from gamerec_api.schemas import EventIn
from gamerec_assets.settings import IngestSettings
from gamerec_assets.store.write_keys import KEY_PREFIX, WriteKeys, digest

log = logging.getLogger("gamerec_api")

EVENTS_BY_KEY = Counter(
    "gamerec_events_by_key", "Feedback events posted, by credential (write key name, answer-token, open) and result",
    ["key", "result"],
)  # fmt: skip
REFUSED = Counter(
    "gamerec_events_refused", "POST /events requests refused, by credential and status (401, 403, 429)",
    ["key", "status"],
)  # fmt: skip
ANSWER_TOKEN = "answer-token"  # the metrics' and rate limits' name of every answer-token credential
OPEN = "open"
HOW_TO = (
    "send `Authorization: Bearer <credential>`: a write key (an operator creates one with `gamerec keys create "
    "NAME`), or the `event_token` of a /predict, /games/{id}/similar or /users/{id}/recommendations answer (browsers: "
    "click, impression and play events of that answer). GAMEREC_EVENTS_OPEN=true accepts events without one (local "
    "demos only)"
)
MISS_RELOAD_S = 1.0  # an unknown key re-reads the table at most this often per worker


class RateLimited(HTTPException):
    status_code = 429
    detail = "too many events"


@dataclass(frozen=True)
class Credential:
    kind: Literal["key", "answer", "open"]
    name: str  # the write key's name, ANSWER_TOKEN or OPEN: metrics and rate limits
    scope: str  # what an Idempotency-Key is scoped by: the key, the answer, or the open door
    claims: Claims | None = None


def _unauthorized(why: str) -> NotAuthorizedException:
    REFUSED.labels("none", "401").inc()
    return NotAuthorizedException(
        detail=f"{why}: {HOW_TO}", headers={"WWW-Authenticate": 'Bearer realm="gamerec events"'}
    )


class TokenBuckets:
    """Named token buckets (`rate` per second up to `burst`), at most `max_names` kept (least recently used
    dropped: a dropped name starts again with a full bucket)."""

    def __init__(self, rate: float, burst: int, max_names: int = 100_000) -> None:
        self.rate, self.burst, self.max_names = rate, float(burst), max_names
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, when)

    def plan(self, costs: Mapping[str, int], now: float) -> tuple[float, dict[str, float]]:
        """(seconds until every named bucket holds its cost: 0.0 now, inf for a cost above the burst; the levels
        after taking the costs, for `commit`). One pass, one dict probe per name."""
        burst, rate, buckets = self.burst, self.rate, self._buckets
        after: dict[str, float] = {}
        worst = 0.0
        for name, cost in costs.items():
            if cost > burst:
                return math.inf, {}
            tokens, at = buckets.get(name, (burst, now))
            level = min(burst, tokens + (now - at) * rate) - cost
            if level < 0 and -level / rate > worst:
                worst = -level / rate
            after[name] = level
        return worst, after

    def commit(self, after: Mapping[str, float], now: float) -> None:
        buckets = self._buckets
        for name, level in after.items():
            buckets.pop(name, None)  # re-inserted last: the dict's order is least recently used first
            buckets[name] = (level, now)
        while len(buckets) > self.max_names:
            buckets.pop(next(iter(buckets)))


class EventAuth:
    """The credentials and limits of one app (`app.state.event_auth`)."""

    def __init__(self, settings: IngestSettings, home: Path, tables: Any) -> None:
        """`tables`: a callable returning the table store (opened lazily, in a worker thread)."""
        self.settings = settings
        self.tokens = AnswerTokens(settings.event_secret, home, settings.token_ttl)
        self._tables = tables
        self._store: WriteKeys | None = None
        self._keys: dict[str, str] = {}
        self._loaded_at = -math.inf  # monotonic time of the last successful read
        self._tried_at = -math.inf
        self._ever_loaded = False
        self._lock: asyncio.Lock | None = None
        self.key_buckets = TokenBuckets(settings.key_rate, settings.key_burst, max_names=10_000)
        self.user_buckets = TokenBuckets(settings.user_rate, settings.user_burst)

    # -- write keys ----------------------------------------------------------------------------------------------

    def _read_keys(self) -> dict[str, str]:
        if self._store is None:
            self._store = WriteKeys(self._tables())
        return self._store.active()

    async def _refresh(self, force: bool) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            now = time.monotonic()
            if not force and now - self._loaded_at < self.settings.keys_ttl:
                return  # another request refreshed meanwhile
            if force and now - self._tried_at < MISS_RELOAD_S:
                return
            self._tried_at = now
            try:
                self._keys = await anyio.to_thread.run_sync(self._read_keys)
            except Exception as exc:  # the table store is down: keep what we have, or say so
                log.warning("POST /events: reading the write keys failed: %s", exc)
                if not self._ever_loaded:
                    raise ServiceUnavailableException(
                        detail="the write keys cannot be read (the table store is unavailable): retry later"
                    ) from exc
                # keep the keys it has (the events cannot be stored meanwhile anyway); try again in a second
                self._loaded_at = time.monotonic() - self.settings.keys_ttl + MISS_RELOAD_S
                return
            self._loaded_at, self._ever_loaded = time.monotonic(), True

    async def key_name(self, key: str) -> str | None:
        """The name of write key `key`, or None when it is unknown or revoked."""
        if time.monotonic() - self._loaded_at >= self.settings.keys_ttl:
            await self._refresh(force=False)
        wanted = digest(key)
        name = self._lookup(wanted)
        if name is None:
            await self._refresh(force=True)  # perhaps created since the last read
            name = self._lookup(wanted)
        return name

    def _lookup(self, wanted: str) -> str | None:
        """Compared with every active key's SHA-256 in constant time, without stopping at a match (keys are few:
        ~0.2 µs each), so the time taken says nothing about which key, or how much of one, matched."""
        found = None
        for stored, name in self._keys.items():
            if hmac.compare_digest(stored, wanted):
                found = name
        return found

    # -- the three checks ----------------------------------------------------------------------------------------

    async def authenticate(self, header: str | None) -> Credential:
        """The request's credential, or a 401 saying how to get one."""
        if not header:
            if self.settings.open:
                return Credential("open", OPEN, OPEN)
            raise _unauthorized("POST /events needs a credential")
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise _unauthorized("the Authorization header must be `Bearer <credential>`")
        if value.startswith(KEY_PREFIX):  # a write key (answer tokens never touch the key table)
            name = await self.key_name(value)
            if name is None:
                raise _unauthorized("the credential is an unknown or revoked write key")
            return Credential("key", name, f"key:{name}")
        try:
            claims = self.tokens.check(value)
        except BadToken as exc:
            raise _unauthorized(f"the credential is no write key and an invalid answer token ({exc})") from None
        return Credential("answer", ANSWER_TOKEN, f"answer:{claims.request_id}", claims)

    def authorize(self, credential: Credential, events: list[EventIn]) -> None:
        """Answer tokens: only click/impression/play events of the answer's user for its games (a 403 naming the
        first event that is not); events without a request_id get the answer's."""
        claims = credential.claims
        if claims is None:
            return
        for i, e in enumerate(events):
            user = str(e.user_id)
            why = None
            if e.type not in TOKEN_EVENT_TYPES:
                why = f"an answer token allows click, impression and play events, not {e.type!r} (use a write key)"
            elif not claims.user_id:
                why = "the answer was given without a user_id (ask /games/{id}/similar?user_id=...)"
            elif user != claims.user_id:
                why = f"the answer token is for user {claims.user_id!r}, not {user!r}"
            elif e.game_id not in claims.games:
                why = f"game {e.game_id} is not in answer {claims.request_id}"
            elif e.request_id is not None and e.request_id != claims.request_id:
                why = f"request_id {e.request_id!r} is not the token's answer {claims.request_id!r}"
            if why is not None:
                REFUSED.labels(credential.name, "403").inc()
                raise PermissionDeniedException(detail=f"events[{i}]: {why}")
            if e.request_id is None:
                e.request_id = claims.request_id

    def limit(self, credential: Credential, events: list[EventIn], now: float | None = None) -> None:
        """Take the request's events from the credential's and each user's bucket, or 429 with Retry-After."""
        now = time.monotonic() if now is None else now
        key_wait, key_after = self.key_buckets.plan({credential.name: len(events)}, now)
        user_wait, user_after = self.user_buckets.plan(Tally(str(e.user_id) for e in events), now)
        wait = max(key_wait, user_wait)
        if wait > 0:
            REFUSED.labels(credential.name, "429").inc()
            if math.isinf(wait):
                detail = (
                    f"a request may carry at most {int(self.user_buckets.burst)} events of one user "
                    f"(GAMEREC_EVENTS_USER_BURST): split it"
                )
                wait = self.user_buckets.burst / self.user_buckets.rate
            else:
                detail = (
                    f"too many events: {credential.name!r} may post {self.settings.key_rate:g} events/s and each "
                    f"user {self.settings.user_rate:g} events/s; retry after the Retry-After seconds (nothing of "
                    "this request was stored)"
                )
            raise RateLimited(detail=detail, headers={"Retry-After": str(max(1, math.ceil(wait)))})
        self.key_buckets.commit(key_after, now)
        self.user_buckets.commit(user_after, now)


async def events_guard(connection: ASGIConnection, _: Any) -> None:
    """Litestar guard of POST /events: runs before the body is read, so a request without a valid credential is a
    401 whatever it carries. Leaves the credential in `connection.state.credential`."""
    auth: EventAuth = connection.app.state.event_auth
    connection.state.credential = await auth.authenticate(connection.headers.get("authorization"))
