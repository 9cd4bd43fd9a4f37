"""`python -m gamerec_assets.materialize_stale`: materialize only what Dagster calls missing or stale, then stop.

`make run` calls it before serving, so a second start on an unchanged checkout skips straight to serving instead of
rebuilding (and, with real data, replacing) every table and model. It asks the instance, through Dagster's own
stale-status resolver (what the UI's "Materialize stale and missing" and `RunRequest(stale_assets_only=True)` use),
for the status of every materializable asset of `gamerec_assets.definitions.defs`, so assets added to the graph
are covered without a list here. An asset is selected when it is missing or stale (a new upstream materialization,
a new or removed dependency, a new code version); everything downstream of a selected asset is selected too,
because rebuilding an asset gives it a new data version and so makes its children stale. The selection then runs
as one ordinary `dagster asset materialize` run (same executor, checks and run config as `make materialize`).

Every asset is rebuilt only when asked: `make materialize` (or `--all`) forces the whole graph, as the daily
schedule does. What Dagster cannot see is not looked at: a changed source setting (GAMEREC_CATALOG, ...) or edited
code of an asset without a `code_version` leaves it fresh; use `make materialize` then.

On screen: one line per finished step with its time, and for a failed step the error's own line (issue #26 §4).
Dagster's whole output (its DEBUG events, warnings, tracebacks) goes to GAMEREC_HOME/logs/materialize.log. Settings
that name files are checked before anything is imported (`settings.check_or_exit`): a bad one is one line, exit 2.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from gamerec_assets.settings import check_or_exit, log_dir

if TYPE_CHECKING:
    import dagster as dg

MODULE = "gamerec_assets.definitions"
LOG_NAME = "materialize.log"
# Dagster's console line: `<time> - dagster - <LEVEL> - <job> - <run id> - <pid> - <step> - <EVENT> - <message>`
_RUN_ID = re.compile(r"(?<= - )[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?= - )")
# An exception's own line (`module.Error: message`), Dagster's wrappers around the asset's error excepted
_ERROR_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Failure|Interrupt)\w*): (?P<message>.+)")
_WRAPPERS = ("dagster._core.errors.", "DagsterExecutionStepExecutionError", "dagster_shared.")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class AssetPlan:
    """One asset's verdict: `status` is Dagster's (`fresh`, `stale`, `missing`), `why` the root causes."""

    key: dg.AssetKey
    status: str
    why: tuple[str, ...]
    selected: bool

    def line(self) -> str:
        name = self.key.to_user_string()
        reason = f": {'; '.join(self.why)}" if self.why else ""
        verb = "materialize" if self.selected else "skip"
        return f"  {verb:<11} {name} ({self.status}{reason})"


def plan(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[AssetPlan]:
    """Every materializable asset in topological order, with whether it must be rebuilt and why."""
    # Dagster exports no public stale-status call outside sensors/schedules; this is the resolver its UI and
    # daemon use (dagster._scheduler.stale), built the way dagster's own test helper builds it.
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._time import get_current_datetime

    graph = defs.resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=graph,
    )
    resolver = CachingStaleStatusResolver(instance=instance, asset_graph=graph, loading_context=view)
    keys = [key for key in graph.toposorted_asset_keys if graph.get(key).is_materializable]
    plans: list[AssetPlan] = []
    chosen: set[dg.AssetKey] = set()
    for key in keys:
        status = resolver.get_status(key)
        why: list[str] = []
        if status == StaleStatus.STALE:
            for cause in resolver.get_stale_root_causes(key):
                subject = cause.asset_key.to_user_string()
                why.append(cause.reason if cause.asset_key == key else f"{subject} {cause.reason}")
        upstream = sorted(p.to_user_string() for p in graph.get(key).parent_keys if p in chosen)
        selected = status in (StaleStatus.STALE, StaleStatus.MISSING) or bool(upstream)
        if upstream and status == StaleStatus.FRESH:
            why.append(f"rebuilt upstream: {', '.join(upstream)}")
        if selected:
            chosen.add(key)
        plans.append(AssetPlan(key, status.value.lower(), tuple(why), selected))
    return plans


def materialize_command(keys: Sequence[dg.AssetKey | str], extra: Sequence[str]) -> list[str]:
    """The `dagster asset materialize` call of `make materialize` (`["*"]`: every asset), narrowed to `keys`."""
    dagster = Path(sys.executable).with_name("dagster")
    selection = ",".join(key if isinstance(key, str) else key.to_user_string() for key in keys)
    return [str(dagster), "asset", "materialize", "-m", MODULE, "--select", selection, *extra]


@dataclass(frozen=True)
class StepEvent:
    """A step's start, success or failure, from the run's event log (`cause`: a failure's own error line)."""

    step: str
    kind: str  # "start", "success", "failure"
    timestamp: float
    cause: str = ""


# Reads the run's step events after a cursor: (events, new cursor). The instance's event log, not the console: a
# step's console lines can be lost (wandb captures a step process's stderr while its run is open).
StepEvents = Callable[[str, str | None], tuple[list[StepEvent], str | None]]


def instance_step_events(instance: dg.DagsterInstance) -> StepEvents:
    """The run's STEP_START / STEP_SUCCESS / STEP_FAILURE records from `instance`'s event log."""
    import dagster as dg

    kinds = {
        dg.DagsterEventType.STEP_START: "start",
        dg.DagsterEventType.STEP_SUCCESS: "success",
        dg.DagsterEventType.STEP_FAILURE: "failure",
    }

    def read(run_id: str, cursor: str | None) -> tuple[list[StepEvent], str | None]:
        found = instance.get_records_for_run(run_id, cursor=cursor, of_type=set(kinds))
        events = []
        for record in found.records:
            entry = record.event_log_entry
            event = entry.dagster_event
            if event is None or entry.step_key is None:
                continue
            kind = kinds[event.event_type]
            error = event.step_failure_data.error if kind == "failure" and event.step_failure_data else None
            events.append(StepEvent(entry.step_key, kind, entry.timestamp, root_cause(error)))
        return events, found.cursor

    return read


def root_cause(error: object) -> str:
    """The deepest cause's first line, `Type: message` (Dagster's wrapper errors and module paths left out)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause  # type: ignore[attr-defined]
    if error is None:
        return ""
    message = (getattr(error, "message", "") or "").strip().splitlines()
    first = message[0] if message else getattr(error, "cls_name", "error")
    kind, sep, text = first.partition(": ")
    return f"{kind.rsplit('.', 1)[-1]}: {text}" if sep and " " not in kind else first


@dataclass
class Progress:
    """What the screen gets: one line per finished step with its time; a failed step with its error's own line."""

    out: TextIO
    assets: frozenset[str] = frozenset()  # step keys that build an asset (the others run asset checks)
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # error lines of the console (a load error before any step)
    run_id: str | None = None
    _starts: dict[str, float] = field(default_factory=dict)

    def console(self, line: str) -> None:
        """A line of Dagster's console output: the run's id, and exception lines for a failure before any step."""
        if self.run_id is None and (found := _RUN_ID.search(line)):
            self.run_id = found[0]
        cause = _ERROR_LINE.match(line.strip())
        if cause and not cause["type"].startswith(_WRAPPERS):
            self.errors.append(root_cause(_Line(line.strip())))

    def event(self, event: StepEvent) -> None:
        if event.kind == "start":
            self._starts[event.step] = event.timestamp
            return
        took = event.timestamp - self._starts.get(event.step, event.timestamp)
        if event.kind == "success":
            self.done += 1
            verb = "built" if event.step in self.assets or not self.assets else "checked"
            self.say(f"  {verb:<8}{event.step:<52} {took:5.1f} s")
        else:
            self.failed.append(event.step)
            self.say(f"  FAILED  {event.step} after {took:.1f} s: {event.cause or 'see the log'}")

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)


