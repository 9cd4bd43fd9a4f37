"""The experiment record: one running at a time, compare-and-swap changes, ended ones kept with who and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from gamerec_assets.store.artifact_store import LocalArtifactStore
from gamerec_assets.store.experiments import ExperimentError, ExperimentStore

V1, V2, V3 = "v20261203T225700-abc123", "v20261204T010203-def456", "v20261205T010203-aaaaaa"


@pytest.fixture
def experiments(tmp_path: Path) -> ExperimentStore:
    return ExperimentStore(LocalArtifactStore(tmp_path))


def test_start_set_end(experiments: ExperimentStore) -> None:
    assert experiments.current() is None and experiments.all() == []
    started = experiments.start("canary", V2, V1, 0.01, by="ops@host")
    assert experiments.current() == started and started.mode == "ab" and started.traffic == 0.01
    raised = experiments.set_traffic(0.2, by="ops@host")
    assert raised.traffic == 0.2 and [c["traffic"] for c in raised.changes] == [0.2]
    assert experiments.current() == raised
    ended = experiments.end("operator stop", by="ops@host")
    assert ended.status == "stopped" and ended.ended_at and ended.reason == "operator stop (ops@host)"
    assert experiments.current() is None and experiments.all() == [ended]


def test_one_running_at_a_time_and_names_are_not_reused(experiments: ExperimentStore) -> None:
    experiments.start("first", V2, V1, 0.5, mode="interleave")
    with pytest.raises(ExperimentError, match="'first' is running"):
        experiments.start("second", V3, V1, 0.1)
    experiments.end("done", status="promoted")
    with pytest.raises(ExperimentError, match="ran before"):
        experiments.start("first", V3, V2, 0.1)
    second = experiments.start("second", V3, V2, 0.1)
    assert [e.name for e in experiments.all()] == ["second", "first"]
    assert experiments.all()[1].status == "promoted" and second.running


def test_a_late_guardrail_never_ends_a_newer_experiment(experiments: ExperimentStore) -> None:
    experiments.start("old", V2, V1, 0.1)
    experiments.end("stopped")
    experiments.start("new", V3, V1, 0.1)
    with pytest.raises(ExperimentError, match="'old' is not running"):
        experiments.end("guardrail: p99", only="old")
    assert experiments.current() is not None and experiments.current().name == "new"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad Name"}, "bad experiment name"),
        ({"traffic": 0.0}, "bad traffic"),
        ({"traffic": 1.5}, "bad traffic"),
        ({"mode": "bandit"}, "bad mode"),
        ({"challenger": V1}, "already production"),
    ],
)
def test_refused_starts_leave_nothing(experiments: ExperimentStore, kwargs: dict, message: str) -> None:
    args = {"name": "e", "challenger": V2, "production": V1, "traffic": 0.1, **kwargs}
    with pytest.raises(ExperimentError, match=message):
        experiments.start(**args)
    assert experiments.all() == []
    with pytest.raises(ExperimentError, match="no experiment is running"):
        experiments.set_traffic(0.2)


def test_a_damaged_record_is_an_error_that_names_it(experiments: ExperimentStore) -> None:
    experiments.store.put(experiments.key, b"{not json")
    with pytest.raises(ExperimentError, match=r"experiments\.json is unreadable"):
        experiments.current()
