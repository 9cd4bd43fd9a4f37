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


# -- RabbitMQ and Celery workers (the scale location's distributed executor) ---------------------------------------

# A vhost of its own, so the tests' queues never meet those of anything else on the same RabbitMQ.
RABBITMQ_VHOST = os.environ.get("GAMEREC_TEST_RABBITMQ_VHOST", "gamerec_test")
RABBITMQ_URL = os.environ.get("GAMEREC_TEST_RABBITMQ_URL", f"pyamqp://guest:guest@127.0.0.1:5672/{RABBITMQ_VHOST}")


def _rabbitmq_error(url: str) -> Exception | None:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        return exc
    return None


@pytest.fixture(scope="session")
def rabbitmq_broker() -> str:
    """The broker URL of the local RabbitMQ (its test vhost created with rabbitmqctl when missing); a failure, not a
    skip, under CI=true when it does not answer."""
    import shutil

    error = _rabbitmq_error(RABBITMQ_URL)
    if error is not None and shutil.which("rabbitmqctl"):  # the server answers, the vhost may be missing
        for command in (
            ["add_vhost", RABBITMQ_VHOST],
            ["set_permissions", "-p", RABBITMQ_VHOST, "guest", ".*", ".*", ".*"],
        ):
            subprocess.run(["rabbitmqctl", "-q", *command], capture_output=True, timeout=120, check=False)
        error = _rabbitmq_error(RABBITMQ_URL)
    if error is not None:
        unavailable(f"RabbitMQ at {RABBITMQ_URL}", error)
    return RABBITMQ_URL


class CeleryWorker:
    """One `python -m gamerec_assets.scale.worker` process (its own session, directory and DAGSTER_HOME)."""

    def __init__(self, name: str, directory: Path, env: dict[str, str]) -> None:
        import sys

        self.name = name
        self.directory = directory
        self.log = directory / "worker.log"
        directory.mkdir(parents=True)
        (directory / "dagster_home").mkdir()
        root = Path(__file__).resolve().parents[1]
        (directory / "dagster_home" / "dagster.yaml").write_text((root / "dagster.yaml").read_text())
        bin_dir = str(Path(sys.executable).parent)
        full_env = {
            **os.environ,
            **env,
            "PYTHONPATH": str(root),
            "DAGSTER_HOME": str(directory / "dagster_home"),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",  # celery's own children: this venv
        }
        command = [sys.executable, "-m", "gamerec_assets.scale.worker", "-c", "1", "-n", f"{name}@%h"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=directory, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"worker {self.name} exited with {self.process.returncode}:\n{self.log.read_text()[-4000:]}"
                )
            if " ready." in self.log.read_text(errors="replace"):
                return
            time.sleep(0.2)
        pytest.fail(f"worker {self.name} not ready after {timeout} s:\n{self.log.read_text()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (main process and pool): a machine lost, no goodbye."""
        import signal

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        import signal

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # warm shutdown
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


class CeleryWorkers:
    """Starts workers for a test (`start(env, n)`, each ready when it returns) and stops every one of them after."""

    def __init__(self, broker: str, directory: Path) -> None:
        self.broker = broker
        self.directory = directory
        self.started: list[CeleryWorker] = []

    def start(self, env: dict[str, str], n: int = 2) -> list[CeleryWorker]:
        import contextlib

        from amqp.exceptions import NotFound
        from kombu import Connection

        # Tasks left by an interrupted session must not reach these workers (no queue yet: nothing to purge).
        with Connection(self.broker) as conn, contextlib.suppress(NotFound):
            conn.default_channel.queue_purge("dagster")
        env = {**env, "GAMEREC_CELERY_BROKER": self.broker}
        first = len(self.started)
        workers = [CeleryWorker(f"w{i}", self.directory / f"worker-{i}", env) for i in range(first, first + n)]
        self.started.extend(workers)
        for worker in workers:
            worker.wait_ready()
        return workers

    def stop_all(self) -> None:
        import signal

        for worker in self.started:  # every warm shutdown at once, then whatever is left is killed
            if worker.process.poll() is None:
                os.killpg(worker.process.pid, signal.SIGTERM)
        for worker in self.started:
            worker.stop()


@pytest.fixture
def celery_workers(rabbitmq_broker: str, tmp_path: Path) -> Iterator[CeleryWorkers]:
    """Celery workers of the scale location, started by the test itself as separate processes."""
    workers = CeleryWorkers(rabbitmq_broker, tmp_path)
    try:
        yield workers
    finally:
        workers.stop_all()