@dataclass(frozen=True)
class _Line:
    """A console error line in the shape `root_cause` reads."""

    message: str
    cause: None = None


def run_with_progress(
    command: Sequence[str],
    log_path: Path,
    events: StepEvents,
    assets: Iterable[str] = (),
    out: TextIO = sys.stdout,
) -> int:
    """Run `command` (a `dagster asset materialize`) with its whole output in `log_path`; on `out`, one line per step
    from the run's event log (`events`: `instance_step_events`). `assets`: the step keys that build assets
    (`step_keys`), so an asset check's step says "checked"."""
    progress = Progress(out, frozenset(assets))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S %z')}: {' '.join(command)}\n")
        log.flush()
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1
        )
        reader = threading.Thread(target=_copy_output, args=(proc, log, progress), daemon=True)
        reader.start()
        cursor: str | None = None
        try:
            while True:
                finished = proc.poll() is not None
                if finished:
                    reader.join()  # every console line read: the run id is known if there was a run
                if progress.run_id is not None:
                    found, cursor = events(progress.run_id, cursor)
                    for event in found:
                        progress.event(event)
                if finished:
                    break
                time.sleep(0.5)
        except KeyboardInterrupt:  # Ctrl-C: the run stops within seconds, not after its step
            _stop(proc)
            progress.say(f"gamerec: interrupted; the run's log: {_shown(log_path)}")
            return 130
    status = proc.returncode
    took = time.monotonic() - progress.started
    if status == 0:
        progress.say(f"gamerec: {progress.done} steps done in {took:.0f} s (Dagster's log: {_shown(log_path)})")
    else:
        if not progress.failed:  # failed before any step (the code location did not load, a bad run config)
            progress.say(f"  {progress.errors[-1] if progress.errors else 'dagster asset materialize failed'}")
        progress.say(f"gamerec: the run failed after {took:.0f} s; the whole output: {_shown(log_path)}")
    return status


