"""The whole graph on real users: the Kaggle steam-200k log from ../shared, linked to the RAWG catalogue."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from gamerec_assets import backends
from gamerec_assets.definitions import build_definitions
from gamerec_assets.recsys.linking import STEAM_ONLY_BASE, link_titles, normalise_title, strip_edition
from gamerec_assets.settings import StorageSettings


def test_title_normalisation_and_linking() -> None:
    assert normalise_title("  Counter-Strike: Global Offensive ") == "counter strike global offensive"
    assert normalise_title("Pokémon & Friends™") == "pokemon and friends"
    assert strip_edition("the witcher 3 wild hunt game of the year edition") == "the witcher 3 wild hunt"
    games = pl.DataFrame({"game_id": [1, 2], "name": ["The Witcher 3: Wild Hunt", "Portal 2"]})
    links = link_titles(pl.Series(["Portal 2", "The Witcher 3 Wild Hunt GOTY", "Unknown Game", "Portal 2"]), games)
    rows = {r["title"]: r for r in links.iter_rows(named=True)}
    assert len(rows) == 3
    assert rows["Portal 2"]["game_id"] == 2 and rows["Portal 2"]["rule"] == "exact"
    assert (
        rows["The Witcher 3 Wild Hunt GOTY"]["game_id"] == 1
        and rows["The Witcher 3 Wild Hunt GOTY"]["rule"] == "edition"
    )
    assert rows["Unknown Game"]["game_id"] >= STEAM_ONLY_BASE and rows["Unknown Game"]["rule"] == "unmatched"
    again = link_titles(pl.Series(["Unknown Game"]), games)
    assert again["game_id"].item() == rows["Unknown Game"]["game_id"]  # stable across runs


@pytest.mark.integration
def test_steam_sourced_run_materializes_the_whole_graph(gamerec_home: Path, steam_log: Path) -> None:
    env = {"GAMEREC_HOME": str(gamerec_home)}
    job = build_definitions(env).resolve_implicit_global_asset_job_def()
    run_config = {
        "ops": {
            "user_logs": {"config": {"source": "steam", "steam_path": str(steam_log)}},
            "item_similarity": {"config": {"time_budget_s": 30.0}},  # the 120 s default is for real refreshes
        }
    }
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert all(checks.values()), checks
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    logs_meta = meta["user_logs"]
    assert logs_meta["users"].value == 12393
    assert 0.04 < logs_meta["title_match_rate"].value < 0.2
    assert 0.3 < logs_meta["interaction_match_rate"].value < 0.5
    report = meta["evaluation_report"]
    assert report["test_ndcg@10"].value > report["test_ndcg@10_popularity"].value
    assert report["models"].value >= 4  # the published model, other candidate families and popularity
    assert meta["item_similarity"]["selection_seconds"].value <= 45
    tables = backends.table_store(StorageSettings.from_env(env))
    logs = tables.read("user_logs")
    assert logs.select("user_id", "game_id").is_duplicated().sum() == 0
    assert logs["weight"].min() >= 1.0
    recs = tables.read("batch_recommendations")
    assert recs["user_id"].n_unique() == 12393


def test_steam_path_comes_from_the_settings(gamerec_home: Path, steam_log: Path) -> None:
    """GAMEREC_STEAM_PATH reaches `user_logs` through the `sources` resource when its config names no path."""
    env = {"GAMEREC_HOME": str(gamerec_home), "GAMEREC_STEAM_PATH": str(steam_log)}
    defs = build_definitions(env)
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=dg.AssetSelection.assets("raw_games", "game_features", "user_logs").resolve(
            defs.resolve_asset_graph()
        )
    )
    run_config = {"ops": {"user_logs": {"config": {"source": "steam"}}}}
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)
    assert result.success
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert meta["user_logs"]["steam_path"].value == str(steam_log)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    history = checks["user_logs_history_lengths"]
    assert history.passed and history.metadata["max_games"].value == "None"  # real logs: no per-user limit
    assert history.metadata["users"].value == 12393
