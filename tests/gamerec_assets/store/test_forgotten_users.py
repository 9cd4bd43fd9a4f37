"""Forgetting a player in the table database, on both backends: the forget is recorded first, then the user's
events and their rows in every table with a user_id column (text or integer, published or appended, the
`__previous` copy too) are deleted; other users' rows and the recorded row counts stay right; running it again is
safe and records it again with a new seq."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from gamerec_assets.recsys.feedback import Event
from gamerec_assets.store.event_store import EventStore
from gamerec_assets.store.experiment_answers import AnswerRecord, ExperimentAnswers
from gamerec_assets.store.forgotten_users import ForgottenUsers
from gamerec_assets.store.table_store import TableStore


@pytest.fixture(params=["sqlite", "mysql"])
def tables(request: pytest.FixtureRequest, tmp_path: Path) -> TableStore:
    if request.param == "sqlite":
        return TableStore(f"sqlite:///{tmp_path / 'db' / 'gamerec.db'}")
    return TableStore(request.getfixturevalue("mysql_db")["url"])


def _events(user: str, n: int, start: int = 0) -> list[Event]:
    return [Event(f"{user}-{start + i}", user, 10 + i, "play", 1.0, 1_000 + i, 2_000 + i) for i in range(n)]


def _logs(users: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"user_id": users, "game_id": list(range(len(users))), "weight": [1.0] * len(users)})


def test_forget_erases_every_table_and_can_run_again(tables: TableStore) -> None:
    events = EventStore(tables)
    events.append(_events("gone", 3) + _events("gone ", 2) + _events("kept", 2))
    tables.write("user_logs", _logs(["gone", "gone", "kept"]), primary_key=["user_id", "game_id"])
    tables.write("user_logs", _logs(["gone", "kept", "kept", "gone "]), primary_key=["user_id", "game_id"])
    tables.write("batch_recommendations", pl.DataFrame({"user_id": [7, 7, 8], "rank": [1, 2, 1]}))
    tables.write("games", pl.DataFrame({"game_id": [1, 2], "name": ["a", "b"]}))  # no user_id: untouched
    ExperimentAnswers(tables).append(
        [AnswerRecord(f"r{u}", "x", "p", "v1", "", u, 5, (1,), "p") for u in ("gone", "kept")]
    )
    forgotten = ForgottenUsers(tables)
    assert forgotten.since() == [] and forgotten.frame().height == 0

    report = forgotten.forget("gone")
    assert report.deleted == {
        "experiment_answers": 1,
        "interaction_events": 3,
        "user_logs": 1,
        "user_logs__previous": 2,
    }
    assert report.until_seq == 7 and report.total == 7
    assert events.read()["user_id"].to_list() == ["gone "] * 2 + ["kept"] * 2  # ids compare byte for byte
    assert tables.read("user_logs")["user_id"].to_list() == ["gone ", "kept", "kept"]
    with tables.engine.connect() as conn:  # the copy the last write replaced (not a recorded table)
        assert conn.exec_driver_sql("SELECT user_id FROM user_logs__previous").scalars().all() == ["kept"]
    assert ExperimentAnswers(tables).frame()["user_id"].to_list() == ["kept"]
    rows = tables.engine.dialect.identifier_preparer.quote_identifier("rows")
    with tables.engine.connect() as conn:  # the recorded row count follows the delete
        assert conn.exec_driver_sql(f"SELECT {rows} FROM gamerec_tables WHERE name = 'user_logs'").scalar() == 3
    assert forgotten.erased("gone") == report.deleted and forgotten.erased("kept") is None

    # an integer user_id column: a decimal id is erased there, another id is not looked up at all
    assert forgotten.forget("7").deleted == {"batch_recommendations": 2}
    assert tables.read("batch_recommendations")["user_id"].to_list() == [8]
    assert forgotten.forget("not a number").deleted == {}

    # an event that committed after the forget (in flight, or the player came back), then the forget again
    events.append(_events("gone", 1, start=100))
    first = forgotten.since()[0]
    again = forgotten.forget("gone")
    assert again.deleted == {"interaction_events": 1} and again.seq > first.seq and again.until_seq == 8
    assert [f.user_id for f in forgotten.since(first.seq)] == ["7", "not a number", "gone"]
    frame = forgotten.frame()
    assert frame.filter(pl.col("user_id") == "gone")["until_seq"].to_list() == [8]
    assert sorted(frame["user_id"].to_list()) == ["7", "gone", "not a number"]
    assert tables.read("games").height == 2


def test_forget_without_any_table_yet(tables: TableStore) -> None:
    report = ForgottenUsers(tables).forget("nobody")
    assert report.deleted == {} and report.until_seq == 0
    assert [f.user_id for f in ForgottenUsers(tables).since()] == ["nobody"]
    with pytest.raises(ValueError, match="empty"):
        ForgottenUsers(tables).forget("")
