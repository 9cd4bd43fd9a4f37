"""`gamerec experiments start | status | set | stop | promote` against real stores (local folder, moto S3): the
record, the `challenger` alias and production move together, and refusals are one line with exit code 2."""

from __future__ import annotations

import json

from gamerec_assets.store.experiments import ExperimentStore
from tests.gamerec_assets.test_models_cli import _model, assert_clean_error, cli_registry, gamerec, gamerec_main

__all__ = ["cli_registry"]  # the fixture, shared with the models CLI's tests


def test_experiment_lifecycle(cli_registry) -> None:
    registry, env = cli_registry
    v1, v2, v3 = (registry.publish(_model(seed)) for seed in (1, 2, 3))
    assert_clean_error(
        gamerec_main(env, "experiments", "start", "--challenger", v2, "--traffic", "0.1"), "no production"
    )
    assert gamerec_main(env, "models", "promote", v1).returncode == 0
    experiments = ExperimentStore(registry.store, registry.name)

    out = gamerec(env, "experiments", "start", "--challenger", v2, "--traffic", "0.01", "--name", "canary")
    assert out.returncode == 0 and f"challenger {v2} vs production {v1}" in out.stdout, out.stderr
    exp = experiments.current()
    assert exp is not None and (exp.name, exp.mode, exp.challenger, exp.production, exp.traffic) == (
        "canary", "ab", v2, v1, 0.01,
    )  # fmt: skip
    assert registry.challenger() == v2 and registry.production() == v1
    from gamerec_assets import backends
    from gamerec_assets.settings import StorageSettings

    tables = backends.table_store(StorageSettings.from_env(env))  # made before any API worker appends to it
    assert tables.exists("experiment_answers")
    listing = json.loads(gamerec_main(env, "models", "list", "--json").stdout)
    assert (listing["production"], listing["challenger"]) == (v1, v2)

    assert gamerec_main(env, "experiments", "set", "--traffic", "0.2").returncode == 0
    assert experiments.current().traffic == 0.2  # type: ignore[union-attr]
    assert_clean_error(gamerec_main(env, "experiments", "set", "--traffic", "1.5"), r"bad traffic 1\.5")
    assert_clean_error(gamerec_main(env, "models", "promote", v3), "'canary' is running")
    assert_clean_error(gamerec_main(env, "models", "rollback"), "'canary' is running")
    assert_clean_error(
        gamerec_main(env, "experiments", "start", "--challenger", v3, "--traffic", "0.1"), "'canary' is running"
    )

    out = gamerec_main(env, "experiments", "stop", "--reason", "enough")
    assert out.returncode == 0 and f"back to production {v1}" in out.stdout
    assert experiments.current() is None and registry.challenger() is None and registry.production() == v1
    assert_clean_error(gamerec_main(env, "experiments", "stop"), "no experiment is running")
    assert_clean_error(gamerec_main(env, "experiments", "promote"), "no experiment is running")

    out = gamerec_main(env, "experiments", "start", "--challenger", v3, "--traffic", "0.5", "--mode", "interleave")
    assert out.returncode == 0, out.stderr
    name = experiments.current().name  # type: ignore[union-attr]
    assert name.startswith("exp-") and experiments.current().mode == "interleave"  # type: ignore[union-attr]
    out = gamerec(env, "experiments", "promote")
    assert out.returncode == 0 and f"production -> {v3} (previous: {v1})" in out.stdout, out.stderr
    assert registry.production() == v3 and registry.challenger() is None and experiments.current() is None
    assert [(e.name, e.status) for e in experiments.all()] == [(name, "promoted"), ("canary", "stopped")]
    assert experiments.all()[1].reason.startswith("enough (")  # type: ignore[union-attr]

    status = gamerec_main(env, "experiments", "status")
    assert status.returncode == 0 and f"{name}  interleave  challenger {v3} vs production {v1}" in status.stdout
    assert "traffic -> 0.2" in status.stdout
    assert [e["name"] for e in json.loads(gamerec_main(env, "experiments", "status", "--json").stdout)] == [
        name,
        "canary",
    ]


def test_refusals_leave_everything_as_it_was(cli_registry) -> None:
    registry, env = cli_registry
    v1 = registry.publish(_model(1))
    assert gamerec_main(env, "models", "promote", v1).returncode == 0
    assert_clean_error(
        gamerec_main(env, "experiments", "start", "--challenger", v1, "--traffic", "0.1"), "already production"
    )
    assert_clean_error(
        gamerec_main(env, "experiments", "start", "--challenger", "v20990101T000000-ffffff", "--traffic", "0.1"),
        "does not exist",
    )
    assert_clean_error(
        gamerec_main(env, "experiments", "start", "--challenger", "../x", "--traffic", "0.1"), "invalid model version"
    )
    v2 = registry.publish(_model(2))
    assert_clean_error(
        gamerec_main(env, "experiments", "start", "--challenger", v2, "--traffic", "0.1", "--name", "Bad_Name"),
        "bad experiment name",
    )
    assert ExperimentStore(registry.store, registry.name).all() == [] and registry.challenger() is None
