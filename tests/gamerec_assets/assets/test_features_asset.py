"""game_features alone, on the pages raw_games produced, with both of its checks."""

import dagster as dg
import polars as pl

from gamerec_assets.assets.features import (
    GameFeaturesConfig,
    game_features,
    game_features_in_range,
    game_features_unique_ids,
)
from gamerec_assets.io_managers import RawPages


def test_game_features_cleans_every_game_and_passes_its_checks(pages: RawPages) -> None:
    out = game_features(dg.build_asset_context(), GameFeaturesConfig(impute="mean"), pages)
    frame = out.value
    assert frame.height == 400 and frame["game_id"].is_unique().all()
    assert game_features_unique_ids(frame).passed and game_features_in_range(frame).passed
    assert out.metadata["rows_in"].value == 400


def test_game_features_checks_catch_duplicates_and_out_of_range_values(features: pl.DataFrame) -> None:
    assert not game_features_unique_ids(pl.concat([features, features.head(1)])).passed
    scaled = next(c for c in features.columns if c.endswith("_scaled"))
    assert not game_features_in_range(features.with_columns(pl.lit(2.0).alias(scaled))).passed
