"""The retraining loop on the whole graph (tmp GAMEREC_HOME, SQLite): a refresh, then players' events appended to
the table database, the sensor asking for a refresh, and a refresh whose model was trained on those events."""

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from gamerec_assets import backends
from gamerec_assets.definitions import build_definitions
from gamerec_assets.recsys.feedback import check_event, events_until_seq
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store import ModelRegistry
from gamerec_assets.store.event_store import EventStore

pytestmark = pytest.mark.integration  # the whole graph, run in process (tens of seconds a run)

FAST = {"item_similarity": {"config": {"strategy": "fixed"}}}  # selection is not what this tests
T0 = 1_796_000_000_000_000  # 2026-11-30, in microseconds


def refresh(defs: dg.Definitions, instance: dg.DagsterInstance, run_config: dict | None = None):
    ops = {**(run_config or {}).get("ops", {}), **FAST}
    return defs.resolve_job_def("refresh_all").execute_in_process(instance=instance, run_config={"ops": ops})


def history_of(artifact, user: str) -> set[int]:
    serving = artifact.serving
    row = next(r for r in range(serving.n_users) if serving.user_id(r) == user)
    lo, hi = serving.hist_indptr[row : row + 2]
    return set(np.asarray(artifact.item_ids)[serving.hist_indices[lo:hi]].tolist())


def test_events_reach_the_next_model_through_the_sensor(gamerec_home: Path) -> None:
    env = {"GAMEREC_HOME": str(gamerec_home), "GAMEREC_RETRAIN_EVENTS": "100"}
    defs = build_definitions(env)
    storage = StorageSettings.from_env(env)
    registry = ModelRegistry(backends.artifact_store(storage))
    sensor = defs.resolve_sensor_def("retrain_on_new_events")
    with dg.instance_for_test() as instance:
        assert refresh(defs, instance).success
        first = registry.production()
        assert events_until_seq(registry.manifest(first)) == 0

        tables = backends.table_store(storage)
        logs = tables.read("user_logs")
        games = tables.read("game_features")["game_id"].to_list()
        new_games = games[:3]
        events = [
            check_event(user_id="newcomer", game_id=g, type="play", value=2.0, timestamp=None, received_us=T0 + i)
            for i, g in enumerate(new_games)
        ]
        # 40 known users like 3 games each they did not have (each user other games: no game gains more players
        # than the per-game cap allows), a minute apart (a stream from many arrival windows, not a burst the
        # sensor would discount): the temporal protocol's data
        for n, user in enumerate(logs["user_id"].unique().sort().head(40).to_list()):
            had = set(logs.filter(pl.col("user_id") == user)["game_id"].to_list())
            fresh = [g for g in games[10 + 3 * n :] if g not in had][:3]
            at = T0 + 60_000_000 * (1 + n)
            events += [
                check_event(user_id=user, game_id=g, type="like", value=None, timestamp=None, received_us=at + k)
                for k, g in enumerate(fresh)
            ]
        stored = EventStore(tables).append(events)
        assert stored.n_accepted == len(events) == 123

        resources = {key: defs.resources[key] for key in ("tables", "artifacts")}
        with dg.build_sensor_context(instance=instance, resources=resources) as context:  # closes its resources
            tick = sensor(context)
        (request,) = tick.run_requests
        second = refresh(defs, instance, request.run_config)
        assert second.success

        meta = {
            e.asset_key.to_user_string(): e.materialization.metadata for e in second.get_asset_materialization_events()
        }
        observed = [e for e in second.all_events if e.event_type_value == "ASSET_OBSERVATION"]
        assert observed[0].asset_key == dg.AssetKey("interaction_events")
        assert observed[0].event_specific_data.asset_observation.tags["dagster/data_version"] == str(stored.last_seq)
        logs_meta = meta["user_logs"]
        assert logs_meta["events"].value == 123 and logs_meta["events_until_seq"].value == stored.last_seq
        assert logs_meta["event_pairs_added"].value == 123 and logs_meta["source"].value == "simulated"
        # the newcomer (3 events, after the production model's data) waits; the known users' likes train
        assert logs_meta["trust_held_back_pairs_by_reason"].value == {"new_user": 3}
        record = instance.get_latest_materialization_event(dg.AssetKey("user_logs"))
        assert record.asset_materialization.tags["dagster/input_data_version/interaction_events"] == str(
            stored.last_seq
        )

        version = str(meta["item_similarity"]["version"].value)
        manifest = registry.manifest(version)
        assert manifest["data"]["events"]["until_seq"] == stored.last_seq and manifest["data"]["events"]["count"] == 123
        assert manifest["data"]["interactions"] == "simulated"  # events are no change of source
        assert history_of(registry.load(version), "newcomer") == set(new_games)
        assert set(tables.read("user_logs").filter(pl.col("user_id") == "newcomer")["game_id"]) == set(new_games)

        report = meta["evaluation_report"]
        assert report["temporal_test_users"].value >= 5, report.get("temporal_protocol")
        assert 0 <= report["temporal_ndcg@10"].value <= 1

        # the production model (if promoted) or the request already made: no second refresh for the same events
        with dg.build_sensor_context(instance=instance, resources=resources, cursor=tick.cursor) as context:
            again = sensor(context)
        assert not again.run_requests and "0 new events" in again.skip_reason.skip_message
