"""The `online_evaluation` asset materialized for real (SQLite tables and a local artifact folder under a tmp home):
with no experiment it publishes an empty table and says so; with an experiment's traffic it publishes the figures,
the verdict and the plot, and prunes the answers older than the retention."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from gamerec_assets import backends
from gamerec_assets.assets.modeling import online_rule
from gamerec_assets.assets.online import online_evaluation
from gamerec_assets.recsys.experiment_ids import Attribution, tag
from gamerec_assets.resources.from_settings import build_resources
from gamerec_assets.settings import Settings
from gamerec_assets.store.experiment_answers import AnswerRecord, ExperimentAnswers
from gamerec_assets.store.experiments import ExperimentStore
from tests.gamerec_assets.support import seed_ab_traffic

P, C = "v20260101T000000-aaaaaa", "v20260102T000000-bbbbbb"


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test() as inst:
        yield inst


def materialize(env: dict[str, str], instance: dg.DagsterInstance) -> dict:
    result = dg.materialize([online_evaluation], resources=build_resources(Settings.from_env(env)), instance=instance)
    assert result.success
    return result.asset_materializations_for_node("online_evaluation")[0].metadata


def test_without_an_experiment_it_publishes_an_empty_table(gamerec_home: Path, instance: dg.DagsterInstance) -> None:
    meta = materialize({"GAMEREC_HOME": str(gamerec_home)}, instance)
    assert meta["verdict"].value == "no experiment recorded: nothing to evaluate"
    assert meta["experiments"].value == 0 and meta["running"].value == "none"
    assert meta["dagster/row_count"].value == 0
    table = backends.table_store(Settings.from_env({"GAMEREC_HOME": str(gamerec_home)}).storage).read(
        "online_evaluation"
    )
    assert table.height == 0 and {"experiment", "variant", "ctr", "preference_share"} <= set(table.columns)


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
def test_an_ab_experiment_gets_its_figures_verdict_and_plot(
    gamerec_home: Path, instance: dg.DagsterInstance, backend: str, request: pytest.FixtureRequest
) -> None:
    env = {"GAMEREC_HOME": str(gamerec_home)}
    if backend == "mariadb":  # the tables (experiment_answers, interaction_events, the result) on the real MariaDB
        env["GAMEREC_MYSQL_URL"] = str(request.getfixturevalue("mysql_db")["url"])
    storage = Settings.from_env(env).storage
    ExperimentStore(backends.artifact_store(storage)).start("online-test", C, P, 0.5, "ab", by="test")
    assert seed_ab_traffic(storage, P, C, ctr_p=0.05, ctr_c=0.10) > 0
    # an answer served long before the retention window: pruned, never counted
    old = tag("old", Attribution("online-test", "challenger", C))
    ExperimentAnswers(backends.table_store(storage)).append(
        [AnswerRecord(old, "online-test", "c", C, "", "u", 1, (1,), "c")]
    )

    meta = materialize(env, instance)
    assert meta["pruned_answers"].value == 1 and meta["running"].value == "online-test"
    assert meta["verdict"].value.startswith("online-test: challenger better (ctr 0.1000 vs 0.0500")
    assert "| online-test | ab | ctr |" in meta["verdicts"].value
    assert meta["plot"].value.startswith("![online evaluation](data:image/png;base64,")
    assert "mSPRT" in meta["test"].value and "alpha 0.05" in meta["test"].value
    table = backends.table_store(storage).read("online_evaluation")
    total = {r["variant"]: r for r in table.filter(table["day"] == "total").iter_rows(named=True)}
    assert total["production"]["impressions"] == total["challenger"]["impressions"] == 2 * 300 * 5
    assert total["challenger"]["ctr"] == pytest.approx(0.10) and total["production"]["ctr"] == pytest.approx(0.05)
    assert total["challenger"]["ctr_low"] < 0.10 < total["challenger"]["ctr_high"]
    assert total["challenger"]["model_version"] == C and table["day"].n_unique() == 3  # two days and the total


def test_the_online_rule_stands_aside_when_off_or_without_an_experiment(gamerec_home: Path) -> None:
    resources = build_resources(Settings.from_env({"GAMEREC_HOME": str(gamerec_home), "GAMEREC_ONLINE_GATE": "on"}))
    online, artifacts = resources["online"], resources["artifacts"]
    assert online_rule(online.model_copy(update={"gate": False}), artifacts, C) == (None, {})
    assert online_rule(online, artifacts, C) == (None, {"online_gate": "on", "online_experiment": "none running"})
    ExperimentStore(artifacts.store()).start("running", C, P, 0.1, "interleave", by="test")
    refusal, meta = online_rule(online, artifacts, "v20260103T000000-cccccc")
    assert refusal is not None and "has no online result" in refusal and meta["online_experiment"] == "running"
    refusal, meta = online_rule(online, artifacts, C)  # no traffic yet: not significantly worse
    assert refusal is None and meta["online_verdict"] == "not yet significant" and meta["online_impressions"] == 0
