"""Stage 1: RAWG pages, kept as fetched so everything downstream can be rebuilt without the API."""

from datetime import UTC, date, datetime

import dagster as dg
import polars as pl

from gamerec_assets.assets.metadata import markdown_table
from gamerec_assets.io_managers import RawPages
from gamerec_assets.recsys.provenance import data_version
from gamerec_assets.recsys.rawg_pages import BUNDLED_SNAPSHOT, RawgPageError, parse_pages
from gamerec_assets.resources.rawg import RawgClient, SnapshotRawgClient
from gamerec_assets.resources.sources import CatalogueFileClient, catalog_label
from gamerec_assets.settings import parse_catalog, source_path

ATTRIBUTION = "Data from RAWG (https://rawg.io)"


class RawGamesConfig(dg.Config):
    crawl_date: str = ""  # YYYY-MM-DD; empty: today (UTC). The daily schedule passes its own date.
    # empty: the deployment's GAMEREC_CATALOG; `file:<path>` or `rawg` (the bundled snapshot) for this run only
    catalog: str = ""


def catalogue_client(config: RawGamesConfig, rawg: RawgClient) -> tuple[RawgClient, str]:
    """The client this run reads, and where that choice came from (`settings` or `run config`)."""
    if not config.catalog:
        return rawg, "settings"
    try:
        spec = parse_catalog(config.catalog, "raw_games config `catalog`")
    except ValueError as exc:
        raise dg.Failure(description=f"raw_games: {exc}") from exc
    if spec.startswith("file:"):
        return CatalogueFileClient(path=source_path(spec)), "run config"
    return SnapshotRawgClient(path=str(BUNDLED_SNAPSHOT)), "run config"


@dg.asset(
    group_name="ingestion",
    kinds={"json", "rawg"},
    io_manager_key="artifact_io_manager",
)
def raw_games(context: dg.AssetExecutionContext, config: RawGamesConfig, rawg: RawgClient) -> dg.Output[RawPages]:
    """RAWG `/api/games` pages as fetched (bundled snapshot unless RAWG_API_KEY is set), one dated crawl per run;
    or the catalogue file of GAMEREC_CATALOG=file:<path> (or of this run's `catalog`), stored as the same pages.

    Validated before anything is stored: a malformed page or a bad catalogue file (the message names the file, the
    row and the problem) fails this asset and nothing downstream is touched.
    Crawls are write-once objects under `raw_games/<crawl date>/<version>/`, so old crawls stay and every later
    asset can be rebuilt without calling the API again.
    """
    crawl_date = config.crawl_date or datetime.now(UTC).strftime("%Y-%m-%d")
    try:
        date.fromisoformat(crawl_date)
    except ValueError as exc:
        raise dg.Failure(description=f"raw_games: crawl_date must be YYYY-MM-DD, got {crawl_date!r}") from exc
    client, source_from = catalogue_client(config, rawg)
    if source_from == "run config":
        context.log.warning(f"raw_games: this run reads {client.describe()} (run config), not the deployment's")
    try:
        pages = client.fetch_pages(context.log)
        games = parse_pages(pages, client.describe())
    except RawgPageError as exc:
        raise dg.Failure(description=f"raw_games: {exc}") from exc
    duplicates = games.height - games["id"].n_unique()
    return dg.Output(
        RawPages(pages, client.describe(), crawl_date),
        metadata={
            "source": client.describe(),
            "catalog": catalog_label(client.describe()),
            "source_from": source_from,
            "data_version": dg.MetadataValue.json(data_version(games, ["id"])),
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
