"""The experiment answer buffer: written in one transaction per flush, kept (bounded) while the database fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from gamerec_api import answer_log
from gamerec_api.answer_log import AnswerLog
from gamerec_assets import backends
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store.experiment_answers import ExperimentAnswers
from gamerec_assets.store.table_store import TableStore


def tables(home: Path) -> TableStore:
    return backends.table_store(StorageSettings.from_env({"GAMEREC_HOME": str(home)}))


def test_flush_writes_the_buffered_answers_with_their_games_and_teams(tmp_path: Path) -> None:
    store = tables(tmp_path)
    log = AnswerLog(lambda: store)
    log.add("r1~e~c~v2", "e", "c", "v2", "", "u1", b"3_1_2")
    log.add("r2~e~i~v1~v2", "e", "i", "v1", "v2", "u2", [5, 6], "cp")
    assert log.flush() == 2 and log.pending == 0
    rows = ExperimentAnswers(store).frame("e")
    assert rows["game_ids"].to_list() == [[3, 1, 2], [5, 6]]
    assert rows["teams"].to_list() == ["ccc", "cp"]
    assert rows["arm"].to_list() == ["c", "i"]


def test_a_failed_flush_keeps_the_rows_for_the_next_one_and_bounds_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tables(tmp_path / "good")
    broken_dir = tmp_path / "not-a-dir"
    broken_dir.write_text("a file where the home should be")
    current = {"store": None}

    def opener() -> TableStore:
        if current["store"] is None:
            return tables(broken_dir)  # fails: the database cannot be created inside a file
        return current["store"]  # type: ignore[return-value]

    monkeypatch.setattr(answer_log, "MAX_PENDING", 3)
    log = AnswerLog(opener)
    for i in range(2):
        log.add(f"r{i}", "e", "p", "v1", "", "u", b"1")
    with pytest.raises(Exception):  # noqa: B017 - whatever the backend raises, the rows stay
        log.flush()
    assert log.pending == 2
    for i in range(2, 4):
        log.add(f"r{i}", "e", "p", "v1", "", "u", b"1")
    assert log.pending == 3  # bounded: the oldest went
    current["store"] = good
    assert log.flush() == 3
    assert ExperimentAnswers(good).frame("e")["request_id"].to_list() == ["r1", "r2", "r3"]
