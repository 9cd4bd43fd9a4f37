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
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

MODULE = "gamerec_assets.definitions"


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


def materialize_command(keys: Sequence[dg.AssetKey], extra: Sequence[str]) -> list[str]:
    """The `dagster asset materialize` call `make materialize` makes, narrowed to `keys`."""
    dagster = Path(sys.executable).with_name("dagster")
    selection = ",".join(key.to_user_string() for key in keys)
    return [str(dagster), "asset", "materialize", "-m", MODULE, "--select", selection, *extra]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gamerec_assets.materialize_stale", description=__doc__)
    parser.add_argument("--all", action="store_true", help="materialize every asset, fresh or not")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, materialize nothing")
    parser.add_argument("dagster_args", nargs="*", help="passed to `dagster asset materialize` (after --), e.g. -c")
    args = parser.parse_args(argv)

    from gamerec_assets.definitions import defs

    with dg.DagsterInstance.get() as instance:
        plans = plan(defs, instance)
    if args.all:
        plans = [AssetPlan(p.key, p.status, ("--all",), True) for p in plans]
    todo = [p.key for p in plans if p.selected]
    print(f"gamerec: {len(todo)} of {len(plans)} assets to materialize", flush=True)
    for p in plans:
        print(p.line(), flush=True)
    if not todo or args.dry_run:
        return 0
    return subprocess.call(materialize_command(todo, args.dagster_args))


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Nothing is left to clean up (the instance is closed, the run was another process): skip the interpreter's
    # teardown of dagster, numba and polars, which costs one to two seconds of `make run`'s start.
    os._exit(status)
