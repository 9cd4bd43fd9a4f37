"""Hot swap: a new production model is loaded in the background and swapped in atomically, under load.

Real server (uvicorn in a thread), real registry writes (publish + promote), threads hammering /predict.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

import httpx
import pytest
from litestar.testing import TestClient

from gamerec_api.app import create_app
from gamerec_api.demo import fit_artifact
from gamerec_assets.recsys import SimulationParams, simulate_user_logs
from gamerec_assets.store.registry import MODEL_NAME
from tests.gamerec_api.support import ADMIN_TOKEN, Home, serve, wait_ready

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def publish_second_model(home: Home, seed: int = 7) -> str:
    """A genuinely different model: fitted on another simulated population."""
    logs = simulate_user_logs(home.seeded.features, SimulationParams(n_users=300, seed=seed))
    return home.registry().publish(fit_artifact(home.seeded.features, logs))


@dataclass(frozen=True)
class Hit:
    started: float
    ended: float
    status: int
    version: str | None


def hammer(base: str, stop: threading.Event, out: list[Hit], seed: int) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=base, timeout=30) as c:
        while not stop.is_set():
            body = {"user_id": rng.randint(0, 260), "k": rng.randint(1, 30)}
            if rng.random() < 0.3:
                body["liked_game_ids"] = [3328, 4200]
            started = time.monotonic()
            r = c.post("/predict", json=body)
            version = r.json().get("model_version") if r.status_code == 200 else None
            out.append(Hit(started, time.monotonic(), r.status_code, version))


@pytest.mark.integration
def test_reload_under_concurrent_requests_swaps_without_failures(fresh_home: Home) -> None:
    v1 = fresh_home.seeded.version
    app = create_app(fresh_home.settings, reload_interval=0, admin_token=ADMIN_TOKEN, env={})
    hits: list[Hit] = []
    stop = threading.Event()
    with serve(app) as base, httpx.Client(base_url=base, timeout=60) as admin:
        threads = [threading.Thread(target=hammer, args=(base, stop, hits, n)) for n in range(6)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.4)
            v2 = publish_second_model(fresh_home)
            fresh_home.registry().promote(v2, reason="test")
            before_reload = time.monotonic()
            r = admin.post("/admin/reload", headers=AUTH)
            assert r.status_code == 200, r.text
            assert r.json() == {"changed": True, "previous_version": v1, "model_version": v2}
            swapped = time.monotonic()
            time.sleep(0.4)
            before_rollback = time.monotonic()
            fresh_home.registry().rollback()
            back = admin.post("/admin/reload", headers=AUTH)
            assert back.json() == {"changed": True, "previous_version": v2, "model_version": v1}
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert admin.get("/readyz").json()["model_version"] == v1
        metrics = admin.get("/metrics").text
    assert len(hits) > 100, "the hammer threads barely ran"
    assert [h for h in hits if h.status != 200] == []
    assert {h.version for h in hits} == {v1, v2}
    between = [h for h in hits if h.started > swapped and h.ended < before_rollback]
    assert between and all(h.version == v2 for h in between), "after the swap returned, only v2 may answer"
    assert all(h.version == v1 for h in hits if h.ended < before_reload)
    assert max(h.ended - h.started for h in hits) < 2.0, "a request stalled during the swap"
    # exactly one served version (the answer counters keep a series per version that answered, as counters do)
    assert f'gamerec_model_info{{version="{v1}"}} 1.0' in metrics
    assert f'gamerec_model_info{{version="{v2}"}}' not in metrics
    assert 'gamerec_model_reloads_total{result="ok"}' in metrics


def test_polling_picks_up_a_promotion(fresh_home: Home) -> None:
    with TestClient(create_app(fresh_home.settings, reload_interval=0.1, env={})) as c:
        assert wait_ready(c)["model_version"] == fresh_home.seeded.version
        v2 = publish_second_model(fresh_home, seed=11)
        fresh_home.registry().promote(v2, reason="test")
        deadline = time.monotonic() + 10
        while c.get("/readyz").json()["model_version"] != v2:
            assert c.post("/predict", json={"user_id": 3}).status_code == 200
            assert time.monotonic() < deadline, "the poller did not load the promoted model"
            time.sleep(0.02)
        assert c.post("/predict", json={"user_id": 3}).json()["model_version"] == v2


def test_a_broken_artifact_keeps_the_old_model(fresh_home: Home) -> None:
    """A corrupted new version must not take the service down: reload answers 503, the old model serves on."""
    v1 = fresh_home.seeded.version
    v3 = publish_second_model(fresh_home, seed=13)
    with TestClient(create_app(fresh_home.settings, reload_interval=0, admin_token=ADMIN_TOKEN, env={})) as c:
        wait_ready(c)
        fresh_home.registry().promote(v3, reason="test")  # complete when promoted, corrupted on disk afterwards
        arrays = fresh_home.settings.artifact_root / MODEL_NAME / v3 / "similarity.npz"
        arrays.write_bytes(arrays.read_bytes()[:100])
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 503
        assert "still serving the previous model" in r.json()["detail"] and "sha256" in r.json()["detail"]
        assert c.get("/readyz").json()["model_version"] == v1
        assert c.post("/predict", json={"user_id": 3}).json()["model_version"] == v1


def test_admin_reload_needs_the_bearer_token(fresh_home: Home) -> None:
    with TestClient(create_app(fresh_home.settings, reload_interval=0, admin_token=ADMIN_TOKEN, env={})) as c:
        wait_ready(c)
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": ADMIN_TOKEN},
            {"Authorization": f"Basic {ADMIN_TOKEN}"},
        ):
            r = c.post("/admin/reload", headers=headers)
            assert r.status_code == 401, headers
            assert "Bearer" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"
        ok = c.post("/admin/reload", headers=AUTH)
        assert ok.status_code == 200
        assert ok.json()["changed"] is False and ok.json()["model_version"] == fresh_home.seeded.version


def test_admin_endpoint_is_off_without_a_token(client: TestClient) -> None:
    assert client.post("/admin/reload", headers=AUTH).status_code == 404


def test_admin_token_comes_from_the_environment(home: Home) -> None:
    app = create_app(home.settings, env={"GAMEREC_ADMIN_TOKEN": "from-env", "GAMEREC_RELOAD_INTERVAL": "0"})
    with TestClient(app) as c:
        wait_ready(c)
        assert c.post("/admin/reload", headers={"Authorization": "Bearer from-env"}).status_code == 200


def test_promote_and_rollback_serve_one_whole_version(fresh_home: Home) -> None:
    """After a promote or a rollback every endpoint answers from that one version: its users, histories and
    cards (never the current tables), `model_version` everywhere, and batch rows only when that version made them."""
    v1 = fresh_home.seeded.version
    logs2 = simulate_user_logs(fresh_home.seeded.features, SimulationParams(n_users=300, seed=7))
    registry = fresh_home.registry()
    v2 = registry.publish(fit_artifact(fresh_home.seeded.features, logs2))
    app = create_app(fresh_home.settings, reload_interval=0, admin_token=ADMIN_TOKEN, env={})
    with TestClient(app) as c:
        wait_ready(c)
        registry.promote(v2)
        assert c.post("/admin/reload", headers=AUTH).json()["model_version"] == v2
        assert c.get("/readyz").json()["model_version"] == v2
        users = c.get("/users", params={"limit": 1000}).json()
        assert users["model_version"] == v2 and users["total"] == 300
        history = c.get("/users/250/history").json()
        assert history["model_version"] == v2
        assert {g["game_id"] for g in history["items"]} == set(logs2.filter(logs2["user_id"] == 250)["game_id"])
        p = c.post("/predict", json={"user_id": "250", "k": 5}).json()
        assert p["model_version"] == v2 and p["source"] == "item_cf" and p["user_id"] == "250"
        same = c.post("/predict", json={"user_id": 250, "k": 5}).json()  # an integer is its decimal string
        per_answer = ("request_id", "event_token")  # each answer's own
        assert {k: v for k, v in same.items() if k not in per_answer} == {
            k: v for k, v in p.items() if k not in per_answer
        }
        batch = c.get("/users/9/recommendations").json()  # the table holds v1's rows: computed by v2 instead
        assert (batch["source"], batch["model_version"], batch["batch_model_version"]) == ("computed", v2, v1)
        expected = fresh_home.registry().load(v2)
        assert all(i["game_id"] in set(expected.item_ids.tolist()) for i in batch["items"])

        registry.rollback()
        assert c.post("/admin/reload", headers=AUTH).json()["model_version"] == v1
        assert c.get("/readyz").json()["model_version"] == v1
        assert c.get("/users").json()["total"] == 200
        assert c.get("/users/250/history").status_code == 404
        p = c.post("/predict", json={"user_id": 250, "k": 5}).json()
        assert p["model_version"] == v1 and p["source"] == "popular"
        batch = c.get("/users/9/recommendations").json()
        assert (batch["source"], batch["model_version"]) == ("batch", v1)


def test_a_version_without_serving_data_is_refused_with_a_reason(fresh_home: Home) -> None:
    """Old versions (similarity only) are not served: mixing them with today's tables is what broke rollbacks."""
    from gamerec_assets.recsys.model_artifact import ModelArtifact

    registry = fresh_home.registry()
    current = registry.load(registry.production())  # type: ignore[arg-type]
    old = registry.publish(ModelArtifact(current.item_ids, current.similarity, current.popularity, {}))
    app = create_app(fresh_home.settings, reload_interval=0, admin_token=ADMIN_TOKEN, env={})
    with TestClient(app) as c:
        wait_ready(c)
        registry.promote(old)
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 503 and "predates per-version serving data" in r.json()["detail"]
        assert c.get("/readyz").json()["model_version"] == fresh_home.seeded.version  # keeps its model
    with TestClient(create_app(fresh_home.settings, reload_interval=0, env={})) as fresh:  # skips it at start
        assert wait_ready(fresh)["model_version"] == fresh_home.seeded.version
