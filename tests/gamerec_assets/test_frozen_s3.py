"""S3 freezes (accepts connections, answers nothing): the CLI and a server's reload fail in bounded time with the
real cause, instead of hanging for botocore's default minutes. A real proxy in front of moto's server freezes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gamerec_api.app import create_app
from gamerec_api.demo import seed_home
from gamerec_assets import backends
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store.registry import MODEL_NAME, ModelRegistry
from tests.gamerec_api.support import ADMIN_TOKEN, serve

ROOT = Path(__file__).resolve().parents[2]


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
    assert elapsed < 30, elapsed  # 3 attempts of a 1 s read timeout, plus the CLI's start


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
        assert elapsed < 20, elapsed
        fast = time.monotonic()
        assert client.post("/predict", json={"user_id": 1, "k": 3}).json()["model_version"] == version
        assert time.monotonic() - fast < 2  # requests never waited for the hung reload
        s3_fault_proxy.thawed.set()
