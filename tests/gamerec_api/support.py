"""Helpers for the service tests: the seeded home, readiness polling and a real uvicorn server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from litestar import Litestar
from litestar.testing import TestClient

from gamerec_api.demo import Seeded
from gamerec_assets import backends
from gamerec_assets.recsys.served_model import ServingModel
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store.registry import MODEL_NAME, ModelRegistry

ADMIN_TOKEN = "test-admin-token"


@dataclass(frozen=True)
class Home:
    path: Path
    settings: StorageSettings
    seeded: Seeded

    def registry(self) -> ModelRegistry:
        return ModelRegistry(backends.artifact_store(self.settings), MODEL_NAME)

    def model(self) -> ServingModel:
        registry = self.registry()
        return ServingModel(registry.load(registry.production()))  # type: ignore[arg-type]


def wait_ready(client: TestClient | httpx.Client, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get("/readyz")
        if r.status_code == 200:
            return r.json()
        if time.monotonic() > deadline:
            raise AssertionError(f"service not ready after {timeout}s: {r.status_code} {r.text}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: Litestar) -> Iterator[str]:
    """Run the app with uvicorn on a free loopback port in a background thread; yields the base URL once ready."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        with httpx.Client(base_url=base) as c:
            wait_ready(c)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
