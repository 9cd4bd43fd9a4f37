"""raw_games alone: the snapshot client behind the RAWG interface, the crawl date and the ids check."""

import dagster as dg
import pytest

from gamerec_assets.assets.ingestion import RawGamesConfig, raw_games, raw_games_ids_present
from gamerec_assets.io_managers import RawPages
from gamerec_assets.resources.rawg import SnapshotRawgClient


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
