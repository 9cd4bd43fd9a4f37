"""The app under a real uvicorn server on a free loopback port, in a background thread of the test process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from litestar import Litestar
from litestar.testing import TestClient

from tests.support import started
from tests.support.net import free_port


def wait_ready(client: TestClient | httpx.Client, timeout: float = 30.0) -> dict:
    """Poll /readyz until the service says it is ready; its JSON body. A server process that is not listening yet
    is waited for too."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = client.get("/readyz")
        except httpx.TransportError as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"service not listening after {timeout}s: {exc}") from exc
            time.sleep(0.05)
            continue
        if r.status_code == 200:
            return r.json()
        if time.monotonic() > deadline:
            raise AssertionError(f"service not ready after {timeout}s: {r.status_code} {r.text}")
        time.sleep(0.02)


@contextmanager
def serve(app: Litestar) -> Iterator[str]:
    """Run the app with uvicorn on a free loopback port in a background thread; yields the base URL once ready."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started.record("uvicorn server")
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
