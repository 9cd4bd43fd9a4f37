"""S3 freezes (accepts connections, answers nothing): a Dagster step, the CLI and a server's reload fail in bounded
time with the real cause, instead of hanging for botocore's default minutes. A real proxy in front of moto's server
freezes, or a bare socket server that reads requests and never answers counts the attempts of one call.

The bound stated in the README (Configuration): one S3 call makes 3 attempts in all, each waiting at most the
connect timeout, an upload's 1 s wait for "100 Continue" and the read timeout, with a short backoff in between
(`backends.s3_call_bound`).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest

from gamerec_api.app import create_app
from gamerec_api.demo import seed_home
from gamerec_assets import backends
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store.registry import MODEL_NAME, ModelRegistry
from tests.gamerec_api.support import ADMIN_TOKEN, serve

ROOT = Path(__file__).resolve().parents[2]
DAGSTER = str(Path(sys.executable).parent / "dagster")
REQUEST_LINE = re.compile(rb"(?:^|\r\n)((?:GET|PUT|HEAD|POST|DELETE) \S+ HTTP/1\.[01])\r\n")


class FrozenEndpoint:
    """An S3 endpoint that hangs: accepts every connection, reads what is sent, never answers a byte.

    `requests` is every request line received, so a test sees how many attempts one call made.
    """

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:  # closed
                return
            self._connections.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        seen, buffer = 0, b""
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            found = [m.decode() for m in REQUEST_LINE.findall(buffer)]
            with self._lock:
                self.requests.extend(found[seen:])
            seen = len(found)

    def close(self) -> None:
        self.server.close()
        for conn in self._connections:
            conn.close()


@pytest.fixture
def frozen_s3() -> Iterator[FrozenEndpoint]:
    endpoint = FrozenEndpoint()
    try:
        yield endpoint
    finally:
        endpoint.close()


def step_seconds(dagster_home: Path, step: str) -> tuple[float, str]:
    """From the run's event log: how long `step` ran until it failed, and the failure's message."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        (run,) = instance.get_runs()
        events = {
            e.dagster_event.event_type: e
            for e in instance.all_logs(run.run_id)
            if e.dagster_event is not None and e.dagster_event.step_key == step
        }
    started, failed = events[dg.DagsterEventType.STEP_START], events[dg.DagsterEventType.STEP_FAILURE]
    error = failed.dagster_event.step_failure_data.error
    return failed.timestamp - started.timestamp, str(error.to_string() if error else "")


def test_a_dagster_step_fails_within_the_stated_bound(tmp_path: Path, frozen_s3: FrozenEndpoint) -> None:
    """The production path (`dagster asset materialize`, the step in a child process of the multiprocess executor):
    its first S3 write goes to a frozen endpoint, and the step fails after exactly the documented attempts."""
    connect, read = 1.0, 3.0
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()  # Dagster's default instance: SQLite in this folder, read back below
    env = {
        "GAMEREC_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(dagster_home),
        "GAMEREC_S3_BUCKET": "frozen-bucket",
        "AWS_ENDPOINT_URL": frozen_s3.url,
        "GAMEREC_S3_CONNECT_TIMEOUT": str(connect),
        "GAMEREC_S3_READ_TIMEOUT": str(read),
    }
    out = subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "gamerec_assets.definitions", "--select", "raw_games"],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0, out.stdout[-2000:]
    seconds, error = step_seconds(dagster_home, "raw_games")
    assert frozen_s3.url in error and "timeout" in error.lower() and "s3://frozen-bucket/gamerec" in error, error
    # one call (the first page's PUT), tried 3 times in all: not dagster-aws's 5 retries, not botocore's 4 attempts
    assert len(frozen_s3.requests) == backends.S3_ATTEMPTS == 3, frozen_s3.requests
    assert all(r.startswith("PUT /frozen-bucket/gamerec/raw_games/") for r in frozen_s3.requests), frozen_s3.requests
    bound = backends.s3_call_bound(connect, read)  # 3 x (1 + 1 + 3) + 3 = 18 s
    # each attempt waited its read timeout (14.6 s in all, measured on a loaded machine: 3 x (1 s for "100 Continue"
    # + 3 s) and the snapshot's parse); 10 s over the bound is room for a machine more loaded still
    assert backends.S3_ATTEMPTS * read <= seconds < bound + 10, seconds


def s3_env(home: Path, bucket: str, endpoint: str) -> dict[str, str]:
    return {
        "GAMEREC_HOME": str(home),
        "GAMEREC_S3_BUCKET": bucket,
        "AWS_ENDPOINT_URL": endpoint,
        "GAMEREC_S3_CONNECT_TIMEOUT": "1",
        "GAMEREC_S3_READ_TIMEOUT": "1",
    }


def seeded_s3_home(tmp_path: Path, bucket: str, endpoint: str) -> dict[str, str]:
    """A seeded home whose model registry lives in the bucket (tables stay in the home's SQLite file)."""
    local = seed_home(tmp_path / "home", n_users=20, batch=False)
    env = s3_env(tmp_path / "home", bucket, endpoint)
    s3 = ModelRegistry(backends.artifact_store(StorageSettings.from_env(env)), MODEL_NAME)
    local_registry = ModelRegistry(backends.artifact_store(local.settings), MODEL_NAME)
    s3.promote(s3.publish(local_registry.load(local.version)), reason="test")
    return env


def test_models_list_fails_fast_when_s3_hangs(tmp_path: Path, s3_bucket: dict, s3_fault_proxy) -> None:
    env = seeded_s3_home(tmp_path, s3_bucket["bucket"], s3_fault_proxy.url)
    s3_fault_proxy.frozen.set()
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "gamerec_assets.cli", "models", "list"],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert s3_fault_proxy.url in out.stderr and "timeout" in out.stderr.lower()
    assert elapsed < backends.s3_call_bound(1, 1) + 20, elapsed  # one call's bound, plus the CLI's start


def test_admin_reload_fails_fast_when_s3_hangs_and_keeps_serving(
    tmp_path: Path, s3_bucket: dict, s3_fault_proxy
) -> None:
    env = seeded_s3_home(tmp_path, s3_bucket["bucket"], s3_fault_proxy.url)
    app = create_app(reload_interval=0, admin_token=ADMIN_TOKEN, env=env)
    with serve(app) as base, httpx.Client(base_url=base, timeout=60) as client:
        version = client.get("/readyz").json()["model_version"]
        s3_fault_proxy.frozen.set()
        started = time.monotonic()
        r = client.post("/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        elapsed = time.monotonic() - started
        assert r.status_code == 503 and "timeout" in r.json()["detail"].lower(), r.text
        assert elapsed < backends.s3_call_bound(1, 1) + 10, elapsed
        fast = time.monotonic()
        assert client.post("/predict", json={"user_id": 1, "k": 3}).json()["model_version"] == version
        assert time.monotonic() - fast < 2  # requests never waited for the hung reload
        s3_fault_proxy.thawed.set()
