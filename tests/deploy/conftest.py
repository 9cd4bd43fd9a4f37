"""The deploy/ folder's tests: a seeded home the API serves (as in tests/gamerec_api), and the series names the
service really exports, scraped from /metrics after it answered and took an event."""

from __future__ import annotations

import prometheus_client
import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gamerec_api.app import create_app
from gamerec_api.demo import seed_home
from gamerec_assets.settings import StorageSettings
from tests.deploy.promql import series_names
from tests.gamerec_api.support import Home, wait_ready


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    path = tmp_path_factory.mktemp("gamerec_home")
    seeded = seed_home(path, n_users=50, seed=42)
    return Home(path, StorageSettings.from_env({"GAMEREC_HOME": str(path)}), seeded)


@pytest.fixture(scope="session")
def exported_series(home: Home) -> frozenset[str]:
    """Series names of a real /metrics scrape after a /predict, a /games/{id}/similar and a POST /events (the
    request middleware registers its metrics on the first request), with the registry's families that have no
    sample yet (the experiment metrics outside an experiment)."""
    app = create_app(home.settings, reload_interval=0, env={"GAMEREC_EVENTS_OPEN": "true"})
    user = str(home.seeded.logs["user_id"][0])
    game = int(home.seeded.features["game_id"][0])
    with TestClient(app) as client:
        wait_ready(client)
        assert client.post("/predict", json={"user_id": user, "k": 5}).status_code == 200
        assert client.get(f"/games/{game}/similar").status_code == 200
        event = {"user_id": user, "game_id": game, "type": "click"}
        assert client.post("/events", json={"events": [event]}).status_code == 202
        scrape = client.get("/metrics")
        assert scrape.status_code == 200
    scraped = series_names(text_string_to_metric_families(scrape.text))
    assert "gamerec_model_info" in scraped and "gamerec_http_requests_total" in scraped
    return frozenset(scraped | series_names(prometheus_client.REGISTRY.collect()))
