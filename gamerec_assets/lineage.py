"""Which version of an upstream asset a step reads: the one its own run produced, else the latest materialization.

A global "newest" pointer (`<asset>/_latest.json`) is wrong as soon as two runs overlap: run B publishes between
A's `item_similarity` and A's gate, and A evaluates and promotes B's model while A's own is never evaluated. The
Dagster event log already knows which version each run produced, since the IO managers put `version` (and, for
tables, `content_fingerprint`) in their output metadata, so every lookup here asks the instance, one query each:

- the upstream was materialized by this run (or, on a re-execution, by the run Dagster resolves as its source):
  that run's `ASSET_MATERIALIZATION` events (`get_records_for_run`, a handful per run), filtered by asset key;
- otherwise (e.g. `--select evaluation_report`): the asset's latest materialization event, from the asset index.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

# What Dagster names the run of the artificial upstream context it builds for an asset the run did not produce
from dagster._core.execution.context.output import RUN_ID_PLACEHOLDER

VERSION = "version"


@dataclass(frozen=True)
class Recorded:
    """One upstream materialization as the event log holds it: its metadata, and where it was found."""

    asset_key: dg.AssetKey
    metadata: dict[str, object]
    source: str  # "run <id>" or "latest materialization": said in logs and errors

    def text(self, key: str) -> str | None:
        """The metadata entry `key` as text (None when absent): versions and fingerprints are stored as text."""
        value = self.metadata.get(key)
        value = getattr(value, "value", value)
        return None if value is None else str(value)

    def version(self) -> str:
        """The version this materialization recorded; a Failure when it recorded none (nothing safe to read)."""
        version = self.text(VERSION)
        if not version:
            raise dg.Failure(
                description=f"{self.asset_key.to_user_string()}: its {self.source} records no '{VERSION}': "
                "rematerialize it"
            )
        return version


def run_materialization(instance: dg.DagsterInstance, run_id: str, asset_key: dg.AssetKey) -> Recorded | None:
    """The last materialization of `asset_key` in run `run_id`, in one event-log query (None: not in that run)."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, ascending=False
    ).records
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is not None and materialization.asset_key == asset_key:
            return Recorded(asset_key, dict(materialization.metadata), f"materialization in run {run_id}")
    return None


def latest_materialization(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> Recorded | None:
    """The latest materialization of `asset_key` in the instance, in one query (None: never materialized)."""
    entry = instance.get_latest_materialization_event(asset_key)
    materialization = entry.asset_materialization if entry is not None else None
    if materialization is None:
        return None
    return Recorded(asset_key, dict(materialization.metadata), f"latest materialization (run {entry.run_id})")


def source_run_id(context: dg.InputContext) -> str | None:
    """The run that produced this input's upstream output, when a run of this job did (Dagster resolves it, also
    across re-executions); None when the input is loaded as an asset the run did not materialize."""
    upstream = context.upstream_output
    if upstream is None:
        return None
    try:
        run_id = upstream.run_id
    except dg.DagsterInvariantViolationError:
        return None
    return None if run_id == RUN_ID_PLACEHOLDER else run_id


def upstream_materialization(context: dg.InputContext) -> Recorded | None:
    """The materialization this input must read: its own run's upstream step, else the latest event.

    When a run produced the upstream, its own event must be there: missing it is an inconsistency (Failure), never
    a silent fallback to whatever is newest. None only when the asset was never materialized in this instance.
    """
    key = context.asset_key
    run_id = source_run_id(context)
    if run_id is not None:
        recorded = run_materialization(context.instance, run_id, key)
        if recorded is None:
            raise dg.Failure(
                description=f"{key.to_user_string()}: run {run_id} produced this input but recorded no "
                "materialization of it; refusing to guess which version to read"
            )
        return recorded
    return latest_materialization(context.instance, key)


def step_materialization(context: dg.AssetExecutionContext, asset_key: dg.AssetKey) -> Recorded | None:
    """For a non-input dependency (`deps=`): this run's materialization of `asset_key`, else the latest one."""
    recorded = run_materialization(context.instance, context.run_id, asset_key)
    return recorded if recorded is not None else latest_materialization(context.instance, asset_key)