def _copy_output(proc: subprocess.Popen[str], log: TextIO, progress: Progress) -> None:
    """The child's output into the log file (without colour codes), each line shown to `progress.console`."""
    assert proc.stdout is not None
    for line in iter(proc.stdout.readline, ""):
        line = _ANSI.sub("", line)
        log.write(line)
        progress.console(line)
    log.flush()


def step_keys(defs: dg.Definitions) -> set[str]:
    """The step key of each asset of `defs` (its key's path joined by `__`, as Dagster names an asset's op)."""
    return {"__".join(key.path) for key in defs.resolve_asset_graph().get_all_asset_keys()}


def _stop(proc: subprocess.Popen[str], grace: float = 3.0) -> None:
    """SIGINT reached the child too (one process group); give it `grace` seconds, then end it."""
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(1.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _shown(path: Path) -> str:
    """The path relative to the working directory when it is below it (shorter on screen)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gamerec_assets.materialize_stale", description=__doc__)
    parser.add_argument("--all", action="store_true", help="materialize every asset, fresh or not")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, materialize nothing")
    parser.add_argument("--command", default="make run", help="the command named in a suggested fix")
    parser.add_argument("dagster_args", nargs="*", help="passed to `dagster asset materialize` (after --), e.g. -c")
    args = parser.parse_args(argv)
    check_or_exit(args.command)

    import dagster as dg

    from gamerec_assets.definitions import defs

    if args.all:  # the whole graph, as `make materialize` and the daily schedule do: no plan to compute
        print("gamerec: materializing every asset", flush=True)
        with dg.DagsterInstance.get() as instance:
            command = materialize_command(["*"], args.dagster_args)
            return run_with_progress(command, log_dir() / LOG_NAME, instance_step_events(instance), step_keys(defs))
    with dg.DagsterInstance.get() as instance:
        plans = plan(defs, instance)
    todo = [p.key for p in plans if p.selected]
    why = ", ".join(f"{n} {s}" for s in ("missing", "stale") if (n := sum(p.status == s for p in plans if p.selected)))
    downstream = sum(p.status == "fresh" for p in plans if p.selected)
    detail = ", ".join(filter(None, [why, f"{downstream} downstream of them" if downstream else ""]))
    print(f"gamerec: {len(todo)} of {len(plans)} assets to materialize{f' ({detail})' if detail else ''}", flush=True)
    if args.dry_run:
        for p in plans:
            print(p.line(), flush=True)
    if not todo or args.dry_run:
        return 0
    with dg.DagsterInstance.get() as instance:
        command = materialize_command(todo, args.dagster_args)
        return run_with_progress(command, log_dir() / LOG_NAME, instance_step_events(instance), step_keys(defs))


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Nothing is left to clean up (the instance is closed, the run was another process): skip the interpreter's
    # teardown of dagster, numba and polars, which costs one to two seconds of `make run`'s start.
    os._exit(status)
