"""The retention of forgotten players' histories in older model versions (GAMEREC_FORGET_RETENTION_DAYS).

A published version is immutable: its `serving.npz` keeps the histories it was trained on, forgotten players'
included. The served versions (production, a running challenger) mask them at once (`gamerec_api.forgotten_mask`); the
others are kept for rollbacks, comparisons and lineage, but not past the retention: once a forget is older than
GAMEREC_FORGET_RETENTION_DAYS, every version of every registry in the artifact store whose `serving.npz` lists the
player (read from its user id blob, the rest of the version untouched) is deleted (`ModelRegistry.delete_version`),
unless it is served: that one stays, masked, until a newer version is promoted, and the next purge deletes it.
The sharded batch job's per-run objects (`scale/runs/<run id>/batch/`: each shard's histories and rows, Parquet,
kept after the run) are deleted by the same rule: a run whose shard histories list such a player.
`gamerec users forget` ends with this purge, and `gamerec users purge` runs it alone (daily, from cron).
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from gamerec_assets.recsys.model_artifact import MANIFEST, SERVING
from gamerec_assets.store.artifact_store import ArtifactNotFound, ArtifactStore
from gamerec_assets.store.forgotten_users import Forget
from gamerec_assets.store.registry import VERSION_PATTERN, ModelRegistry

DAY_US = 86_400 * 1_000_000
SCALE_RUNS = "scale/runs"  # `gamerec_assets.scale`'s per-run objects (storage does not import the Dagster layer)


@dataclass
class PurgeReport:
    """Versions deleted and kept (registry/version), and the forgets not due yet."""

    deleted: list[str] = field(default_factory=list)
    deleted_runs: list[str] = field(default_factory=list)  # scale/runs/<run id>/batch folders
    kept_served: list[str] = field(default_factory=list)  # served: masked, deleted by a purge after the next promote
    due: int = 0  # forgets past the retention
    pending: int = 0  # forgets within the retention
    next_due_us: int | None = None  # when the oldest pending forget passes the retention


def versions_with_serving(store: ArtifactStore) -> list[tuple[str, str]]:
    """(registry name, version) of every complete version in the store that carries serving data."""
    keys = set(store.list(""))
    out = []
    for key in sorted(keys):
        parts = key.split("/")
        complete = len(parts) == 3 and f"{parts[0]}/{parts[1]}/{MANIFEST}" in keys
        if complete and parts[2] == SERVING and VERSION_PATTERN.fullmatch(parts[1]):
            out.append((parts[0], parts[1]))
    return out


def version_users(store: ArtifactStore, name: str, version: str) -> set[bytes]:
    """The UTF-8 user ids in a version's serving.npz (only the id blob and offsets are read)."""
    try:
        raw = store.get(f"{name}/{version}/{SERVING}")
    except ArtifactNotFound:
        return set()
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        blob = npz["user_blob"].tobytes()
        offsets = npz["user_offsets"].tolist()
    return {blob[a:b] for a, b in itertools.pairwise(offsets)}


def batch_runs(store: ArtifactStore) -> dict[str, list[str]]:
    """{`scale/runs/<run id>/batch`: its object keys} of the sharded batch job's runs."""
    runs: dict[str, list[str]] = {}
    for key in store.list(f"{SCALE_RUNS}"):
        parts = key.split("/")
        if len(parts) == 5 and parts[3] == "batch":
            runs.setdefault("/".join(parts[:4]), []).append(key)
    return runs


def run_users(store: ArtifactStore, keys: list[str]) -> set[bytes]:
    """The user ids of a batch run's shard histories."""
    users: set[bytes] = set()
    for key in keys:
        if key.rsplit("/", 1)[-1].startswith("history-"):
            ids = pl.read_parquet(io.BytesIO(store.get(key)), columns=["user_id"])["user_id"].cast(pl.Utf8)
            users.update(u.encode() for u in ids.unique().to_list())
    return users


def purge(store: ArtifactStore, forgets: Iterable[Forget], retention_days: float, now_us: int) -> PurgeReport:
    """Delete the unserved versions that hold a player forgotten more than `retention_days` ago."""
    report = PurgeReport()
    limit = int(retention_days * DAY_US)
    due: set[bytes] = set()
    for f in forgets:
        if f.forgotten_us + limit <= now_us:
            due.add(f.user_id.encode())
            report.due += 1
        else:
            report.pending += 1
            passes = f.forgotten_us + limit
            report.next_due_us = passes if report.next_due_us is None else min(report.next_due_us, passes)
    if not due:
        return report
    registries: dict[str, ModelRegistry] = {}
    for name, version in versions_with_serving(store):
        if not due & version_users(store, name, version):
            continue
        registry = registries.setdefault(name, ModelRegistry(store, name))
        if version in (registry.production(), registry.challenger()):
            report.kept_served.append(f"{name}/{version}")
            continue
        registry.delete_version(version, reason="forgotten players' retention passed")
        report.deleted.append(f"{name}/{version}")
    for run, keys in batch_runs(store).items():
        if due & run_users(store, keys):
            for key in keys:
                store.delete(key)
            report.deleted_runs.append(run)
    return report
