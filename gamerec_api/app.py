"""The Litestar app: `create_app()` for tests and uvicorn's factory mode, `app` for `uvicorn gamerec_api.app:app`.

Creating the app does no IO; the lifespan starts loading the production model in the background, so /healthz
answers at once and /readyz turns 200 when the first model (with metadata and histories) is in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import ValidationException
from litestar.exceptions.responses import create_exception_response
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.static_files import create_static_files_router

from gamerec_api.admin_access import AdminStatusController
from gamerec_api.api_docs import DESCRIPTION, docs_plugins
from gamerec_api.client_address import TRUSTED_PROXIES, parse_trusted
from gamerec_api.controllers import (
    AdminController,
    EventsController,
    GamesController,
    HealthController,
    PredictController,
    UsersController,
)
from gamerec_api.event_auth import EventAuth
from gamerec_api.holder import ModelHolder
from gamerec_api.http_guards import STATIC_EXCEPTION_HANDLERS, harden
from gamerec_api.ingest import EventSink
from gamerec_assets.settings import Settings, StorageSettings

STATIC = Path(__file__).parent / "static"
MAX_BODY = 64 * 1024  # every route but POST /events (controllers/events.py MAX_EVENTS_BODY)


def _validation_error(request: Request, exc: ValidationException) -> Response:
    """Litestar reports a missing body as the bare KeyError text "'data'"; say what is wrong instead."""
    if isinstance(exc.extra, list):
        for entry in exc.extra:
            if isinstance(entry, dict) and entry.get("key") == "data" and entry.get("message") == "'data'":
                entry["message"] = "the request body is empty: send a JSON object"
    return create_exception_response(request, exc)


class MetricsController(PrometheusController):
    """Prometheus text format: an operations endpoint, kept out of the JSON API's OpenAPI schema."""

    include_in_schema = False


@asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    holder: ModelHolder = app.state.holder
    await holder.start()
    try:
        yield
    finally:
        await holder.stop()


def _events_state(holder: ModelHolder, config: Settings, storage: StorageSettings) -> dict[str, object]:
    """POST /events' sink and its credentials (`event_auth`: write keys, answer tokens, rate limits)."""
    ingest = config.ingest
    return {
        "events": EventSink(holder, ingest.idempotency_ttl),
        "event_auth": EventAuth(ingest, storage.home, holder.tables),
    }


def create_app(
    settings: StorageSettings | None = None,
    reload_interval: float | None = None,
    admin_token: str | None = None,
    env: Mapping[str, str] | None = None,
    predict_cache: int | None = None,
    events_poll: float | None = None,
) -> Litestar:
    """Build the app. Unset arguments come from `Settings.from_env(env)` (env None: this process's environment).

    - settings: the storage section (GAMEREC_HOME, GAMEREC_MYSQL_URL, GAMEREC_S3_BUCKET, ...);
    - reload_interval: seconds between polls of the production alias, GAMEREC_RELOAD_INTERVAL (30; 0 = off);
    - admin_token: GAMEREC_ADMIN_TOKEN; without one, POST /admin/reload is not registered (404);
    - predict_cache: /predict answers (without liked games) kept per model, GAMEREC_PREDICT_CACHE (10000; 0 = off);
    - events_poll: seconds between reads of new events by the realtime overlay, GAMEREC_EVENTS_POLL (0.5; 0 = off).

    The kernels' thread count (GAMEREC_THREADS) is applied here, once per worker.
    """
    config = Settings.from_env(env)
    config.threads.apply()
    api = config.api
    settings = settings or config.storage
    if reload_interval is None:
        reload_interval = api.reload_interval
    admin_token = admin_token if admin_token is not None else api.admin_token
    if predict_cache is None:
        predict_cache = api.predict_cache
    if events_poll is None:
        events_poll = api.events_poll
    index_html = (STATIC / "index.html").read_bytes()

    @get("/", include_in_schema=False, media_type=MediaType.HTML)
    async def index() -> Response[bytes]:
        return Response(index_html, media_type=MediaType.HTML)

    handlers: list = [
        index,
        create_static_files_router(
            path="/static", directories=[STATIC], include_in_schema=False, exception_handlers=STATIC_EXCEPTION_HANDLERS
        ),
        PredictController,
        EventsController,
        GamesController,
        UsersController,
        HealthController,
        MetricsController,
    ]
    if admin_token:
        handlers += [AdminController, AdminStatusController]
    prometheus = PrometheusConfig(
        app_name="gamerec_api",
        prefix="gamerec_http",
        group_path=True,
        exclude_unhandled_paths=True,
        exclude=["^/metrics", "^/static/"],
    )
    openapi = OpenAPIConfig(
        title="gamerec_api",
        version="1.0.0",
        description=DESCRIPTION,
        path="/schema",
        render_plugins=docs_plugins(),
        components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
    )
    holder = ModelHolder(settings, reload_interval, predict_cache, events_poll=events_poll)
    built = Litestar(
        route_handlers=handlers,
        state=State({"holder": holder, "admin_token": admin_token or "", **_events_state(holder, config, settings)}),
        lifespan=[_lifespan],
        middleware=[prometheus.middleware],
        openapi_config=openapi,
        request_max_body_size=MAX_BODY,
        exception_handlers={ValidationException: _validation_error},
    )
    built.state[TRUSTED_PROXIES] = parse_trusted(config.guards.trusted_proxies)  # who may forward a client address
    return harden(built)  # security headers, HEAD on GET routes, NUL-byte paths: before routing (http_guards)


app = create_app()
