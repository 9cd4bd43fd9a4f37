"""Property-based: schemathesis generates requests from the app's own OpenAPI schema; no 5xx, and every response
(status code, content type, headers, body) conforms to that schema."""

from __future__ import annotations

import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis.internal.conjecture import utils as conjecture_utils
from litestar import Litestar
from litestar.testing import TestClient
from schemathesis.specs.openapi.checks import negative_data_rejection

from gamerec_api.app import create_app
from gamerec_assets.settings import StorageSettings
from tests.gamerec_api.support import ADMIN_TOKEN, Home, wait_ready


def _many_more(self: conjecture_utils.many) -> bool:
    """hypothesis 6.170.10 removed `many.more()`, which hypothesis-jsonschema 0.23.1 (schemathesis 3.x) still calls
    for every object schema. This is the old method on the new internals; pinning hypothesis<6.170.10 in the dev
    dependencies makes it unnecessary (the hasattr guard then leaves hypothesis untouched)."""
    if self._depth is None:
        self._depth = self.data.depth
    if self._in_element:
        self._finish_element()
    if not self._decide():
        self._closed = True
        return False
    self.count += 1
    self._in_element = True
    self._rejected = False
    return True


if not hasattr(conjecture_utils.many, "more"):
    conjecture_utils.many.more = _many_more  # type: ignore[attr-defined]

# Litestar 2 emits OpenAPI 3.1; schemathesis 3.x checks it behind this switch.
schemathesis.experimental.OPEN_API_3_1.enable()


@pytest.fixture(scope="module")
def schema_app(home: Home, tmp_path_factory: pytest.TempPathFactory) -> Litestar:
    """With the admin endpoint on, so its 401s are checked too; loaded once before schemathesis calls it. On a
    private copy of the home: schemathesis posts random events, which must not reach other tests' users."""
    path = tmp_path_factory.mktemp("schema_home") / "home"
    shutil.copytree(home.path, path)
    settings = StorageSettings.from_env({"GAMEREC_HOME": str(path)})
    app = create_app(settings, reload_interval=0, admin_token=ADMIN_TOKEN, env={})
    with TestClient(app) as c:  # the first lifespan loads the model; later ones (one per call) keep it
        wait_ready(c)
    return app


@pytest.fixture(scope="module")
def api_schema(schema_app: Litestar) -> schemathesis.BaseSchema:
    # positive (valid per schema) and negative (schema-violating) requests: bad input must be a 4xx, never a 5xx
    return schemathesis.from_asgi(
        "/schema/openapi.json", schema_app, data_generation_methods=schemathesis.DataGenerationMethod.all()
    )


schema = schemathesis.from_pytest_fixture("api_schema")


@pytest.mark.integration
@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    response = case.call_asgi()
    # Unknown query parameters (e.g. `?=false`) are ignored, as HTTP APIs do; schemathesis counts accepting them
    # as "accepted negative data", so that one check is off. Everything else: no 5xx, documented status codes,
    # content types, headers and bodies that match the schema.
    case.validate_response(response, excluded_checks=(negative_data_rejection,))
    assert response.status_code < 500


def test_schema_documents_every_endpoint(schema_app: Litestar) -> None:
    with TestClient(schema_app) as c:
        paths = c.get("/schema/openapi.json").json()["paths"]
    assert {
        "/predict",
        "/games",
        "/games/{game_id}",
        "/games/{game_id}/similar",
        "/users",
        "/users/{user_id}/history",
        "/users/{user_id}/recommendations",
        "/healthz",
        "/readyz",
        "/admin/reload",
        "/events",
    } <= set(paths)
    predict = paths["/predict"]["post"]
    assert {"200", "400", "413", "503"} <= set(predict["responses"])
    events = paths["/events"]["post"]
    assert {"202", "400", "413", "415", "503"} <= set(events["responses"])
    assert events["summary"] and "interaction_events" in events["description"]
    results = events["responses"]["202"]["content"]["application/json"]["schema"]
    assert results["$ref"].endswith("/EventsResponse")
