"""Debian's Prometheus for the deploy/ tests: its binaries (`make prometheus` installs the package) and a real
`prometheus` server process with its own config, storage and free port, stopped when the block ends."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

from tests.support import started
from tests.support.availability import unavailable
from tests.support.net import free_port


def binary(name: str) -> str:
    """The path of `prometheus` or `promtool`; a skip locally, a failure under CI=true, when it is missing."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"`{name}` (Debian's prometheus package: `make prometheus`)", "not on PATH")
    assert path is not None
    return path


@contextmanager
def prometheus_server(config: dict, workdir: Path, timeout: float = 20.0) -> Iterator[str]:
    """Run `prometheus` with `config` (a prometheus.yml as a dict) until the block ends; yields its base URL once
    /-/ready answers. Storage and log live in `workdir`; the process is terminated (killed after 10 s) at the end."""
    exe = binary("prometheus")
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                exe,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    started.record("prometheus server")
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{base}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready after {timeout}s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
