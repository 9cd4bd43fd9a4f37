"""LeanBodyRequest keeps Litestar's body contract: same bytes as the stock Request for any chunking, 413 past the
route's limit (also when the excess arrives in a later chunk), an error on a disconnect, one read per request."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from litestar import Litestar, Request, post

from gamerec_api.controllers.lean_request import LeanBodyRequest

LIMIT = 100


class Item(msgspec.Struct):
    name: str
    tags: list[str] = []


def make_app() -> Litestar:
    @post("/lean", request_class=LeanBodyRequest, request_max_body_size=LIMIT, status_code=200)
    async def lean(data: Item, request: Request) -> dict[str, Any]:
        # body() again returns the cached bytes (the receive channel is exhausted by now).
        return {"name": data.name, "tags": data.tags, "raw": (await request.body()).decode()}

    @post("/stock", request_max_body_size=LIMIT, status_code=200)
    async def stock(data: Item, request: Request) -> dict[str, Any]:
        return {"name": data.name, "tags": data.tags, "raw": (await request.body()).decode()}

    return Litestar([lean, stock])


def call(app: Litestar, path: str, messages: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """Drive the ASGI app with the given receive messages (then a disconnect), return status and JSON body."""

    async def run() -> tuple[int, dict[str, Any]]:
        queue = list(messages)

        async def receive() -> dict[str, Any]:
            return queue.pop(0) if queue else {"type": "http.disconnect"}

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"test"), (b"content-type", b"application/json")],
            "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 1),
            "state": {},
        }
        await app(scope, receive, send)  # type: ignore[arg-type]
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return status, msgspec.json.decode(body)

    return asyncio.run(run())


def chunks(body: bytes, sizes: list[int]) -> list[dict[str, Any]]:
    out, pos = [], 0
    for size in sizes:
        out.append({"type": "http.request", "body": body[pos : pos + size], "more_body": True})
        pos += size
    out.append({"type": "http.request", "body": body[pos:], "more_body": False})
    return out


BODY = b'{"name": "Portal 2", "tags": ["puzzle", "co-op"]}'


@pytest.mark.parametrize("sizes", [[], [1], [10, 0, 7], [len(BODY)]])
def test_same_body_as_the_stock_request_for_any_chunking(sizes: list[int]) -> None:
    app = make_app()
    lean = call(app, "/lean", chunks(BODY, sizes))
    stock = call(app, "/stock", chunks(BODY, sizes))
    assert lean == stock == (200, {"name": "Portal 2", "tags": ["puzzle", "co-op"], "raw": BODY.decode()})


def test_limit_is_enforced_on_the_bytes_read_across_chunks() -> None:
    app = make_app()
    body = b'{"name": "' + b"x" * 120 + b'"}'
    for sizes in ([], [60], [40, 40]):
        for path in ("/lean", "/stock"):
            status, payload = call(app, path, chunks(body, sizes))
            assert status == 413, (path, sizes, payload)
    exactly = b'{"name": "' + b"x" * (LIMIT - 12) + b'"}'
    assert len(exactly) == LIMIT
    assert call(app, "/lean", chunks(exactly, [50]))[0] == 200


def test_a_disconnect_before_the_end_is_an_error_not_a_partial_body() -> None:
    app = make_app()
    status, _ = call(app, "/lean", chunks(BODY, [10])[:-1])  # more_body=True, then the client is gone
    assert status == 500
    assert call(app, "/stock", chunks(BODY, [10])[:-1])[0] == 500


def test_empty_and_malformed_bodies_are_400_as_with_the_stock_request() -> None:
    app = make_app()
    for body in (b"", b'{"name": 1}', b'{"name": "a",'):
        lean = call(app, "/lean", chunks(body, []))
        stock = call(app, "/stock", chunks(body, []))
        assert lean[0] == stock[0] == 400, (body, lean, stock)
