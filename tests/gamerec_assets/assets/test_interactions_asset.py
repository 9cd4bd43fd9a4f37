"""user_logs alone: the simulated source, and the history check it runs with its own config in hand."""

import dagster as dg
import polars as pl
import pytest

from gamerec_assets.assets.interactions import UserLogsConfig, history_lengths_check, user_logs
from gamerec_assets.resources.sources import InteractionSources


def test_user_logs_yields_the_table_and_its_history_check(features: pl.DataFrame) -> None:
    config = UserLogsConfig(n_users=40, max_games=4, seed=9)
    output, check = user_logs(dg.build_asset_context(), config, features, InteractionSources())
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


def test_user_logs_steam_source_needs_a_path(features: pl.DataFrame) -> None:
    with pytest.raises(dg.Failure, match="steam_path"):
        list(user_logs(dg.build_asset_context(), UserLogsConfig(source="steam"), features, InteractionSources()))
