"""The README's lineage diagram and endpoint table say what the code does (`scripts/readme_tables.py` writes them)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _section(name: str) -> str:
    return README.split(f"<!-- BEGIN {name}:", 1)[1].split(f"<!-- END {name} -->", 1)[0]


def test_generated_sections_are_up_to_date() -> None:
    if _generator().render(README) != README:
        pytest.fail("README.md is out of date: run .venv/bin/python scripts/readme_tables.py")


def test_diagram_edges_are_the_asset_dependencies() -> None:
    from gamerec_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    real = {
        (parent.to_user_string(), key.to_user_string())
        for key in graph.get_all_asset_keys()
        for parent in graph.get(key).parent_keys
    }
    drawn = set(re.findall(r"^\s*(\w+) --> (\w+)\s*$", _section("lineage"), re.MULTILINE))
    assert drawn == real
    assert {("game_features", "production_model"), ("user_logs", "batch_recommendations")} <= drawn  # issue 17


def test_endpoint_table_lists_every_route() -> None:
    from gamerec_api.app import create_app

    app = create_app(admin_token="readme-test")
    routes = {re.sub(r"\{(\w+):(int|str)\}", r"{\1}", route.path) for route in app.routes}
    routes |= set(app.openapi_schema.to_schema()["paths"])
    listed = {
        re.sub(r"\{(\w+):(int|str)\}", r"{\1}", path)
        for path in re.findall(r"^\| `[A-Z/]+ ([^`?]+)[^`]*` \|", _section("endpoints"), re.MULTILINE)
    }
    assert listed == routes
    assert {"/users", "/users/{user_id}/history", "/games/{game_id}"} <= listed  # issue 17


def test_serve_script_defaults_are_the_documented_settings() -> None:
    """scripts/serve.sh reads its ports from the shell; its defaults are settings.py's (and so the README's)."""
    from gamerec_assets.settings import ApiSettings

    serve = (ROOT / "scripts" / "serve.sh").read_text(encoding="utf-8")
    defaults = dict(re.findall(r"\$\{(GAMEREC_API_HOST|GAMEREC_API_PORT|DAGSTER_PORT):-([^}]*)\}", serve))
    api = ApiSettings()
    assert defaults == {
        "GAMEREC_API_HOST": api.host,
        "GAMEREC_API_PORT": str(api.port),
        "DAGSTER_PORT": str(api.dagster_port),
    }


def test_event_types_table_is_the_one_vocabulary() -> None:
    """The README's event types (the interaction file's and POST /events' `type`) are feedback's, with its
    weights, and the POST /events section lists the same types in the same order."""
    from gamerec_assets.recsys.feedback import EVENT_TYPES, EVENT_WEIGHTS

    rows = re.findall(r"^\| `(\w+)` \| ([0-9.]+)", _section("event types"), re.MULTILINE)
    assert [name for name, _ in rows] == list(EVENT_TYPES)
    assert {name: float(weight) for name, weight in rows} == EVENT_WEIGHTS
    posted = README.split("### Feedback: POST /events", 1)[1].split("`type`: ", 1)[1]
    listed = " ".join(posted.split()[: len(EVENT_TYPES)]).rstrip(",")
    assert listed == ", ".join(f"`{t}`" for t in EVENT_TYPES), listed
