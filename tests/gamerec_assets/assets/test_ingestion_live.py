"""raw_games through the live client against the local RAWG replay server, end to end through Dagster."""

import json
from pathlib import Path

import dagster as dg
import pytest

from gamerec_assets import backends
from gamerec_assets.definitions import build_definitions
from gamerec_assets.settings import StorageSettings

KEY = "live-key-not-to-be-stored"


@pytest.fixture
def live_env(gamerec_home: Path, rawg_server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("RAWG_API_KEY", KEY)
    return {
        "GAMEREC_HOME": str(gamerec_home),
        "RAWG_API_KEY": KEY,
        "RAWG_BASE_URL": rawg_server.url,
        "GAMEREC_RAWG_MAX_PAGES": "3",
    }


def run(env: dict[str, str], selection: str, run_config: dict | None = None):
    defs = build_definitions(env)
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=dg.AssetSelection.assets(*selection.split()).resolve(defs.resolve_asset_graph())
    )
    with dg.instance_for_test() as instance:
        return job.execute_in_process(instance=instance, run_config=run_config or {}, raise_on_error=False)


def test_live_crawl_is_stored_as_fetched_without_the_key(live_env: dict[str, str], rawg_server) -> None:
    result = run(live_env, "raw_games game_features", {"ops": {"raw_games": {"config": {"crawl_date": "2026-11-28"}}}})
    assert result.success
    store = backends.artifact_store(StorageSettings.from_env(live_env))
    keys = store.list("raw_games")
    pages = [k for k in keys if k.endswith(".json.gz")]
    assert len(pages) == 3 and all(k.startswith("raw_games/2026-11-28/v") for k in pages)
    for key in keys:
        assert KEY.encode() not in store.get(key)
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["games"].value == 120 and KEY not in json.dumps({k: str(v.value) for k, v in meta.items()})
    assert backends.table_store(StorageSettings.from_env(live_env)).read("game_features").height == 120


def test_failed_crawl_after_retry_budget_keeps_what_was_stored(live_env: dict[str, str], rawg_server) -> None:
    assert run(live_env, "raw_games game_features").success
    store = backends.artifact_store(StorageSettings.from_env(live_env))
    before = {k: store.get(k) for k in store.list("raw_games")}
    features_before = backends.table_store(StorageSettings.from_env(live_env)).read("game_features")

    rawg_server.faults = [None, ("status", 500)] + [("status", 503)] * 20  # page 2 never recovers
    result = run(live_env, "raw_games game_features")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    message = str(failure.step_failure_data.user_failure_data) + failure.step_failure_data.error.message
    assert failure.step_key == "raw_games"
    assert "failed after 5 attempts" in message and "HTTP 503" in message and rawg_server.url in message
    assert KEY not in message
    assert {k: store.get(k) for k in store.list("raw_games")} == before
    assert backends.table_store(StorageSettings.from_env(live_env)).read("game_features").equals(features_before)
