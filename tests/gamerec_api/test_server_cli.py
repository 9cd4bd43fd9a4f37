"""`python -m gamerec_api --workers 2`: a real multi-process server; every worker loads the model and /metrics
sums the workers' counters (prometheus_client multiprocess mode, set up by the CLI)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.gamerec_api.support import Home, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_cli_serves_with_two_workers(home: Home) -> None:
    port = free_port()
    env = {**os.environ, "GAMEREC_HOME": str(home.path), "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("GAMEREC_ADMIN_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gamerec_api", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
         "--reload-interval", "0", "--log-level", "warning"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            deadline = time.monotonic() + 60
            ready = 0
            while ready < 10:  # consecutive 200s: both workers (connections are spread over them) are ready
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "the server did not become ready"
                try:
                    ready = ready + 1 if c.get("/readyz", headers={"Connection": "close"}).status_code == 200 else 0
                except httpx.TransportError:
                    ready = 0
                time.sleep(0.05)
            n = 20
            for user in range(1, n + 1):
                r = c.post("/predict", json={"user_id": user}, headers={"Connection": "close"})
                assert r.status_code == 200 and r.json()["model_version"] == home.seeded.version
            metrics = c.get("/metrics").text
            served = re.findall(r'^gamerec_predictions_total\{source="\w+"\} ([\d.]+)$', metrics, re.M)
            assert sum(map(float, served)) == n, "the counters of both workers are summed"
            pids = set(re.findall(r'^gamerec_model_info\{pid="(\d+)",version="[^"]+"\} 1\.0$', metrics, re.M))
            assert len(pids) == 2, "each worker reports the model it serves"
            assert c.post("/admin/reload").status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_package_exports_create_app_lazily() -> None:
    """`import gamerec_api` stays cheap (no Litestar) and `from gamerec_api import create_app` resolves (it once
    recursed forever, because `from package import name` consults the package's __getattr__ again)."""
    code = (
        "import sys, gamerec_api; assert 'litestar' not in sys.modules; "
        "from gamerec_api import create_app; from litestar import Litestar; "
        "assert isinstance(create_app(env={'GAMEREC_HOME': sys.argv[1]}), Litestar); print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "/nonexistent-home"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def _cli(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return subprocess.run(
        [sys.executable, "-m", "gamerec_api", *args],
        cwd=tmp_path,
        env={**keep, "PYTHONPATH": str(ROOT), "GAMEREC_HOME": str(tmp_path / "home"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_bad_setting_or_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """issue #26 §3: no traceback, no half-started server, the variable and the fix named."""
    done = _cli(tmp_path, {"GAMEREC_CATALOG": "games.csv"})
    assert done.returncode == 2
    assert (
        done.stderr
        == "GAMEREC_CATALOG=games.csv: a path needs its kind in front; write GAMEREC_CATALOG=file:games.csv\n"
    )
    port = free_port()
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        done = _cli(tmp_path, {}, "--port", str(port))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr == (
        f"--port {port}: 127.0.0.1:{port} is in use by another program; pick another (GAMEREC_API_PORT)\n"
    )
