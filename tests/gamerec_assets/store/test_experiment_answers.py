"""The answers of experiments: appended and read back exactly on both table backends, pruned by age."""

from __future__ import annotations

from pathlib import Path

import pytest

from gamerec_assets.store.experiment_answers import AnswerRecord, ExperimentAnswers
from gamerec_assets.store.table_store import TableStore


@pytest.fixture(params=["sqlite", "mysql"])
def answers(request: pytest.FixtureRequest, tmp_path: Path) -> ExperimentAnswers:
    if request.param == "sqlite":
        return ExperimentAnswers(TableStore(f"sqlite:///{tmp_path / 'db' / 'gamerec.db'}"))
    return ExperimentAnswers(TableStore(request.getfixturevalue("mysql_db")["url"]))


def _record(rid: str, experiment: str, arm: str, served_us: int, teams: str = "") -> AnswerRecord:
    games = tuple(range(10, 10 + len(teams))) if teams else (7, 8)
    challenger = "v2" if arm == "i" else ""
    return AnswerRecord(rid, experiment, arm, "v1", challenger, "u ", served_us, games, teams or arm * 2)


def test_append_read_prune(answers: ExperimentAnswers) -> None:
    assert answers.frame().height == 0 and answers.prune(10) == 0
    assert answers.append([]) == 0
    answers.append([_record("r1~x~i~v1~v2", "x", "i", 2_000, "pcpc"), _record("r2~x~p~v1", "x", "p", 1_000)])
    answers.append([_record("r3~y~c~v2", "y", "c", 3_000)])
    x = answers.frame("x")
    assert x["request_id"].to_list() == ["r2~x~p~v1", "r1~x~i~v1~v2"]  # oldest first
    assert x["game_ids"].to_list() == [[7, 8], [10, 11, 12, 13]] and x["teams"].to_list() == ["pp", "pcpc"]
    assert x["user_id"].to_list() == ["u ", "u "] and x["challenger_version"].to_list() == ["", "v2"]
    assert answers.frame().height == 3
    assert answers.prune(2_500) == 2
    assert answers.frame()["request_id"].to_list() == ["r3~y~c~v2"]


def test_ensure_creates_the_table_once_and_appends_keep_every_workers_rows(answers: ExperimentAnswers) -> None:
    answers.ensure()
    assert answers.tables.exists("experiment_answers") and answers.frame().height == 0
    answers.append([_record("r1~x~p~v1", "x", "p", 1_000)])  # appended, not published over
    answers.append([_record("r2~x~c~v2", "x", "c", 2_000)])
    answers.ensure()  # a second start: the rows stay
    assert answers.frame()["request_id"].to_list() == ["r1~x~p~v1", "r2~x~c~v2"]


def test_records_are_checked() -> None:
    with pytest.raises(ValueError, match="arm"):
        AnswerRecord("r", "x", "z", "v1", "", "u", 1, (1,), "p")
    with pytest.raises(ValueError, match="one 'p' or 'c' per game"):
        AnswerRecord("r", "x", "i", "v1", "v2", "u", 1, (1, 2), "p")
