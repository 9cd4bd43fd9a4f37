"""The admin bearer token as a Litestar guard, with a limit on wrong guesses, and the operators' status view.

Without a limit a client can try tokens as fast as the server answers (about 16,000 in 5 s on one core).
`require_admin_token` counts failed attempts per client address in a sliding window: after `MAX_FAILURES` wrong
tokens within `WINDOW` seconds the address gets 429 with `Retry-After` for every admin request, the right token
included (otherwise the lockout would still answer "this one is right"), until its oldest failure leaves the
window. So a guesser gets about 10 tries a minute per address. Each failure is logged with the address and the
count, never with the presented token. Requests without an Authorization header are 401 but not counted: they
guess nothing.

The counts live in the app's state, per worker process (with `--workers N` a client gets up to N times the
budget), bounded to `MAX_CLIENTS` addresses. The address is `client_address.client_address`: the TCP peer, or the
one a proxy listed in GAMEREC_TRUSTED_PROXIES forwarded (X-Forwarded-For from anyone else is ignored, so rotating
the header neither buys guesses nor lifts a lockout); behind a proxy not listed every client shares its budget.

`GET /admin/status` is the operators' view: the served version, and a refused reload (which version, when, why)
while the server keeps serving the previous one (readiness stays `ready`: it is still serving).
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Controller, get
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.handlers.base import BaseRouteHandler

from gamerec_api.client_address import client_address, trusted_proxies_of
from gamerec_api.readiness import not_ready_status
from gamerec_api.schemas import AdminStatus

log = logging.getLogger("gamerec_api.admin")

MAX_FAILURES = 10
WINDOW = 60.0
MAX_CLIENTS = 10_000
AUTH_REQUIRED = "a valid 'Authorization: Bearer <GAMEREC_ADMIN_TOKEN>' is required"


class FailedAuthLimiter:
    """Failure timestamps per client in a sliding window; `clock` is injectable for tests."""

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_clients = max_clients
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is not None:
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if not failures:
                del self._failures[client]
                return None
        return failures

    def retry_after(self, client: str) -> float:
        """Seconds until the client may try again; 0 when it may try now."""
        now = self.clock()
        failures = self._recent(client, now)
        if failures is None or len(failures) < self.max_failures:
            return 0.0
        return failures[-self.max_failures] + self.window - now

    def failed(self, client: str) -> int:
        """Record a failure; returns the client's failures within the window."""
        now = self.clock()
        failures = self._recent(client, now)
        if failures is None:
            if len(self._failures) >= self.max_clients:
                self._prune(now)
            failures = self._failures[client] = deque(maxlen=self.max_failures)
        failures.append(now)
        return len(failures)

    def _prune(self, now: float) -> None:
        """Drop clients whose failures all expired; if still full, the oldest entries (a flood of addresses)."""
        for client in list(self._failures):
            self._recent(client, now)
        while len(self._failures) >= self.max_clients:
            del self._failures[next(iter(self._failures))]


def limiter_of(state: State) -> FailedAuthLimiter:
    """The app's limiter, created on first use (one per app, so test apps do not share counts)."""
    limiter: FailedAuthLimiter | None = state.get("admin_auth_limiter")
    if limiter is None:
        limiter = state.admin_auth_limiter = FailedAuthLimiter()
    return limiter


def require_admin_token(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Guard: 429 while the client is locked out, 401 without the right bearer token (counted if one was sent)."""
    state = connection.app.state
    limiter = limiter_of(state)
    client = client_address(connection, trusted_proxies_of(state))
    wait = limiter.retry_after(client)
    if wait > 0:
        raise TooManyRequestsException(
            detail="too many failed admin attempts from this address: try again later",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    token: str = state.admin_token
    header = connection.headers.get("authorization")
    if header is not None:
        scheme, _, given = header.partition(" ")
        if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return
        count = limiter.failed(client)
        log.warning("admin: wrong bearer token from %s (%d in the last %ds)", client, count, int(limiter.window))
    raise NotAuthorizedException(detail=AUTH_REQUIRED, headers={"WWW-Authenticate": "Bearer"})


ADMIN_ERRORS = [NotAuthorizedException, TooManyRequestsException]


class RefusedReload(msgspec.Struct):
    """The last reload refused while a model was served: the version (None: the production alias was unreadable
    or gone), when (RFC 3339 UTC) and why."""

    version: str | None
    at: str
    reason: str


class ExperimentServed(msgspec.Struct):
    """The experiment this worker routes: its record's name, mode, versions and traffic, and this worker's counts
    since it began (answers and server errors per arm: what its guardrail compares)."""

    name: str
    mode: str
    challenger: str
    production: str
    traffic: float
    answers: dict[str, int]
    errors: dict[str, int]


class AdminStatusReport(AdminStatus):
    """GET /admin/status: the readiness status, the full detail and, while serving, the last refused reload
    (cleared by the next successful one) and the experiment this worker routes."""

    refused_reload: RefusedReload | None = None
    experiment: ExperimentServed | None = None


def _experiment(holder: Any) -> ExperimentServed | None:
    exp = holder.experiment
    if exp is None:
        return None
    r, g = exp.record, exp.guard
    current = holder.state
    return ExperimentServed(
        name=r.name,
        mode=r.mode,
        challenger=exp.challenger.version,
        production=current.version if current is not None else r.production,
        traffic=r.traffic,
        answers={"production": g.production.answers, "treated": g.treated.answers},
        errors={"production": g.production.errors, "treated": g.treated.errors},
    )


class AdminStatusController(Controller):
    """GET /admin/status behind the same bearer token; registered with the AdminController."""

    path = "/admin"
    tags = ("admin",)
    guards = (require_admin_token,)

    @get(
        "/status",
        summary="Load status with the full detail (bearer token)",
        raises=ADMIN_ERRORS,
        security=[{"bearer": []}],
    )
    async def status(self, state: State) -> AdminStatusReport:
        holder = state.holder
        current = holder.state
        refused = holder.refused
        if current is None:
            return AdminStatusReport(status=not_ready_status(holder.detail), model_version=None, detail=holder.detail)
        if refused is None:
            return AdminStatusReport(
                status="ready", model_version=current.version, detail=holder.detail, experiment=_experiment(holder)
            )
        detail = (
            f"serving {current.version}; the reload of {refused.version or 'the production alias'} was refused at "
            f"{refused.at}: {refused.reason}"
        )
        return AdminStatusReport(
            status="ready",
            model_version=current.version,
            detail=detail,
            refused_reload=RefusedReload(version=refused.version, at=refused.at, reason=refused.reason),
            experiment=_experiment(holder),
        )
