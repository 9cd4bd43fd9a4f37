"""HTTP hardening that has to see every request, including the ones no route matches.

Litestar's `middleware=` runs after routing, so it never sees a 404/405 from the router; `harden(app)` wraps
`app.asgi_handler` instead (the router inside Litestar's exception handling), the one place every HTTP
request and response passes. It is one plain ASGI callable rather than a middleware stack, because /predict
runs in tens of microseconds: per request it costs a method comparison, a substring test and one extra `send`
hop that appends precomputed header tuples.

What it does:
- security headers on every response: `X-Content-Type-Options: nosniff` (no MIME sniffing of JSON or
  scripts), a Content-Security-Policy the page works with (scripts, styles, fetches and frames from this origin
  only; images also from any https host, since covers come from RAWG's CDN `https://media.rawg.io`, and `data:`),
  `X-Frame-Options: DENY` with `frame-ancestors 'none'` (no clickjacking), `Referrer-Policy: no-referrer` (game
  ids and searches in URLs do not travel to RAWG's CDN);
- `HEAD` on any GET route: answered as the GET with the same status and headers (Content-Length included) and
  no body, as RFC 9110 asks. Litestar answers 405 unless each handler is declared with
  `@route(..., http_method=[GET, HEAD])` (`@head` refuses handlers that return a body): that would touch every
  GET decorator, including Litestar's own /schema and /metrics routes, and add a HEAD operation per path to the
  OpenAPI document. `/static/` is left alone: the static files router answers HEAD itself without reading the
  file;
- a path with a NUL byte (`%00`) is a 400 before it reaches the file system (where `os.stat` raises ValueError).

`STATIC_EXCEPTION_HANDLERS` (for `create_static_files_router(exception_handlers=...)`) turns every failed static
look-up into a plain 404: Litestar's messages name the resolved absolute path on the server (404, and 401 for an
unreadable file), and odd names (too long: ENAMETOOLONG) are a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Litestar, MediaType, Request, Response
from litestar.exceptions import InternalServerException, NotAuthorizedException, NotFoundException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("gamerec_api")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
_NUL_BODY = b'{"status_code":400,"detail":"the request path contains a NUL byte (%00)"}'


class HardenedHandler:
    """Wraps Litestar's ASGI handler (see the module docstring); `Litestar.__call__` gives it HTTP and websocket
    scopes (lifespan is handled before), websockets pass through untouched."""

    __slots__ = ("app", "headers")

    def __init__(self, app: ASGIApp, headers: tuple[tuple[bytes, bytes], ...] = SECURITY_HEADERS) -> None:
        self.app = app
        self.headers = list(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers

        async def send_hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}  # type: ignore[typeddict-item]
            await send(message)

        path = scope["path"]
        if "\x00" in path:
            await _reply(send_hardened, 400, _NUL_BODY)
            return
        if scope["method"] == "HEAD" and not path.startswith("/static/"):
            await self.app({**scope, "method": "GET"}, receive, _without_body(send_hardened))  # type: ignore[typeddict-item]
            return
        await self.app(scope, receive, send_hardened)


def _without_body(send: Send) -> Send:
    """Pass the GET response's start (status, headers, Content-Length) and empty body messages."""

    async def send_head(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}  # type: ignore[typeddict-item]
        await send(message)

    return send_head


async def _reply(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def harden(app: Litestar) -> Litestar:
    """Put `HardenedHandler` in front of the app's router; returns the same app (call once, after creating it)."""
    app.asgi_handler = HardenedHandler(app.asgi_handler)
    return app


def _static_not_found(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """Every failed static look-up is the same plain 404: no server path, no Python error text (unexpected ones
    are logged, with the cause)."""
    if not isinstance(exc, NotFoundException):
        log.info("static file %r not served: %r (cause %r)", request.url.path, exc, exc.__cause__)
    return Response({"status_code": 404, "detail": "Not Found"}, status_code=404, media_type=MediaType.JSON)


STATIC_EXCEPTION_HANDLERS: dict[Any, Any] = {
    NotFoundException: _static_not_found,
    NotAuthorizedException: _static_not_found,
    InternalServerException: _static_not_found,
    OSError: _static_not_found,
    ValueError: _static_not_found,
}
