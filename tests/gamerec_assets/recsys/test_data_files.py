"""The bring-your-own readers: catalogue and interaction files, CSV and Parquet, and every error naming file, row
and problem."""

from pathlib import Path

import polars as pl
import pytest

from gamerec_assets.recsys.catalogue_file import CatalogueFileError, catalogue_pages, read_catalogue
from gamerec_assets.recsys.cleaning import clean_games
from gamerec_assets.recsys.feedback import EVENT_TYPES, EVENT_WEIGHTS
from gamerec_assets.recsys.interaction_file import InteractionFileError, read_interactions
from gamerec_assets.recsys.provenance import fingerprint
from gamerec_assets.recsys.rawg_pages import GAME_SCHEMA, parse_pages

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_example_catalogue_reads_like_rawg_pages_and_cleans() -> None:
    rows = read_catalogue(EXAMPLES / "catalogue.csv")
    assert rows.schema == pl.Schema(GAME_SCHEMA) and rows.height == 12
    first = rows.row(0, named=True)
    assert first["genres"] == ["Action", "Adventure"] and first["platforms"] == ["PC", "PlayStation 5"]
    assert parse_pages(catalogue_pages(rows, page_size=5)).equals(rows)  # the pages raw_games stores
    features, _ = clean_games(parse_pages(catalogue_pages(rows)))
    assert features["game_id"].to_list() == rows["id"].to_list()


def test_parquet_catalogue_with_list_columns(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "game_id": [5, 6],
            "name": [" Five ", "Six"],
            "genres": [["RPG", "Action"], []],
            "released": ["2020-01-02", None],
            "rating": [4.5, None],
            "added": [10, None],
            "description": ["long text", None],
        }
    )
    frame.write_parquet(tmp_path / "games.parquet")
    rows = read_catalogue(tmp_path / "games.parquet")
    assert rows["genres"].to_list() == [["RPG", "Action"], []]
    assert rows["name"].to_list() == ["Five", "Six"]
    assert str(rows["released"][0]) == "2020-01-02" and rows["released"][1] is None


def test_rawg_export_columns_are_mapped(tmp_path: Path) -> None:
    path = write(
        tmp_path / "export.csv",
        "game_id,game_name,release_date,rating,metacritic,esrb_rating\n"
        "1,A,2012-01-01,3.9,Not Rated,\n2,B,,0.0,81.0,M\n",
    )
    rows = read_catalogue(path)
    assert rows["name"].to_list() == ["A", "B"] and rows["metacritic"].to_list() == [None, 81]
    other = write(tmp_path / "popular.csv", 'id,name,released,genres\n7,G,2013-09-17,"Action, RPG"\n')
    assert read_catalogue(other)["genres"].to_list() == [["Action", "RPG"]]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name,rating\nA,1\n", "missing column(s) ['game_id']"),
        ("game_id,name\n1,A\nx,B\n", "row 2 (line 3): game_id 'x' is not an integer"),
        ("game_id,name\n1,A\n2.0,B\n", "row 2 (line 3): game_id '2.0' is not an integer"),
        ("game_id,name\n0,A\n", "row 1 (line 2): game_id '0' is out of range"),
        ("game_id,name\n1000000000000,A\n", "game_id '1000000000000' is out of range"),
        ("game_id,name\n1,A\n,B\n", "row 2 (line 3): game_id is missing"),
        ("game_id,name\n1,A\n2,B\n1,C\n", "row 3 (line 4): duplicate game_id 1 (first at row 1)"),
        ("game_id,name\n1,A\n2,\n", "row 2 (line 3): name is missing"),
        ("game_id,name,released\n1,A,2020-13-45\n", "row 1 (line 2): released '2020-13-45' is not a YYYY-MM-DD date"),
        ("game_id,name,rating\n1,A,good\n", "row 1 (line 2): rating 'good' is not a number"),
        ("game_id,name,added\n1,A,1.5\n", "row 1 (line 2): added '1.5' is not an integer"),
        ("game_id,name\n", "no games"),
    ],
)
def test_bad_catalogues_name_file_row_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path / "games.csv", text)
    with pytest.raises(CatalogueFileError) as err:
        read_catalogue(path)
    assert str(err.value).startswith(f"{path}: ") and problem in str(err.value)


def test_unreadable_catalogues(tmp_path: Path) -> None:
    with pytest.raises(CatalogueFileError, match="no such file"):
        read_catalogue(tmp_path / "missing.csv")
    with pytest.raises(CatalogueFileError, match="unknown format"):
        read_catalogue(write(tmp_path / "games.json", "{}"))


def test_example_interactions_weights_ids_and_titles() -> None:
    logs, report = read_interactions(EXAMPLES / "interactions.csv")
    assert logs.schema == pl.Schema({"user_id": pl.Utf8, "game_id": pl.Int64, "weight": pl.Float64, "title": pl.Utf8})
    assert logs.select("user_id", "game_id").is_duplicated().sum() == 0
    assert {"alice", "player-00", "76561197960265728"} <= set(logs["user_id"])
    assert set(report.events) <= set(EVENT_WEIGHTS) and report.rows_in == 273
    assert report.first_timestamp is not None


