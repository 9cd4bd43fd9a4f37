"""Bounded request headers: uvicorn's httptools protocol with a limit on the header section's size and count.

httptools (llhttp) has no limit of its own: a 30 MB header was read into memory and handed to the app. The limit
has to act while the bytes arrive, before the app sees a scope, so it lives in the protocol that
`python -m gamerec_api` gives uvicorn (`http="gamerec_api.header_limits:BoundedHttpToolsProtocol"`):

- the request target plus every header name and value count against GAMEREC_MAX_HEADER_BYTES (16 KiB by default:
  Node's default, h11's default; browsers send 1-3 KiB, cookies included), their number against GAMEREC_MAX_HEADERS
  (100, like Apache's LimitRequestFields);
- bytes received while a request's header section is still incomplete count too, so a single endless header (which
  llhttp buffers until it ends) is cut off after one read past the limit;
- past either limit the answer is `431 Request Header Fields Too Large` with a JSON detail, and the connection is
  closed (whatever follows cannot be parsed reliably).

Without httptools installed the CLI runs h11 instead, with uvicorn's own `h11_max_incomplete_event_size` set to
the same byte limit (h11 answers 400 past it). The limits are read from the settings once per worker process.
Cost: one pass over the parsed header list per request (about 2 µs for 8 headers, measured on a loaded machine)
and a comparison per read.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gamerec_assets.settings import GuardSettings, Settings

PROTOCOL = "gamerec_api.header_limits:BoundedHttpToolsProtocol"


@functools.cache
def limits() -> GuardSettings:
    return Settings.from_env().guards


class HeadersTooLarge(Exception):
    """Raised from a parser callback: llhttp stops and uvicorn reports a parse error, which becomes the 431."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HttpToolsProtocol counting the header section of each request (see the module docstring).

    The parsed head is measured once, when it is complete (one pass over the header list: cheaper than a Python
    call per header); a head that is still arriving is measured by the bytes received meanwhile."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        guards = limits()
        self.max_header_bytes = guards.max_header_bytes
        self.max_headers = guards.max_headers
        self._in_head = True  # between requests, or inside a header section that has not ended yet
        self._head_bytes = 0  # bytes received while in a header section (an upper bound of its size)
        self._refusal: str | None = None

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        headers = self.headers
        if len(headers) > self.max_headers:
            self._refusal = f"the request has more than {self.max_headers} header fields"
        elif len(self.url) + sum(len(n) + len(v) + 4 for n, v in headers) > self.max_header_bytes:
            self._refusal = f"the request line and headers exceed {self.max_header_bytes} bytes"
        if self._refusal is not None:
            raise HeadersTooLarge(self._refusal)  # before the app sees the request
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # still inside a header section that is already too big (one long header llhttp is buffering)
        if self._in_head and self._head_bytes > self.max_header_bytes and not self.transport.is_closing():
            self._refusal = f"the request line and headers exceed {self.max_header_bytes} bytes"
            self.send_400_response("")

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parse error; a 431 with the reason when the parse stopped at a header limit."""
        if self._refusal is None:
            super().send_400_response(msg)
            return
        body = json.dumps({"status_code": 431, "detail": f"request header fields too large: {self._refusal}"})
        self.logger.info("refused a request from %s: %s", self.client, self._refusal)
        content = [STATUS_LINE[431]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body.encode("ascii"),
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
