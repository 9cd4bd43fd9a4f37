"""An experiment across two API worker processes under concurrent load, driven by the real `gamerec experiments`
CLI: both workers give each user the same variant (the salted hash, no shared state), and start, traffic changes,
stop and promote take effect on both within the reload interval with no failed request."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from gamerec_assets.recsys.traffic_split import Splitter
from tests.gamerec_api.support import Home, free_port, wait_ready
from tests.gamerec_api.test_hot_swap import publish_second_model
from tests.gamerec_assets.test_models_cli import gamerec

pytestmark = pytest.mark.integration  # two `python -m gamerec_api` server processes

ROOT = Path(__file__).resolve().parents[2]
RELOAD_S = 0.3
USERS = [str(u) for u in range(150)]


@contextmanager
def worker(home: Path) -> Iterator[httpx.Client]:
    port = free_port()
    env = {**os.environ, "GAMEREC_HOME": str(home), "PYTHONPATH": str(ROOT)}
    for name in ("PROMETHEUS_MULTIPROC_DIR", "GAMEREC_ADMIN_TOKEN"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gamerec_api", "--host", "127.0.0.1", "--port", str(port), "--reload-interval",
         str(RELOAD_S), "--log-level", "warning"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            wait_ready(c, 90)
            yield c
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode(errors="replace")
        assert "Traceback" not in out, out[-3000:]


def variants(c: httpx.Client) -> dict[str, tuple[str, str]]:
    out = {}
    for u in USERS:
        r = c.post("/predict", json={"user_id": u, "k": 5})
        assert r.status_code == 200, r.text
        out[u] = (r.json()["variant"], r.json()["model_version"])
    return out


def settle(clients: list[httpx.Client], check, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not all(check(c) for c in clients):
        assert time.monotonic() < deadline, "the workers did not follow the experiment record"
        time.sleep(0.1)


def answer(c: httpx.Client, user: str) -> dict:
    return c.post("/predict", json={"user_id": user, "k": 5}).json()


def test_two_workers_route_alike_and_never_fail_during_start_set_stop_promote(fresh_home: Home) -> None:
    home = fresh_home
    v1 = home.seeded.version
    v2 = publish_second_model(home)
    env = {"GAMEREC_HOME": str(home.path)}
    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def hammer(c: httpx.Client, seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=c.base_url, timeout=30) as h:
            while not stop.is_set():
                statuses[h.post("/predict", json={"user_id": str(rng.integers(0, 300)), "k": 10}).status_code] += 1

    with worker(home.path) as a, worker(home.path) as b:
        threads = [threading.Thread(target=hammer, args=(c, n)) for n, c in enumerate((a, b, a, b))]
        for t in threads:
            t.start()
        try:
            out = gamerec(env, "experiments", "start", "--challenger", v2, "--traffic", "0.2", "--name", "two-w")
            assert out.returncode == 0, out.stderr
            settle([a, b], lambda c: "~two-w~" in answer(c, "1")["request_id"])
            split = Splitter("two-w")
            expected = {u: ("challenger", v2) if split.treated(u.encode(), 0.2) else ("production", v1) for u in USERS}
            assert variants(a) == variants(b) == expected

            assert gamerec(env, "experiments", "set", "--traffic", "0.5").returncode == 0
            moved = next(u for u in USERS if split.treated(u.encode(), 0.5) and not split.treated(u.encode(), 0.2))
            settle([a, b], lambda c: answer(c, moved)["variant"] == "challenger")
            expected = {u: ("challenger", v2) if split.treated(u.encode(), 0.5) else ("production", v1) for u in USERS}
            assert variants(a) == variants(b) == expected

            assert gamerec(env, "experiments", "stop", "--reason", "test").returncode == 0
            settle([a, b], lambda c: "~" not in answer(c, "1")["request_id"])
            assert variants(a) == variants(b) == dict.fromkeys(USERS, ("production", v1))

            out = gamerec(env, "experiments", "start", "--challenger", v2, "--traffic", "0.3", "--name", "two-w2")
            assert out.returncode == 0, out.stderr
            settle([a, b], lambda c: "~two-w2~" in answer(c, "1")["request_id"])
            assert gamerec(env, "experiments", "promote").returncode == 0
            settle([a, b], lambda c: answer(c, "1")["model_version"] == v2 and "~" not in answer(c, "1")["request_id"])
            assert variants(a) == variants(b) == dict.fromkeys(USERS, ("production", v2))
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert set(statuses) == {200}, statuses
    assert sum(statuses.values()) > 200
