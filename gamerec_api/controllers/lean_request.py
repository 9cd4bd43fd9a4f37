"""A Request whose body() reads the ASGI messages directly, at about a third of the stock cost (/predict's hot path).

Litestar's `Request.body()` goes through an async generator over `stream()` and parses the headers for the
announced content length; for a 30-byte JSON body that was a quarter of an in-process /predict (~26 of ~120 µs
here). This subclass keeps the same contract: the route's `request_max_body_size` gives 413 as soon as the bytes
read exceed it, a disconnect before the end is an error, and the body is cached on the request and in the
connection state, so `json()` and the `data` kwarg work unchanged. It is set per controller with `request_class=`.
"""

from __future__ import annotations

import math
from typing import Any

from litestar import Request
from litestar.exceptions import InternalServerException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.types import Empty


class LeanBodyRequest(Request[Any, Any, Any]):
    __slots__ = ()

    async def body(self) -> bytes:
        body = self._body
        if body is Empty:
            state = self._connection_state
            body = state.body
            if body is Empty:
                limit = self.route_handler.resolve_request_max_body_size() or math.inf
                chunks: list[bytes] = []
                size = 0
                while True:
                    message = await self.receive()
                    if message["type"] == "http.disconnect":
                        raise InternalServerException("client disconnected prematurely")
                    chunk = message.get("body", b"")
                    if chunk:
                        size += len(chunk)
                        if size > limit:
                            raise RequestEntityTooLarge
                        chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
                self.is_connected = False
                body = state.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self._body = body
        return body  # type: ignore[return-value]
