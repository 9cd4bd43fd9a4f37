"""A local RAWG: the real `/api/games` results bundled with the project, paginated, with injected faults."""

from __future__ import annotations

import gzip
import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.support.net import ThreadedHTTPServer


class RawgReplayServer(ThreadedHTTPServer):
    """Replays the bundled snapshot's games page by page.

    `faults` is consumed one per request: None (serve normally), ("status", code, headers), ("echo", code: the
    request URL, key included, echoed in the error body), ("slow", seconds),
    ("truncate",), ("no_results",). `requests` records every query string received.
    """

    def __init__(self) -> None:
        from gamerec_assets.recsys.rawg_pages import BUNDLED_SNAPSHOT

        bundle = json.loads(gzip.decompress(BUNDLED_SNAPSHOT.read_bytes()))
        self.games = [g for page in bundle["pages"] for g in page["results"]]
        self.faults: list = []
        self.requests: list[dict[str, list[str]]] = []
        self.duplicate_across_pages = False
        self.serve(_handler(self))
        self.url = f"http://127.0.0.1:{self.port}/api"

    def page(self, query: dict[str, list[str]], fault: Any) -> bytes:
        """The JSON body of one page of /api/games for `query` (with the `no_results` fault applied)."""
        page = int(query.get("page", ["1"])[0])
        size = int(query.get("page_size", ["20"])[0])
        start = (page - 1) * size
        results = self.games[start : start + size]
        if self.duplicate_across_pages and page > 1:
            results = [self.games[0], *results[1:]]
        base = f"http://127.0.0.1:{self.port}/api/games"
        params = {k: v[0] for k, v in query.items() if k != "page"}
        nxt = f"{base}?{urlencode({**params, 'page': page + 1})}" if start + size < len(self.games) else None
        body = {"count": len(self.games), "next": nxt, "previous": None, "results": results}
        if fault and fault[0] == "no_results":
            body.pop("results")
        return json.dumps(body).encode()


def _handler(server: RawgReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None, length: int | None = None):
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) if length is None else length))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            server.requests.append(query)
            fault = server.faults.pop(0) if server.faults else None
            if parts.path != "/api/games":
                return self._send(404, b'{"detail": "Not found."}')
            if "key" not in query:
                return self._send(401, b'{"error": "The key parameter is not provided"}')
            if fault and fault[0] == "status":
                return self._send(fault[1], b'{"detail": "injected"}', fault[2] if len(fault) > 2 else None)
            if fault and fault[0] == "echo":  # as RAWG does: the request, key included, in an error body
                detail = {"detail": f"bad request {self.path}", "url": f"http://127.0.0.1:{server.port}{self.path}"}
                return self._send(fault[1], json.dumps(detail).encode())
            if fault and fault[0] == "slow":
                time.sleep(fault[1])
            data = server.page(query, fault)
            if fault and fault[0] == "truncate":
                return self._send(200, data[: len(data) // 2])
            return self._send(200, data)

    return Handler
