"""raw_games alone: the snapshot client behind the RAWG interface, the crawl date and the ids check."""

import re
from pathlib import Path

import dagster as dg
import pytest

from gamerec_assets.assets.features import GameFeaturesConfig, game_features
from gamerec_assets.assets.ingestion import RawGamesConfig, raw_games, raw_games_ids_present
from gamerec_assets.io_managers import RawPages
from gamerec_assets.resources.rawg import SnapshotRawgClient
from gamerec_assets.resources.sources import CatalogueFileClient


def test_raw_games_reads_the_bundled_crawl_with_metadata(pages: RawPages) -> None:
    out = raw_games(dg.build_asset_context(), RawGamesConfig(crawl_date="2026-01-02"), SnapshotRawgClient())
    assert out.value.crawl_date == "2026-01-02" and len(out.value.pages) == 20
    assert out.metadata["games"].value == 400 and out.metadata["duplicate_ids"].value == 0
    assert "rawg.io" in out.metadata["attribution"].value
    assert raw_games_ids_present(pages).passed


def test_raw_games_refuses_a_bad_crawl_date() -> None:
    with pytest.raises(dg.Failure, match="crawl_date must be YYYY-MM-DD"):
        raw_games(dg.build_asset_context(), RawGamesConfig(crawl_date="yesterday"), SnapshotRawgClient())


def test_raw_games_fails_with_the_file_when_the_snapshot_is_broken(tmp_path) -> None:
    broken = tmp_path / "snapshot.json.gz"
    broken.write_bytes(b"\x1f\x8b not gzip")
    with pytest.raises(dg.Failure, match=str(broken)):
        raw_games(dg.build_asset_context(), RawGamesConfig(), SnapshotRawgClient(path=str(broken)))


EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_a_catalogue_file_is_stored_as_pages_and_cleaned_like_rawg() -> None:
    path = EXAMPLES / "catalogue.csv"
    out = raw_games(
        dg.build_asset_context(), RawGamesConfig(crawl_date="2026-01-02"), CatalogueFileClient(path=str(path))
    )
    assert out.metadata["catalog"].value == f"file:{path}" and out.metadata["source_from"].value == "settings"
    assert out.metadata["games"].value == 12 and out.metadata["data_version"].value["rows"] == 12
    features = game_features(dg.build_asset_context(), GameFeaturesConfig(), out.value)
    assert features.metadata["catalog"].value == f"file:{path}"
    assert features.value["name"].head(1).to_list() == ["Starfield Drift"]


def test_run_config_catalogue_overrides_the_deployment_visibly() -> None:
    path = EXAMPLES / "catalogue.csv"
    config = RawGamesConfig(crawl_date="2026-01-02", catalog=f"file:{path}")
    out = raw_games(dg.build_asset_context(), config, SnapshotRawgClient())
    assert out.metadata["catalog"].value == f"file:{path}" and out.metadata["source_from"].value == "run config"
    with pytest.raises(dg.Failure, match=re.escape("raw_games config `catalog` must be 'rawg' or 'file:<path>'")):
        raw_games(dg.build_asset_context(), RawGamesConfig(catalog="kaggle"), SnapshotRawgClient())


def test_a_bad_catalogue_file_fails_with_file_row_and_problem(tmp_path: Path) -> None:
    path = tmp_path / "games.csv"
    path.write_text("game_id,name\n1,A\n1,B\n")
    with pytest.raises(dg.Failure) as err:
        raw_games(dg.build_asset_context(), RawGamesConfig(), CatalogueFileClient(path=str(path)))
    assert err.value.description == f"raw_games: {path}: row 2 (line 3): duplicate game_id 1 (first at row 1)"
