"""The retention of forgotten players in older model versions, on a local folder and on S3 (moto): past
GAMEREC_FORGET_RETENTION_DAYS, `gamerec users purge` (and `users forget`) deletes every unserved version whose
serving data lists a forgotten player, in every registry of the store, and leaves the served ones (masked) and the
versions without the player."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest

from gamerec_api.demo import fit_artifact, snapshot_features, with_sources
from gamerec_assets import backends
from gamerec_assets.recsys import SimulationParams, simulate_user_logs
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store.forget_retention import DAY_US, purge, version_users
from gamerec_assets.store.forgotten_users import Forget, ForgottenUsers
from gamerec_assets.store.registry import RegistryError
from tests.gamerec_assets.test_models_cli import cli_registry, gamerec_main

__all__ = ["cli_registry"]


@pytest.fixture(scope="module")
def logs() -> pl.DataFrame:
    return with_sources(simulate_user_logs(snapshot_features(), SimulationParams(n_users=12, seed=1)), "simulated")


def _publish(registry, logs: pl.DataFrame) -> str:  # type: ignore[no-untyped-def]
    return registry.publish(fit_artifact(snapshot_features(), logs))


def test_purge_deletes_unserved_versions_holding_players_forgotten_past_the_retention(cli_registry, logs) -> None:
    registry, _ = cli_registry
    store = registry.store
    gone = pl.col("user_id").cast(pl.Utf8) == "3"
    old, served, without = _publish(registry, logs), _publish(registry, logs), _publish(registry, logs.filter(~gone))
    registry.promote(old, reason="t")
    registry.promote(served, reason="t")  # production; `old` is in its history
    other = type(registry)(store, "other_model")  # another registry in the same store is purged too
    other_old = _publish(other, logs)
    assert b"3" in version_users(store, registry.name, old) and b"3" not in version_users(store, registry.name, without)

    forget = Forget(1, "3", 0, forgotten_us=1_000)
    not_yet = purge(store, [forget], retention_days=2, now_us=1_000 + DAY_US)
    assert not_yet.deleted == [] and not_yet.pending == 1 and not_yet.next_due_us == 1_000 + 2 * DAY_US
    report = purge(store, [forget], retention_days=2, now_us=1_000 + 2 * DAY_US)
    assert sorted(report.deleted) == sorted([f"{registry.name}/{old}", f"other_model/{other_old}"])
    assert report.kept_served == [f"{registry.name}/{served}"] and report.due == 1
    assert [v.version for v in registry.versions()] == sorted([served, without])
    assert not store.list(f"{registry.name}/{old}") and not store.list(f"other_model/{other_old}")
    assert registry.alias()["previous"] == []  # a rollback never targets a deleted version
    with pytest.raises(RegistryError, match="served"):
        registry.delete_version(served, reason="t")

    # after a newer version is promoted, the next purge deletes the formerly served one
    registry.promote(without, reason="t")
    assert purge(store, [forget], 2, 1_000 + 3 * DAY_US).deleted == [f"{registry.name}/{served}"]


def test_cli_forget_then_purge(cli_registry, logs) -> None:
    registry, env = cli_registry
    version = _publish(registry, logs)
    registry.promote(_publish(registry, logs.filter(pl.col("user_id").cast(pl.Utf8) != "5")), reason="t")
    out = gamerec_main({**env, "GAMEREC_FORGET_RETENTION_DAYS": "1"}, "users", "forget", "5", "--json")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["user_id"] == "5" and body["versions"]["deleted"] == [] and body["versions"]["pending"] == 1
    out = gamerec_main({**env, "GAMEREC_FORGET_RETENTION_DAYS": "0"}, "users", "purge")
    assert out.returncode == 0 and f"deleted model version {registry.name}/{version}" in out.stdout, out.stderr
    assert version not in [v.version for v in registry.versions()]
    tables = backends.table_store(StorageSettings.from_env(env))
    assert [f.user_id for f in ForgottenUsers(tables).since()] == ["5"]
    out = gamerec_main({**env, "GAMEREC_FORGET_RETENTION_DAYS": "0"}, "users", "purge")
    assert "no model version holds a player forgotten past the retention (1 forgets past it)" in out.stdout


def test_purge_deletes_sharded_batch_runs_holding_a_forgotten_player(cli_registry) -> None:
    registry, _ = cli_registry
    store = registry.store

    def parquet(frame: pl.DataFrame) -> bytes:
        buf = io.BytesIO()
        frame.write_parquet(buf)
        return buf.getvalue()

    store.put("scale/runs/r1/batch/history-000.parquet", parquet(pl.DataFrame({"user_id": [3, 4], "game_id": [1, 2]})))
    store.put("scale/runs/r1/batch/chunk-000.parquet", parquet(pl.DataFrame({"user_id": [3], "rank": [1]})))
    store.put("scale/runs/r2/batch/history-000.parquet", parquet(pl.DataFrame({"user_id": ["4"], "game_id": [1]})))
    store.put("scale/runs/r1/plan_blocks/spec.npz", b"item-item only")
    report = purge(store, [Forget(1, "3", 0, forgotten_us=0)], retention_days=0, now_us=1)
    assert report.deleted_runs == ["scale/runs/r1/batch"]
    assert store.list("scale") == ["scale/runs/r1/plan_blocks/spec.npz", "scale/runs/r2/batch/history-000.parquet"]
