"""production_model's online rule (GAMEREC_ONLINE_GATE), with the whole graph materialized for real into a tmp
GAMEREC_HOME (SQLite tables, a local artifact folder): off, the offline gate decides as before; on, with an experiment
running, its challenger is promoted only when the online result is not significantly worse, and any other version
waits for the experiment to end. `decided_by` names the rule each time."""

from pathlib import Path

import dagster as dg
import pytest

from gamerec_assets import backends
from gamerec_assets.assets.modeling import BY_OFFLINE, BY_ONLINE_NOT_WORSE, BY_ONLINE_OTHER, BY_ONLINE_WORSE
from gamerec_assets.definitions import build_definitions
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store import ModelRegistry
from gamerec_assets.store.experiments import ExperimentStore
from tests.gamerec_assets.support import seed_ab_traffic

pytestmark = pytest.mark.integration  # the whole graph, run in process (tens of seconds a run)

RELEASE = [dg.AssetKey("production_model"), dg.AssetKey("online_evaluation")]


def materialize(env: dict[str, str], instance: dg.DagsterInstance, run_config: dict | None = None, only=None) -> dict:
    job = build_definitions(env).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, run_config=run_config or {}, asset_selection=only)
    assert result.success
    return {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}


def test_the_online_gate_decides_only_when_on_and_an_experiment_runs(gamerec_home: Path) -> None:
    env = {"GAMEREC_HOME": str(gamerec_home)}
    gate = {**env, "GAMEREC_ONLINE_GATE": "true"}
    storage = StorageSettings.from_env(env)
    registry = ModelRegistry(backends.artifact_store(storage))
    experiments = ExperimentStore(registry.store, registry.name)
    with dg.instance_for_test() as instance:
        meta = materialize(env, instance)
        v1 = registry.production()
        assert meta["production_model"]["decided_by"].value == BY_OFFLINE and v1 is not None
        assert meta["online_evaluation"]["verdict"].value == "no experiment recorded: nothing to evaluate"
        # an impossible tolerance keeps the new version out: the offline rule, as before
        meta = materialize(env, instance, {"ops": {"production_model": {"config": {"tolerance": -1.0}}}})
        v2 = str(meta["item_similarity"]["version"].value)
        release = meta["production_model"]
        assert (release["decision"].value, release["decided_by"].value) == ("kept champion", BY_OFFLINE)
        assert registry.production() == v1 != v2

        # gate on, an experiment on another version: v2 has no online result and waits
        v3 = registry.publish(registry.load(v1))
        experiments.start("other", v3, v1, 0.5, "ab", by="test")
        release = materialize(gate, instance, only=RELEASE)["production_model"]
        assert (release["decision"].value, release["decided_by"].value) == ("kept champion", BY_ONLINE_OTHER)
        assert "experiment 'other' runs challenger" in release["rule"].value
        experiments.end("test", by="test")

        # gate on, v2 under experiment and clearly worse online: kept out, whatever the offline figures say
        experiments.start("worse", v2, v1, 0.5, "ab", by="test")
        seed_ab_traffic(storage, v1, v2, ctr_p=0.10, ctr_c=0.04, name="worse")
        meta = materialize(gate, instance, only=RELEASE)
        release = meta["production_model"]
        assert (release["decision"].value, release["decided_by"].value) == ("kept champion", BY_ONLINE_WORSE)
        assert release["online_verdict"].value == "challenger worse" and release["online_p_value"].value <= 0.05
        assert meta["online_evaluation"]["verdict"].value.startswith("worse: challenger worse")
        assert registry.production() == v1
        experiments.end("test", by="test")

        # gate on, v2 not worse online (better here): promoted, and the experiment ends as promoted
        experiments.start("better", v2, v1, 0.5, "ab", by="test")
        registry.set_challenger(v2, reason="experiment better started")
        seed_ab_traffic(storage, v1, v2, ctr_p=0.05, ctr_c=0.10, name="better")
        release = materialize(gate, instance, only=RELEASE)["production_model"]
        assert (release["decision"].value, release["decided_by"].value) == ("promoted", BY_ONLINE_NOT_WORSE)
        assert release["online_verdict"].value == "challenger better"
        assert registry.production() == v2 and registry.challenger() is None
        ended = experiments.all()[0]
        assert (ended.name, ended.status, experiments.current()) == ("better", "promoted", None)
