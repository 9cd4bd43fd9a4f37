"""A checksum-valid but malformed model in the registry, against real server processes: never a crash.

The malformed version is written past the registry's own checks (as a buggy writer or a hand-edited bucket would),
then pointed at by the production alias. A fresh server falls back to the newest servable version of the alias
history; a running server refuses the reload and keeps answering with the model it has.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from gamerec_assets.recsys.model_artifact import ARRAYS, CARDS, MANIFEST, SERVING
from gamerec_assets.store.registry import new_version
from tests.gamerec_api.support import ADMIN_TOKEN, Home, free_port, wait_ready

pytestmark = pytest.mark.integration  # each test starts `python -m gamerec_api`

ROOT = Path(__file__).resolve().parents[2]


def plant_malformed_production(home: Home) -> tuple[str, str]:
    """Copy the production version with CSR indices past the catalogue and a matching sha256; make it production."""
    registry = home.registry()
    store = registry.store
    good = registry.production()
    assert good is not None
    with np.load(io.BytesIO(store.get(f"{registry.name}/{good}/{ARRAYS}")), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    indices_key = next(k for k in arrays if k.endswith("indices"))
    arrays[indices_key] = np.full_like(arrays[indices_key], 2**30)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    manifest = json.loads(store.get(f"{registry.name}/{good}/{MANIFEST}"))
    bad = new_version()
    manifest["version"] = bad
    manifest["files"][ARRAYS] = hashlib.sha256(buf.getvalue()).hexdigest()
    store.put(f"{registry.name}/{bad}/{ARRAYS}", buf.getvalue())
    for name in (CARDS, SERVING):  # the version's own cards and histories, intact: only the similarity is bad
        store.put(f"{registry.name}/{bad}/{name}", store.get(f"{registry.name}/{good}/{name}"))
    store.put(f"{registry.name}/{bad}/{MANIFEST}", json.dumps(manifest).encode())
    alias = {**(registry.alias() or {}), "version": bad, "previous": [good], "reason": "planted by a test"}
    store.replace(f"{registry.name}/_aliases/production.json", json.dumps(alias).encode())
    assert registry.production() == bad
    return good, bad


@contextmanager
def server(home: Home) -> Iterator[tuple[httpx.Client, subprocess.Popen]]:
    port = free_port()
    env = {**os.environ, "GAMEREC_HOME": str(home.path), "PYTHONPATH": str(ROOT), "GAMEREC_ADMIN_TOKEN": ADMIN_TOKEN}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gamerec_api", "--port", str(port), "--reload-interval", "0", "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                    assert time.monotonic() < deadline, "server did not start"
                    time.sleep(0.1)
            yield client, proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_fresh_server_falls_back_past_a_malformed_production_model(fresh_home: Home) -> None:
    good, bad = plant_malformed_production(fresh_home)
    with server(fresh_home) as (client, proc):
        ready = wait_ready(client, timeout=60)
        assert ready["model_version"] == good != bad
        r = client.post("/predict", json={"user_id": int(fresh_home.seeded.logs["user_id"][0]), "k": 5})
        assert r.status_code == 200 and r.json()["model_version"] == good
        assert proc.poll() is None


def test_a_running_server_refuses_a_malformed_reload_and_keeps_its_model(fresh_home: Home) -> None:
    good = fresh_home.registry().production()
    with server(fresh_home) as (client, proc):
        assert wait_ready(client, timeout=60)["model_version"] == good
        _, bad = plant_malformed_production(fresh_home)
        r = client.post("/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert r.status_code == 503 and "still serving the previous model" in r.json()["detail"]
        assert "out of range" in r.json()["detail"]
        # the operators' status says so: still ready on the old model, the refused version, when and why
        status = client.get("/admin/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
        assert status["status"] == "ready" and status["model_version"] == good
        assert status["refused_reload"]["version"] == bad and "out of range" in status["refused_reload"]["reason"]
        assert status["refused_reload"]["at"] and "refused" in status["detail"]
        time.sleep(0.5)
        assert proc.poll() is None
        assert client.get("/readyz").json()["model_version"] == good
        r = client.post("/predict", json={"user_id": int(fresh_home.seeded.logs["user_id"][0]), "k": 5})
        assert r.status_code == 200 and r.json()["model_version"] == good
