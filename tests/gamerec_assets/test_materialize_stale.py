"""`materialize_stale.plan` follows Dagster's own stale statuses on any graph, and rebuilds what is downstream."""

from __future__ import annotations

import sys

import dagster as dg

from gamerec_assets.materialize_stale import MODULE, materialize_command, plan


@dg.asset
def a() -> int:
    return 1


@dg.asset
def b(a: int) -> int:
    return a + 1


@dg.asset
def c(b: int) -> int:
    return b + 1


@dg.asset
def lone() -> int:
    return 0


def _verdicts(defs: dg.Definitions, instance: dg.DagsterInstance) -> dict[str, tuple[str, bool, tuple[str, ...]]]:
    return {p.key.to_user_string(): (p.status, p.selected, p.why) for p in plan(defs, instance)}


def test_missing_then_fresh_then_stale_with_downstream() -> None:
    defs = dg.Definitions(assets=[a, b, c, lone])
    with dg.instance_for_test() as instance:
        first = _verdicts(defs, instance)
        assert first == {key: ("missing", True, ()) for key in ("a", "b", "c", "lone")}
        assert list(first) in (["a", "b", "c", "lone"], ["a", "lone", "b", "c"], ["lone", "a", "b", "c"])

        assert dg.materialize([a, b, c, lone], instance=instance).success
        assert _verdicts(defs, instance) == {key: ("fresh", False, ()) for key in ("a", "b", "c", "lone")}

        assert dg.materialize([a, b, c, lone], instance=instance, selection=[a]).success
        after = _verdicts(defs, instance)
        assert after["a"] == ("fresh", False, ())
        assert after["b"] == ("stale", True, ("a has a new materialization",))
        # Dagster does not call c stale yet (b has not changed), but rebuilding b will: c goes in the same run
        assert after["c"] == ("fresh", True, ("rebuilt upstream: b",))
        assert after["lone"] == ("fresh", False, ())


def test_a_new_code_version_is_stale() -> None:
    @dg.asset(name="versioned", code_version="1")
    def v1() -> int:
        return 1

    @dg.asset(name="versioned", code_version="2")
    def v2() -> int:
        return 2

    with dg.instance_for_test() as instance:
        assert dg.materialize([v1], instance=instance).success
        assert _verdicts(dg.Definitions(assets=[v1]), instance) == {"versioned": ("fresh", False, ())}
        assert _verdicts(dg.Definitions(assets=[v2]), instance) == {
            "versioned": ("stale", True, ("has a new code version",))
        }


def test_the_run_is_the_cli_run_of_make_materialize_narrowed_to_the_selection() -> None:
    command = materialize_command([dg.AssetKey("raw_games"), dg.AssetKey(["scale", "x"])], ["-c", "run.yaml"])
    assert command[0].endswith("/dagster") and command[0].startswith(str(sys.prefix))
    assert command[1:] == ["asset", "materialize", "-m", MODULE, "--select", "raw_games,scale/x", "-c", "run.yaml"]