def test_weights_per_event_and_integer_ids_are_text(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "user_id": [7, 7, 7, 8, 8, 9, 9],
            "game_id": [1, 1, 2, 1, 3, 4, 4],
            "event": ["play", "play", "like", "purchase", "wishlist", "view", "PLAY"],
            "value": [2.0, 3.0, None, None, None, None, None],
            "timestamp": [1_700_000_000, 1_700_000_100, None, None, None, None, None],
        }
    )
    frame.write_parquet(tmp_path / "log.parquet")
    logs, report = read_interactions(tmp_path / "log.parquet")
    weights = {(r["user_id"], r["game_id"]): r["weight"] for r in logs.iter_rows(named=True)}
    assert weights[("7", 1)] == pytest.approx(1 + __import__("math").log1p(5.0))  # play hours summed
    assert weights[("7", 2)] == 2.0 and weights[("8", 1)] == 1.0 and weights[("8", 3)] == 0.5
    assert weights[("9", 4)] == 1.0  # the largest of view (0.25) and play (1, no hours)
    assert report.events == {"like": 1, "play": 3, "purchase": 1, "view": 1, "wishlist": 1}
    # an integer id and its decimal string are one user
    write(tmp_path / "log.csv", "user_id,game_id\n7,1\n 7 ,2\n")
    assert read_interactions(tmp_path / "log.csv")[0]["user_id"].to_list() == ["7", "7"]


def test_every_event_type_loads_with_the_one_weight_table(tmp_path: Path) -> None:
    """The file takes exactly POST /events' types (feedback.EVENT_TYPES), each weighed by feedback.EVENT_WEIGHTS:
    one user per type, one row each; types that weigh 0 make no pair, and the report counts them."""
    lines = [f"u-{t},{10 + i},{t.upper() if i % 2 else t}" for i, t in enumerate(EVENT_TYPES)]
    logs, report = read_interactions(write(tmp_path / "all.csv", "user_id,game_id,type\n" + "\n".join(lines)))
    weights = {r["user_id"].removeprefix("u-"): r["weight"] for r in logs.iter_rows(named=True)}
    assert weights == {t: w for t, w in EVENT_WEIGHTS.items() if w > 0}  # play without hours: 1 x play weight
    assert report.events == dict.fromkeys(sorted(EVENT_TYPES), 1)
    assert report.pairs_unweighted == 2 and report.pairs_disliked == 1  # impression, click; the lone dislike
    # the run's weight table applies to the file as to the events
    logs, _ = read_interactions(tmp_path / "all.csv", {"click": 0.3, "view": 0.0})
    weights = {r["user_id"].removeprefix("u-"): r["weight"] for r in logs.iter_rows(named=True)}
    assert weights["click"] == 0.3 and "view" not in weights


def test_a_dislike_newer_than_the_last_positive_event_removes_the_pair(tmp_path: Path) -> None:
    text = (
        "user_id,game_id,type,timestamp\n"
        "a,1,play,2024-01-01\na,1,dislike,2024-02-01\n"  # played, then disliked: gone
        "a,2,dislike,2024-01-01\na,2,like,2024-02-01\n"  # disliked, then liked: kept
        "a,3,wishlist,\na,3,dislike,\n"  # no timestamps: file order; a wishlist is no positive event
        "b,1,impression,\nb,2,play,\n"
    )
    logs, report = read_interactions(write(tmp_path / "d.csv", text))
    assert sorted(logs.select("user_id", "game_id").iter_rows()) == [("a", 2), ("b", 2)]
    assert (report.pairs_disliked, report.pairs_unweighted) == (2, 1)
    meta = report.metadata()
    assert (meta["file_pairs_disliked"], meta["file_pairs_unweighted"]) == (2, 1)
    with pytest.raises(InteractionFileError, match="no \\(user, game\\) pair has weight"):
        read_interactions(write(tmp_path / "none.csv", "user_id,game_id,event\na,1,impression\na,2,dislike\n"))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("user,game_id\na,1\n", "missing column(s) ['user_id']"),
        ("user_id,game_id\na,1\n,2\n", "row 2 (line 3): user_id is missing"),
        (f"user_id,game_id\n{'u' * 129},1\n", "row 1 (line 2): user_id is longer than 128 characters"),
        ("user_id,game_id\na,1\nb,one\n", "row 2 (line 3): game_id 'one' is not an integer"),
        ("user_id,game_id\na,-3\n", "row 1 (line 2): game_id '-3' is out of range"),
        ("user_id,game_id\na,\n", "row 1 (line 2): game_id is missing"),
        ("user_id,game_id,event\na,1,play\na,2,rate\n", "row 2 (line 3): event 'rate' is not one of"),
        ("user_id,game_id,type\na,1,rate\n", "row 1 (line 2): type 'rate' is not one of impression, click, view"),
        ("user_id,game_id,type,event\na,1,play,play\n", "columns `type` and `event` both give the event type"),
        ("user_id,game_id,value\na,1,lots\n", "row 1 (line 2): value 'lots' is not a number"),
        ("user_id,game_id,value\na,1,-2\n", "row 1 (line 2): value '-2' is negative"),
        ("user_id,game_id,timestamp\na,1,2024-01-01\na,2,yesterday\n", "row 2 (line 3): timestamp 'yesterday' is not"),
        ("user_id,game_id\n", "no interactions"),
    ],
)
def test_bad_interaction_files_name_file_row_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path / "plays.csv", text)
    with pytest.raises(InteractionFileError) as err:
        read_interactions(path)
    assert str(err.value).startswith(f"{path}: ") and problem in str(err.value)


def test_fingerprint_ignores_row_order_and_sees_content() -> None:
    a = pl.DataFrame({"user_id": ["a", "b"], "game_id": [1, 2], "tags": [["x"], []]})
    assert fingerprint(a) == fingerprint(a.reverse())
    assert fingerprint(a) != fingerprint(a.with_columns(pl.lit(3).alias("game_id")))
