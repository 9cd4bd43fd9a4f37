"""The whole graph on a catalogue file and an interaction file (the README's *Bring your own data* example), set as
deployment settings: it materializes, evaluates and promotes; a plain second run keeps the data; a change of
source by the settings publishes the first model on it, one by run config refuses the automatic promote and says
how to promote explicitly."""

import re
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from gamerec_assets import backends
from gamerec_assets.definitions import build_definitions
from gamerec_assets.schedules import daily_refresh
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store import ModelRegistry

pytestmark = pytest.mark.integration  # the whole graph, run in process (tens of seconds a run)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST = {"ops": {"item_similarity": {"config": {"time_budget_s": 5.0}}}}


def materialize(env: dict[str, str], instance: dg.DagsterInstance, run_config: dict | None = None):
    job = build_definitions(env).resolve_implicit_global_asset_job_def()
    return job.execute_in_process(instance=instance, run_config=run_config or FAST, raise_on_error=False)


def metadata(result) -> dict[str, dict]:
    return {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}


@pytest.fixture
def own_env(gamerec_home: Path) -> dict[str, str]:
    return {
        "GAMEREC_HOME": str(gamerec_home),
        "GAMEREC_CATALOG": f"file:{EXAMPLES / 'catalogue.csv'}",
        "GAMEREC_INTERACTIONS": f"file:{EXAMPLES / 'interactions.csv'}",
    }


def test_own_files_materialize_evaluate_promote_and_stay(own_env: dict[str, str]) -> None:
    with dg.instance_for_test() as instance:
        first = materialize(own_env, instance)
        assert first.success
        checks = {e.check_name: e.passed for e in first.get_asset_check_evaluations()}
        assert all(checks.values()), checks
        meta = metadata(first)
        catalog, interactions = own_env["GAMEREC_CATALOG"], own_env["GAMEREC_INTERACTIONS"]
        assert meta["raw_games"]["catalog"].value == catalog and meta["raw_games"]["source_from"].value == "settings"
        assert meta["game_features"]["data_version"].value["rows"] == 12
        logs_meta = meta["user_logs"]
        assert logs_meta["source"].value == interactions and logs_meta["source_from"].value == "settings"
        assert logs_meta["catalog"].value == catalog
        assert logs_meta["unknown_game_interactions"].value == 6 and logs_meta["unknown_games"].value == 1
        assert logs_meta["data_version"].value["users"] == 60
        assert meta["item_similarity"]["source"].value == interactions
        assert meta["production_model"]["decision"].value == "promoted"
        assert meta["production_model"]["source"].value == interactions

        tables = backends.table_store(StorageSettings.from_env(own_env))
        logs = tables.read("user_logs")
        assert logs.schema["user_id"] == pl.Utf8 and {"alice", "player-07", "76561197960265730"} <= set(logs["user_id"])
        lost = logs.filter(pl.col("game_id") == 2001)
        assert lost.height == 6 and lost["title"].to_list() == ["Lost Tapes (not in the catalogue)"] * 6
        assert logs.filter(pl.col("game_id") != 2001)["title"].null_count() == logs.height - 6
        recs = tables.read("batch_recommendations")
        assert recs.schema["user_id"] == pl.Utf8 and recs["user_id"].n_unique() == 60
        registry = ModelRegistry(backends.artifact_store(StorageSettings.from_env(own_env)))
        first_version = registry.production()
        manifest = registry.manifest(first_version)
        assert manifest["data"]["catalog"] == catalog and manifest["data"]["interactions"] == interactions
        assert manifest["data"]["interactions_version"]["rows"] == logs.height

        # the schedule's run (its run config names no source) reads the same files: no fall back to simulated
        tick = datetime(2026, 12, 1, 4, tzinfo=UTC)
        scheduled = daily_refresh.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick))
        run_config = scheduled.run_requests[0].run_config
        assert "user_logs" not in run_config.get("ops", {})
        second = materialize(own_env, instance, run_config)
        assert second.success
        again = metadata(second)
        assert again["user_logs"]["source"].value == interactions
        assert again["user_logs"]["data_version"].value == logs_meta["data_version"].value
        assert again["production_model"]["decision"].value in ("promoted", "kept champion")


def test_a_change_of_the_settings_publishes_the_first_model_on_the_new_source(own_env: dict[str, str]) -> None:
    """The operator changed GAMEREC_CATALOG / GAMEREC_INTERACTIONS: one run leaves the new source served (the model
    promoted since it passed the gate, the batch table rebuilt), and the metadata says which rule decided."""
    defaults = {"GAMEREC_HOME": own_env["GAMEREC_HOME"]}
    with dg.instance_for_test() as instance:
        assert materialize(defaults, instance).success  # the first `make run`: bundled RAWG games, simulated users
        registry = ModelRegistry(backends.artifact_store(StorageSettings.from_env(own_env)))
        first = registry.production()
        result = materialize(own_env, instance)  # then *Bring your own data*
    assert result.success
    meta = metadata(result)
    production = meta["production_model"]
    assert production["decision"].value == "promoted"
    assert "the deployment's settings changed the data source" in production["rule"].value
    change = production["source_change"].value
    assert "catalog rawg -> file:" in change and "interactions simulated -> file:" in change
    new = registry.production()
    assert new != first and registry.manifest(new)["data"]["interactions"] == own_env["GAMEREC_INTERACTIONS"]
    recs = backends.table_store(StorageSettings.from_env(own_env)).read("batch_recommendations")
    assert set(recs["model_version"]) == {new} and {"alice", "player-07"} <= set(recs["user_id"])


def test_a_run_config_override_refuses_the_automatic_promote(own_env: dict[str, str]) -> None:
    with dg.instance_for_test() as instance:
        assert materialize(own_env, instance).success
        registry = ModelRegistry(backends.artifact_store(StorageSettings.from_env(own_env)))
        champion = registry.production()
        # this run only: the bundled RAWG games and simulated users, the deployment's settings unchanged
        override = {
            "ops": {
                **FAST["ops"],
                "raw_games": {"config": {"catalog": "rawg"}},
                "user_logs": {"config": {"source": "simulated"}},
            }
        }
        result = materialize(own_env, instance, override)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key == "production_model")
    message = failure.step_failure_data.error.message
    assert "is a run-config override, not the deployment's settings" in message
    assert "catalog file:" in message and "-> rawg; interactions file:" in message and "-> simulated" in message
    assert "`.venv/bin/gamerec models promote" in message
    assert registry.production() == champion  # production untouched
    assert "batch_recommendations" not in metadata(result)  # nothing downstream overwritten
    # the explicit way: `gamerec models promote VERSION` (the registry call behind it)
    challenger = re.search(r"gamerec models promote (\S+?)`", message).group(1)
    assert challenger != champion
    registry.promote(challenger, reason="operator: new source")
    assert registry.production() == challenger


def test_a_bad_interaction_file_fails_user_logs_and_overwrites_nothing(own_env: dict[str, str], tmp_path: Path) -> None:
    tables = backends.table_store(StorageSettings.from_env(own_env))
    bad = tmp_path / "plays.csv"
    bad.write_text("user_id,game_id\nalice,1001\nbob,10x1\n")
    with dg.instance_for_test() as instance:
        assert materialize(own_env, instance).success
        before = tables.read("user_logs")
        result = materialize({**own_env, "GAMEREC_INTERACTIONS": f"file:{bad}"}, instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key == "user_logs")
    assert (
        f"{bad}: row 2 (line 3): game_id '10x1' is not an integer"
        in failure.step_failure_data.user_failure_data.description
    )
    assert tables.read("user_logs").equals(before)
