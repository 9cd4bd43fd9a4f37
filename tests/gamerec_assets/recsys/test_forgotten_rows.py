"""The forgotten-users filters of the training data: integer and text ids alike, and only events up to a forget."""

import polars as pl

from gamerec_assets.recsys.forgotten_rows import without_forgotten_events, without_forgotten_users

FORGOTTEN = pl.DataFrame({"user_id": ["7", "bob"], "until_seq": [10, 20]})


def test_base_rows_of_forgotten_users_go_whatever_the_id_dtype() -> None:
    ints = pl.DataFrame({"user_id": [7, 7, 8], "game_id": [1, 2, 3]})
    kept, dropped = without_forgotten_users(ints, FORGOTTEN)
    assert kept["user_id"].to_list() == [8] and dropped == 2 and kept.schema == ints.schema
    texts = pl.DataFrame({"user_id": ["bob", "bob ", "7"], "game_id": [1, 2, 3]})
    kept, dropped = without_forgotten_users(texts, FORGOTTEN)
    assert kept["user_id"].to_list() == ["bob "] and dropped == 2
    assert without_forgotten_users(texts, FORGOTTEN.clear()) == (texts, 0)


def test_events_up_to_the_forget_go_later_ones_stay() -> None:
    events = pl.DataFrame({"user_id": ["7", "7", "bob", "bob", "al"], "seq": [9, 11, 20, 21, 1]})
    kept, dropped = without_forgotten_events(events, FORGOTTEN)
    assert kept.rows() == [("7", 11), ("bob", 21), ("al", 1)] and dropped == 2
