"""Stage 2: cleaned, model-ready game features."""

from typing import Literal

import dagster as dg
import polars as pl

from gamerec_assets.assets.metadata import figure, markdown_table, png_markdown
from gamerec_assets.io_managers import RawPages
from gamerec_assets.recsys.cleaning import SCALED, clean_games
from gamerec_assets.recsys.provenance import catalogue_version
from gamerec_assets.recsys.rawg_pages import parse_pages
from gamerec_assets.resources.sources import catalog_label


class GameFeaturesConfig(dg.Config):
    impute: Literal["mean", "median"] = "median"


@dg.asset(
    group_name="features",
    kinds={"polars", "table"},
    io_manager_key="table_io_manager",
    metadata={"primary_key": ["game_id"]},
)
def game_features(
    context: dg.AssetExecutionContext, config: GameFeaturesConfig, raw_games: RawPages
) -> dg.Output[pl.DataFrame]:
    """One row per game: cleaned name, genres/tags, imputed rating and playtime, owned_ratio, [0, 1]-scaled numbers."""
    features, report = clean_games(parse_pages(raw_games.pages, raw_games.source), impute=config.impute)
    imputed = pl.DataFrame(
        [{"column": c, **{k: str(v) for k, v in info.items()}} for c, info in report.imputed.items()]
    )
    genres = features.group_by("primary_genre").len().sort("len", descending=True)
    fig, ax = figure()
    ax.barh(genres["primary_genre"].head(12).to_list()[::-1], genres["len"].head(12).to_list()[::-1])
    ax.set_xlabel("games")
    ax.set_title("Primary genre")
    return dg.Output(
        features,
        metadata={
            "catalog": catalog_label(raw_games.source),
            "data_version": dg.MetadataValue.json(catalogue_version(features)),
            "rows_in": report.rows_in,
            "duplicate_ids_dropped": report.duplicate_ids,
            "games_with_added_zero": report.games_added_zero,
            "imputation": markdown_table(imputed, 20),
            "preview": markdown_table(
                features, 10, ["game_id", "name", "primary_genre", "rating", "owned_ratio", "rating_scaled"]
            ),
            "genres": png_markdown(fig, "games per primary genre"),
        },
    )


@dg.asset_check(asset=game_features, description="Game ids are unique.")
def game_features_unique_ids(game_features: pl.DataFrame) -> dg.AssetCheckResult:
    dupes = game_features.height - game_features["game_id"].n_unique()
    return dg.AssetCheckResult(passed=dupes == 0, metadata={"duplicate_ids": dupes})


@dg.asset_check(asset=game_features, description="Scaled features lie in [0, 1]; no model column is null.")
def game_features_in_range(game_features: pl.DataFrame) -> dg.AssetCheckResult:
    cols = [f"{c}_scaled" for c in SCALED] + ["game_id", "name", "rating", "owned_ratio", "primary_genre"]
    nulls = {c: int(game_features[c].null_count()) for c in cols}
    out_of_range = {
        c: int(((game_features[c] < 0) | (game_features[c] > 1)).sum()) for c in [f"{s}_scaled" for s in SCALED]
    }
    out_of_range["owned_ratio"] = int(((game_features["owned_ratio"] < 0) | (game_features["owned_ratio"] > 1)).sum())
    passed = not any(nulls.values()) and not any(out_of_range.values())
    return dg.AssetCheckResult(passed=passed, metadata={"nulls": str(nulls), "out_of_range": str(out_of_range)})
