"""`materialize_stale.plan` follows Dagster's own stale statuses on any graph, and rebuilds what is downstream."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg

from gamerec_assets.materialize_stale import (
    LOG_NAME,
    MODULE,
    instance_step_events,
    materialize_command,
    plan,
    run_with_progress,
)

ROOT = Path(__file__).resolve().parents[2]


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


# -- what a person sees (issue #26 §3, §4) ------------------------------------------------------------------------

TWO_ASSETS = """
import dagster as dg


@dg.asset
def catalogue() -> int:
    return 1


@dg.asset
def scores(catalogue: int) -> int:
    raise ValueError("games.csv: row 3 (line 4): game_id 'x' is not an integer")


defs = dg.Definitions(assets=[catalogue, scores])
"""


def test_a_run_shows_one_line_per_step_and_the_error_and_logs_the_rest(tmp_path: Path) -> None:
    """A real `dagster asset materialize`: on screen one line per step from the run's event log (built / FAILED
    with the asset's own error line), no colour codes, no DEBUG events; the log file has Dagster's whole output."""
    (tmp_path / "graph.py").write_text(TWO_ASSETS)
    (tmp_path / "dagster_home").mkdir()
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "asset", "materialize", "-f", str(tmp_path / "graph.py"), "--select", "*"]
    screen = io.StringIO()
    log = tmp_path / "logs" / LOG_NAME
    env = {"DAGSTER_HOME": str(tmp_path / "dagster_home"), "PYTHONWARNINGS": "ignore"}
    with _environment(env), dg.DagsterInstance.get() as instance:
        status = run_with_progress(command, log, instance_step_events(instance), {"catalogue", "scores"}, screen)
    shown = screen.getvalue().splitlines()
    assert status != 0
    assert re.fullmatch(r"  built   catalogue +\d+\.\d s", shown[0]), shown
    cause = "ValueError: games.csv: row 3 (line 4): game_id 'x' is not an integer"
    assert re.fullmatch(rf"  FAILED  scores after \d+\.\d s: {re.escape(cause)}", shown[1]), shown
    assert re.fullmatch(rf"gamerec: the run failed after \d+ s; the whole output: {re.escape(str(log))}", shown[2])
    assert len(shown) == 3
    assert "\x1b[" not in screen.getvalue() and "DEBUG" not in screen.getvalue()
    text = log.read_text()
    assert (" - DEBUG - " in text and "STEP_FAILURE" in text and "Traceback" in text) or "Stack Trace" in text
    assert "\x1b[" not in text


def test_a_bad_setting_stops_the_command_with_one_line(tmp_path: Path) -> None:
    """`make run` / `make materialize`: the check runs before Dagster is imported; exit 2 and no traceback."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env = {**keep, "PYTHONPATH": str(ROOT), "GAMEREC_HOME": str(tmp_path), "GAMEREC_CATALOG": "file:data/x.csv"}
    done = subprocess.run(
        [sys.executable, "-m", "gamerec_assets.materialize_stale", "--all", "--command", "make materialize"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"GAMEREC_CATALOG=file:data/x.csv: no such file (relative paths are resolved from {tmp_path}); "
        "set it to file:<path of a CSV or Parquet catalogue>"
    ]


class _environment:
    """This process's environment with `values` on top, restored afterwards (the child inherits it)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def __enter__(self) -> None:
        self.saved = {k: os.environ.get(k) for k in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc: object) -> None:
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
