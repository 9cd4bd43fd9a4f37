import gzip
import json

import polars as pl
import pytest

from gamerec_assets.recsys import RawgPageError, parse_pages, validate_page
from gamerec_assets.recsys.rawg_pages import BUNDLED_SNAPSHOT

SNAPSHOT = BUNDLED_SNAPSHOT


def snapshot_pages() -> list[dict]:
    return json.loads(gzip.decompress(SNAPSHOT.read_bytes()))["pages"]


def test_bundled_snapshot_parses_into_typed_rows() -> None:
    games = parse_pages(snapshot_pages(), "snapshot")
    assert games.height == 400
    assert games["id"].n_unique() == 400
    assert games.schema["released"] == pl.Date
    assert games.schema["genres"] == pl.List(pl.Utf8)
    gta = games.filter(pl.col("slug") == "grand-theft-auto-v").row(0, named=True)
    assert gta["name"] == "Grand Theft Auto V"
    assert gta["metacritic"] == 92
    assert gta["added_by_status_owned"] > 0
    assert "Action" in gta["genres"] and "PC" in gta["platforms"]
    assert gta["background_image"].startswith("https://media.rawg.io/")


def test_missing_fields_become_nulls_not_errors() -> None:
    page = {"results": [{"id": 1, "name": "Bare"}, {"id": 2, "name": "Odd", "rating": "x", "genres": None}]}
    games = parse_pages([page])
    assert games["rating"].null_count() == 2
    assert games.row(1, named=True)["genres"] == []


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ([], "expected a JSON object"),
        ({"count": 3}, "no 'results'"),
        ({"results": {"id": 1}}, "not a list"),
        ({"results": ["x"]}, "results[0] is str"),
        ({"results": [{"id": "7", "name": "n"}]}, "no integer 'id'"),
        ({"results": [{"id": 7}]}, "no string 'name'"),
    ],
)
def test_malformed_pages_name_the_source_and_the_problem(page: object, message: str) -> None:
    with pytest.raises(RawgPageError, match=r"snap\.json page 1") as err:
        parse_pages([page], "snap.json")
    assert message in str(err.value)


def test_no_pages_or_no_games_is_an_error() -> None:
    with pytest.raises(RawgPageError, match="no pages"):
        parse_pages([], "empty.json")
    with pytest.raises(RawgPageError, match="no games"):
        parse_pages([{"results": []}], "empty.json")
    assert validate_page({"results": []}, "x") == []
