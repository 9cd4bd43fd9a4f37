from pathlib import Path

import numpy as np
import polars as pl
import pytest

from gamerec_assets.recsys import implicit_weight, read_steam_log
from gamerec_assets.recsys.steam import RAW_SCHEMA

SAMPLE = """\
10,"Dota 2",purchase,1.0,0
10,"Dota 2",play,12.5,0
10,"Dota 2",play,14.0,0
10,"Dota 2",purchase,1.0,0
10,"Portal 2 ",purchase,1.0,0
10,"Portal 2",purchase,1.0,0
20,"Portal 2",play,3.0,0
20,"Spore",purchase,1.0,0
"""


def test_reader_aggregates_one_row_per_user_and_title(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(SAMPLE)
    log = read_steam_log(path)
    assert log.schema == pl.Schema(
        {"user_id": pl.Int64, "title": pl.Utf8, "purchased": pl.Boolean, "hours": pl.Float64}
    )
    assert log.rows() == [
        (10, "Dota 2", True, 14.0),  # duplicate purchase collapsed, hours = max of the play rows
        (10, "Portal 2", True, 0.0),  # "Portal 2 " stripped and merged, no play row -> 0 h
        (20, "Portal 2", False, 3.0),  # play without purchase row
        (20, "Spore", True, 0.0),
    ]


def test_reader_rejects_unknown_behavior(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('1,"X",wishlist,1.0,0\n')
    with pytest.raises(ValueError, match="wishlist"):
        read_steam_log(path)


def test_implicit_weight_rule() -> None:
    w = implicit_weight(np.array([0.0, 1.0, 10.0, 1000.0]))
    np.testing.assert_allclose(w, 1.0 + np.log1p([0.0, 1.0, 10.0, 1000.0]))
    assert w[0] == 1.0 and np.all(np.diff(w) > 0)
    np.testing.assert_allclose(implicit_weight(pl.Series([3.0])), [1.0 + np.log1p(3.0)])
    with pytest.raises(ValueError):
        implicit_weight(np.array([-1.0]))


def test_real_steam_200k_log(steam_log: Path) -> None:
    log = read_steam_log(steam_log)
    assert log["user_id"].n_unique() == 12_393
    raw_titles = pl.read_csv(steam_log, has_header=False, schema=RAW_SCHEMA)["title"].n_unique()
    assert raw_titles == 5_155
    # stripping merges two pairs ("Duke Nukem Forever " / "Universe Sandbox " with their unspaced twins)
    assert log["title"].n_unique() == 5_153
    assert log.select(pl.struct("user_id", "title").is_unique().all()).item()
    assert log["purchased"].all()  # every play row of this log has a purchase row
    assert log.height == 128_801 and (log["hours"] > 0).sum() == 70_474
