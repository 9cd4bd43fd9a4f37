"""Stage 1: RAWG pages, kept as fetched so everything downstream can be rebuilt without the API."""

from datetime import UTC, date, datetime

import dagster as dg
import polars as pl

from gamerec_assets.assets.metadata import markdown_table
from gamerec_assets.io_managers import RawPages
from gamerec_assets.recsys.rawg_pages import RawgPageError, parse_pages
from gamerec_assets.resources.rawg import RawgClient

ATTRIBUTION = "Data from RAWG (https://rawg.io)"


class RawGamesConfig(dg.Config):
    crawl_date: str = ""  # YYYY-MM-DD; empty: today (UTC). The daily schedule passes its own date.


@dg.asset(
    group_name="ingestion",
    kinds={"json", "rawg"},
    io_manager_key="artifact_io_manager",
)
def raw_games(context: dg.AssetExecutionContext, config: RawGamesConfig, rawg: RawgClient) -> dg.Output[RawPages]:
    """RAWG `/api/games` pages as fetched (bundled snapshot unless RAWG_API_KEY is set), one dated crawl per run.

    Validated before anything is stored: a malformed page fails this asset and nothing downstream is touched.
    Crawls are write-once objects under `raw_games/<crawl date>/<version>/`, so old crawls stay and every later
    asset can be rebuilt without calling the API again.
    """
    crawl_date = config.crawl_date or datetime.now(UTC).strftime("%Y-%m-%d")
    try:
        date.fromisoformat(crawl_date)
    except ValueError as exc:
        raise dg.Failure(description=f"raw_games: crawl_date must be YYYY-MM-DD, got {crawl_date!r}") from exc
    try:
        pages = rawg.fetch_pages(context.log)
        games = parse_pages(pages, rawg.describe())
    except RawgPageError as exc:
        raise dg.Failure(description=str(exc)) from exc
    duplicates = games.height - games["id"].n_unique()
    return dg.Output(
        RawPages(pages, rawg.describe(), crawl_date),
        metadata={
            "source": rawg.describe(),
            "crawl_date": crawl_date,
            "pages": len(pages),
            "games": games.height,
            "duplicate_ids": duplicates,
            "attribution": ATTRIBUTION,
            "preview": markdown_table(games.select("id", "name", "released", "rating", "added", "genres")),
        },
    )


@dg.asset_check(asset=raw_games, description="Every game has an id and a name; duplicates are reported.")
def raw_games_ids_present(raw_games: RawPages) -> dg.AssetCheckResult:
    games = parse_pages(raw_games.pages, raw_games.source)
    dupes = games.filter(pl.col("id").is_duplicated())["id"].unique().to_list()
    return dg.AssetCheckResult(
        passed=games.height > 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"games": games.height, "duplicate_ids": len(dupes), "examples": str(dupes[:10])},
    )
