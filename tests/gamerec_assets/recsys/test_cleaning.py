import polars as pl

from gamerec_assets.recsys import clean_games, parse_pages
from gamerec_assets.recsys.cleaning import SCALED, clean_name


def game(gid: int, name: str, **kw: object) -> dict:
    return {"id": gid, "name": name, **kw}


def test_clean_name_strips_controls_and_keeps_non_ascii() -> None:
    assert clean_name("  The\tWitcher\u200b 3\x00  ") == "The Witcher 3"
    assert clean_name("ファイナルファンタジー\nVII") == "ファイナルファンタジー VII"
    assert clean_name("Pokémon") == "Pokémon"


def test_cleaning_imputes_dedupes_and_scales() -> None:
    raw = parse_pages(
        [
            {
                "results": [
                    game(
                        1,
                        "A ",
                        rating=4.0,
                        playtime=10,
                        added=100,
                        added_by_status={"owned": 50},
                        genres=[{"name": "RPG"}],
                    ),
                    game(2, "B", rating=None, playtime=None, added=0, added_by_status={"owned": 0}),
                    game(3, "C", rating=2.0, playtime=30, added=10, added_by_status={"owned": 20}),
                    game(1, "A duplicate", rating=1.0, added=5),
                ]
            }
        ]
    )
    features, report = clean_games(raw, impute="median")
    assert features["game_id"].to_list() == [1, 2, 3]
    assert report.duplicate_ids == 1 and report.rows_out == 3
    assert report.games_added_zero == 1
    assert report.imputed["rating"] == {"missing": 1, "method": "median", "value": 3.0}
    assert features["rating"].to_list() == [4.0, 3.0, 2.0]
    ratios = features["owned_ratio"].to_list()
    assert ratios[0] == 0.5 and ratios[1] == 0.0  # added = 0 -> 0, never a division error
    assert ratios[2] == 1.0  # owned > added is clipped
    assert features["primary_genre"].to_list() == ["RPG", "Unknown", "Unknown"]
    assert features.row(0, named=True)["name"] == "A"
    for col in SCALED:
        values = features[f"{col}_scaled"]
        assert values.null_count() == 0
        assert values.min() >= 0.0 and values.max() <= 1.0


def test_mean_imputation_is_recorded() -> None:
    raw = parse_pages([{"results": [game(1, "a", rating=1.0), game(2, "b", rating=4.0), game(3, "c")]}])
    features, report = clean_games(raw, impute="mean")
    assert report.imputed["rating"]["value"] == 2.5
    assert features.filter(pl.col("game_id") == 3)["rating"].item() == 2.5
