"""A fault-injecting HTTP proxy in front of moto: S3 faults on the wire, so boto3 and our code run unpatched."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlparse

from tests.support.net import ThreadedHTTPServer

INJECTED = b"<Error><Code>InternalError</Code><Message>injected fault</Message></Error>"


class FaultProxy(ThreadedHTTPServer):
    """A real HTTP proxy in front of moto that answers 500 to armed requests (method + path substring), or, while
    `frozen` is set, accepts requests and answers nothing (a hung endpoint) until it is cleared or 60 s pass.
    """

    def __init__(self, upstream: str) -> None:
        self.fail: list[tuple[str, str]] = []
        self.failed = 0
        self.frozen = threading.Event()
        self.thawed = threading.Event()
        self.upstream = urlparse(upstream)
        self.serve(_handler(self))
        self.url = f"http://127.0.0.1:{self.port}"


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    target = proxy.upstream

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if proxy.frozen.is_set():
                proxy.thawed.wait(timeout=60)
            if any(self.command == m and p in self.path for m, p in proxy.fail):
                proxy.failed += 1
                self.send_response(500)
                self.send_header("Content-Length", str(len(INJECTED)))
                self.end_headers()
                self.wfile.write(INJECTED)
                return
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    return Handler
