"""user_logs alone: the simulated source, and the history check it runs with its own config in hand."""

import re
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from gamerec_assets.assets.interactions import UserLogsConfig, history_lengths_check, user_logs
from gamerec_assets.resources.sources import InteractionSources
from gamerec_assets.resources.storage import LocalArtifactsResource, TablesResource
from gamerec_assets.resources.trust import EventTrustResource

# no events in these tables: the production model (the trust rules' yardstick) is never looked up
UNUSED_TRUST = (LocalArtifactsResource(root="/nonexistent/gamerec-artifacts"), EventTrustResource())


def test_user_logs_yields_the_table_and_its_history_check(features: pl.DataFrame, no_events: TablesResource) -> None:
    config = UserLogsConfig(n_users=40, max_games=4, seed=9)
    output, check = user_logs(
        dg.build_asset_context(), config, features, InteractionSources(), no_events, *UNUSED_TRUST
    )
    logs = output.value
    assert logs["user_id"].n_unique() == 40
    assert logs.group_by("user_id").len()["len"].max() <= 4
    assert output.metadata["max_games"].value == 4 and output.metadata["source"].value == "simulated"
    assert check.check_name == "user_logs_history_lengths" and check.passed
    assert check.metadata["max_games"].value == "4"


def test_history_check_fails_on_too_long_duplicate_or_unknown_histories(features: pl.DataFrame) -> None:
    game_ids = features["game_id"].head(3).to_list()
    three = pl.DataFrame({"user_id": [1, 1, 1], "game_id": game_ids, "weight": [1.0, 1.0, 1.0]})
    assert history_lengths_check(three, features, 3).passed
    assert not history_lengths_check(three, features, 2).passed
    assert not history_lengths_check(pl.concat([three, three.head(1)]), features, 5).passed
    unknown = three.with_columns(pl.lit(987_654_321).alias("game_id").cast(pl.Int64)).head(1)
    assert not history_lengths_check(unknown, features, 5).passed


def test_user_logs_steam_source_needs_a_path(features: pl.DataFrame, no_events: TablesResource) -> None:
    with pytest.raises(dg.Failure, match="steam_path"):
        list(
            user_logs(
                dg.build_asset_context(),
                UserLogsConfig(source="steam"),
                features,
                InteractionSources(),
                no_events,
                *UNUSED_TRUST,
            )
        )


EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_user_ids_are_text_and_the_source_is_recorded(features: pl.DataFrame, no_events: TablesResource) -> None:
    output, _ = user_logs(
        dg.build_asset_context(), UserLogsConfig(n_users=5), features, InteractionSources(), no_events, *UNUSED_TRUST
    )
    logs = output.value
    assert logs.schema["user_id"] == pl.Utf8 and sorted(logs["user_id"].unique().to_list(), key=int)[0] == "1"
    assert logs["title"].null_count() == logs.height  # every simulated game is in the catalogue
    assert set(logs["source"]) == {"simulated"} and set(logs["catalog"]) == {"rawg"}
    meta = output.metadata
    assert meta["source_from"].value == "settings" and meta["catalog"].value == "rawg"
    assert meta["data_version"].value["users"] == 5 and len(meta["data_version"].value["fingerprint"]) == 16


def test_interaction_file_from_settings_keeps_and_counts_unknown_games(
    features: pl.DataFrame, no_events: TablesResource
) -> None:
    sources = InteractionSources(interactions=f"file:{EXAMPLES / 'interactions.csv'}")
    output, check = user_logs(dg.build_asset_context(), UserLogsConfig(), features, sources, no_events, *UNUSED_TRUST)
    logs = output.value
    # most of the example's game ids are not RAWG's: they are kept as items without metadata, and counted
    missing = logs.join(features.select("game_id"), on="game_id", how="anti")
    assert 0 < missing.height < logs.height
    assert output.metadata["unknown_game_interactions"].value == missing.height
    assert output.metadata["unknown_games"].value == missing["game_id"].n_unique()
    assert logs.filter(pl.col("game_id").is_in(features["game_id"].implode()))["title"].null_count() > 0
    assert logs.filter(pl.col("game_id") == 2001)["title"].unique().to_list() == ["Lost Tapes (not in the catalogue)"]
    assert check.passed and check.metadata["unknown_games"].value == missing.height


def test_run_config_overrides_the_source_visibly(
    features: pl.DataFrame, no_events: TablesResource, tmp_path: Path
) -> None:
    path = tmp_path / "plays.csv"
    path.write_text("user_id,game_id\nalice,3498\nalice,3328\nbob,3498\n")
    sources = InteractionSources(interactions="simulated")
    config = UserLogsConfig(source=f"file:{path}")
    output, _ = user_logs(dg.build_asset_context(), config, features, sources, no_events, *UNUSED_TRUST)
    assert output.metadata["source"].value == f"file:{path}" and output.metadata["source_from"].value == "run config"
    assert output.value["user_id"].to_list() == ["alice", "alice", "bob"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("kaggle", "user_logs: user_logs config `source` must be 'simulated' or 'steam:<path>' or 'file:<path>'"),
        ("file:", "'file' needs a path"),
    ],
)
def test_bad_run_config_sources_fail(
    features: pl.DataFrame, no_events: TablesResource, source: str, message: str
) -> None:
    with pytest.raises(dg.Failure, match=re.escape(message)):
        list(
            user_logs(
                dg.build_asset_context(),
                UserLogsConfig(source=source),
                features,
                InteractionSources(),
                no_events,
                *UNUSED_TRUST,
            )
        )


def test_bad_interaction_file_fails_with_file_row_and_problem(
    features: pl.DataFrame, no_events: TablesResource, tmp_path: Path
) -> None:
    path = tmp_path / "plays.csv"
    path.write_text("user_id,game_id,timestamp\nalice,3498,2024-01-01\nbob,3498,last tuesday\n")
    sources = InteractionSources(interactions=f"file:{path}")
    with pytest.raises(dg.Failure) as err:
        list(user_logs(dg.build_asset_context(), UserLogsConfig(), features, sources, no_events, *UNUSED_TRUST))
    assert err.value.description == (
        f"user_logs: {path}: row 2 (line 3): timestamp 'last tuesday' is not an ISO 8601 date-time or Unix seconds"
    )
