"""One fixture set for the running services: MariaDB, moto's S3 server, a tmp GAMEREC_HOME.

MariaDB and S3 tests fail (never skip) when CI=true and the service is missing.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

MYSQL_HOST = os.environ.get("GAMEREC_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("GAMEREC_TEST_MYSQL_PORT", "3306"))
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(what: str, why: object) -> None:
    message = f"{what} is not available: {why}"
    if IN_CI:
        pytest.fail(message + " (CI=true: this test must not be skipped)")
    pytest.skip(message)


def shared_data_dir() -> Path | None:
    """The real public data (`shared/data`): GAMEREC_SHARED_DATA, else beside this checkout, else beside the
    checkout this one was cloned from (a local `origin`: a clean clone made in a temporary folder)."""
    root = Path(__file__).resolve().parents[1]
    candidates = [Path(p) for p in [os.environ.get("GAMEREC_SHARED_DATA", "")] if p]
    candidates.append(root.parent / "shared" / "data")
    origin = subprocess.run(
        ["git", "-C", str(root), "config", "--get", "remote.origin.url"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if origin and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / "shared" / "data")
    return next((c for c in candidates if c.is_dir()), None)


@pytest.fixture(scope="session")
def steam_log() -> Path:
    """The Kaggle steam-200k log; a failure, not a skip, under CI=true when it cannot be found."""
    data = shared_data_dir()
    path = data / "steam-200k" / "steam-200k.csv.gz" if data else None
    if path is None or not path.exists():
        unavailable("the steam-200k log (shared/data, or GAMEREC_SHARED_DATA)", path or "no shared/data folder found")
    assert path is not None
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[dict[str, object]]:
    """A fresh database on the local MariaDB for this test session, dropped at the end."""
    import pymysql

    try:
        conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", password="", connect_timeout=5)
    except pymysql.MySQLError as exc:
        unavailable(f"MariaDB at {MYSQL_HOST}:{MYSQL_PORT}", exc)
    name = f"gamerec_test_{secrets.token_hex(4)}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    info = {
        "host": MYSQL_HOST,
        "port": MYSQL_PORT,
        "db": name,
        "url": f"mysql+pymysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{name}?charset=utf8mb4",
    }
    try:
        yield info
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture
def mysql_db(mysql_server: dict[str, object]) -> Iterator[dict[str, object]]:
    """A fresh database per test (table names repeat across tests)."""
    import pymysql

    name = f"{mysql_server['db']}_{secrets.token_hex(3)}"
    conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", password="")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield {
            **mysql_server,
            "db": name,
            "url": f"mysql+pymysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{name}?charset=utf8mb4",
        }
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's standalone S3 server on a free loopback port, reached over real HTTP."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        unavailable("moto server", exc)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: str) -> Iterator[dict[str, str]]:
    import boto3

    name = f"gamerec-{secrets.token_hex(4)}"
    client = boto3.client("s3", endpoint_url=s3_server)
    client.create_bucket(Bucket=name)
    yield {"endpoint": s3_server, "bucket": name}


@pytest.fixture
def gamerec_home(tmp_path: Path) -> Path:
    home = tmp_path / "gamerec_home"
    home.mkdir()
    return home


class ThreadedHTTPServer:
    """A loopback HTTP server on a free port in a daemon thread (base for the fakes of remote services below)."""

    def serve(self, handler: type) -> None:
        import threading
        from http.server import ThreadingHTTPServer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FaultProxy(ThreadedHTTPServer):
    """A real HTTP proxy in front of moto that answers 500 to armed requests (method + path substring), or, while
    `frozen` is set, accepts requests and answers nothing (a hung endpoint) until it is cleared or 60 s pass.

    It injects faults on the wire, so boto3 and our code run unpatched.
    """

    def __init__(self, upstream: str) -> None:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler
        from urllib.parse import urlparse

        self.fail: list[tuple[str, str]] = []
        self.failed = 0
        self.frozen = threading.Event()
        self.thawed = threading.Event()
        target = urlparse(upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.frozen.is_set():
                    proxy.thawed.wait(timeout=60)
                if any(self.command == m and p in self.path for m, p in proxy.fail):
                    proxy.failed += 1
                    payload = b"<Error><Code>InternalError</Code><Message>injected fault</Message></Error>"
                    self.send_response(500)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
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

        self.serve(Handler)
        self.url = f"http://127.0.0.1:{self.port}"


@pytest.fixture
def s3_fault_proxy(s3_server: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(s3_server)
    try:
        yield proxy
    finally:
        proxy.thawed.set()
        proxy.close()


class RawgReplayServer(ThreadedHTTPServer):
    """A local RAWG: replays the real `/api/games` results bundled with the project, paginated, and injects faults.

    `faults` is consumed one per request: None (serve normally), ("status", code, headers), ("echo", code: the
    request URL, key included, echoed in the error body), ("slow", seconds),
    ("truncate",), ("no_results",). `requests` records every query string received.
    """

    def __init__(self) -> None:
        import gzip
        import json
        import time
        from http.server import BaseHTTPRequestHandler
        from urllib.parse import parse_qs, urlencode, urlsplit

        from gamerec_assets.recsys.rawg_pages import BUNDLED_SNAPSHOT

        bundle = json.loads(gzip.decompress(BUNDLED_SNAPSHOT.read_bytes()))
        self.games = [g for page in bundle["pages"] for g in page["results"]]
        self.faults: list = []
        self.requests: list[dict[str, list[str]]] = []
        self.duplicate_across_pages = False
        server = self

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
                page = int(query.get("page", ["1"])[0])
                size = int(query.get("page_size", ["20"])[0])
                start = (page - 1) * size
                results = server.games[start : start + size]
                if server.duplicate_across_pages and page > 1:
                    results = [server.games[0], *results[1:]]
                base = f"http://127.0.0.1:{server.port}/api/games"
                params = {k: v[0] for k, v in query.items() if k != "page"}
                nxt = f"{base}?{urlencode({**params, 'page': page + 1})}" if start + size < len(server.games) else None
                body = {"count": len(server.games), "next": nxt, "previous": None, "results": results}
                if fault and fault[0] == "no_results":
                    body.pop("results")
                data = json.dumps(body).encode()
                if fault and fault[0] == "truncate":
                    return self._send(200, data[: len(data) // 2])
                return self._send(200, data)

        self.serve(Handler)
        self.url = f"http://127.0.0.1:{self.port}/api"


@pytest.fixture
def rawg_server() -> Iterator[RawgReplayServer]:
    server = RawgReplayServer()
    try:
        yield server
    finally:
        server.close()
