"""A real Prometheus (Debian's package) scrapes a running API with deploy/prometheus/prometheus.yml, every
second, loads rules.yml, and answers a query for a gamerec series; a healthy service raises no alert."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gamerec_api import telemetry
from gamerec_api.app import create_app
from tests.deploy.promql import RULES, SCRAPE_CONFIG, rules
from tests.gamerec_api.support import Home, serve
from tests.support.prometheus import binary, prometheus_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
NEVER = "0001-01-01T00:00:00Z"  # a rule's lastEvaluation before its first evaluation


def scrape_config(api: str) -> dict:
    """The example config as shipped, pointed at `api`, scraping and evaluating every second."""
    config = copy.deepcopy(yaml.safe_load(SCRAPE_CONFIG.read_text()))
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES)]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "gamerec_api"
    job["static_configs"] = [{"targets": [api.removeprefix("http://")]}]
    return config


def poll(what: str, probe: Callable[[], Any], timeout: float = 20.0) -> Any:
    """probe() until it returns something truthy; its value."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: nothing after {timeout}s")
        time.sleep(0.25)
    return value


def test_prometheus_scrapes_the_api_and_evaluates_the_rules(home: Home, tmp_path: Path) -> None:
    binary("prometheus")  # before the API starts: a missing package fails (CI) or skips at once
    app = create_app(home.settings, reload_interval=0, env={})
    user = str(home.seeded.logs["user_id"][0])
    with serve(app) as api, httpx.Client(base_url=api, timeout=10) as client:
        assert client.post("/predict", json={"user_id": user, "k": 5}).status_code == 200
        with (
            prometheus_server(scrape_config(api), tmp_path) as prometheus,
            httpx.Client(base_url=prometheus, timeout=5) as prom,
        ):

            def query(expr: str) -> list[dict]:
                body = prom.get("/api/v1/query", params={"query": expr}).json()
                assert body["status"] == "success", body
                return body["data"]["result"]

            served = poll("gamerec_model_info", lambda: query('gamerec_model_info{job="gamerec_api"}'))
            # the process's registry is shared by every app the test session built: this one's version is there
            versions = {s["metric"]["version"]: s for s in served}
            assert home.seeded.version in versions, versions
            assert versions[home.seeded.version]["metric"]["instance"] == api.removeprefix("http://")
            assert versions[home.seeded.version]["value"][1] == "1"
            # summed: the process's registry holds a series per status code and method other tests' apps made
            (predicts,) = query('sum(gamerec_http_requests_total{job="gamerec_api", path="/predict"})')
            assert float(predicts["value"][1]) >= 1

            def evaluated() -> list[dict]:
                groups = prom.get("/api/v1/rules").json()["data"]["groups"]
                loaded = [rule for group in groups for rule in group["rules"]]
                return loaded if loaded and all(r.get("lastEvaluation", NEVER) != NEVER for r in loaded) else []

            loaded = poll("the rules evaluated", evaluated)
            assert {r["name"] for r in loaded} == {r["alert"] for r in rules()}
            assert {r["health"] for r in loaded} == {"ok"}, [(r["name"], r.get("lastError")) for r in loaded]
            # the API is up and serves a model: no alert pending or firing (but the guardrail's, when an earlier
            # test of this session tripped one: the counter lives in the process's registry, new to this Prometheus)
            active = {alert["labels"]["alertname"] for alert in prom.get("/api/v1/alerts").json()["data"]["alerts"]}
            assert active <= ({"GamerecExperimentGuardrailTripped"} if guardrail_tripped_in_process() else set())


def guardrail_tripped_in_process() -> bool:
    samples = (s for family in telemetry.GUARDRAIL_TRIPS.collect() for s in family.samples)
    return any(s.name.endswith("_total") and s.value > 0 for s in samples)
