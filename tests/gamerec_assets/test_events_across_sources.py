"""Events met under another source than the one they were posted under (issue #26 §5), on the whole graph (tmp
GAMEREC_HOME, SQLite): the demo's simulated players post events, the deployment switches to the examples' catalogue
and interaction files, and `user_logs` leaves those events out and says so, then and after a model on the new
source is in production, while the new source's own events count."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from gamerec_assets import backends
from gamerec_assets.definitions import build_definitions
from gamerec_assets.recsys.feedback import check_event
from gamerec_assets.recsys.provenance import OTHER_SOURCE_COLUMN
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store import ModelRegistry
from gamerec_assets.store.event_store import EventStore

pytestmark = pytest.mark.integration  # the whole graph, run in process (tens of seconds a run)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST = {"ops": {"item_similarity": {"config": {"time_budget_s": 5.0}}}}
T0 = 1_796_000_000_000_000  # 2026-11-30, in microseconds


def materialize(env: dict[str, str], instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = build_definitions(env).resolve_implicit_global_asset_job_def()
    return job.execute_in_process(instance=instance, run_config=FAST, raise_on_error=False)


def logs_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("user_logs")]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_events_of_another_source_are_left_out_and_counted(gamerec_home: Path) -> None:
    demo = {"GAMEREC_HOME": str(gamerec_home)}  # the bundled RAWG games and simulated players
    own = {
        **demo,
        "GAMEREC_CATALOG": f"file:{EXAMPLES / 'catalogue.csv'}",
        "GAMEREC_INTERACTIONS": f"file:{EXAMPLES / 'interactions.csv'}",
    }
    storage = StorageSettings.from_env(demo)
    registry = ModelRegistry(backends.artifact_store(storage))
    tables = backends.table_store(storage)
    with dg.instance_for_test() as instance:
        assert materialize(demo, instance).success
        demo_version = registry.production()
        games = tables.read("game_features")["game_id"].to_list()
        # five simulated players like three RAWG games each, as the demo's page would post them
        demo_events = [
            check_event(user_id=str(u), game_id=g, type="like", value=None, timestamp=None, received_us=T0 + 10 * u + k)
            for u in range(5)
            for k, g in enumerate(games[u : u + 3])
        ]
        boundary = EventStore(tables).append(demo_events).last_seq

        # the operator switches the deployment to their own files
        switched = materialize(own, instance)
        meta = logs_metadata(switched)
        assert meta["source"] == own["GAMEREC_INTERACTIONS"]
        assert meta["events_other_source"] == 15 and meta["events_other_source_until_seq"] == boundary
        assert "another source" in meta["events_other_source_why"] and "simulated" in meta["events_other_source_why"]
        assert meta["event_rules"]["other_source"]["events"] == 15
        assert meta["events"] == 0 and meta["event_pairs_added"] == 0 and meta["events_until_seq"] == boundary
        logs = tables.read("user_logs")
        assert logs["user_id"].n_unique() == 60  # the file's players only: no simulated player joined them
        assert logs["timestamp_us"].null_count() == logs.height
        assert logs[OTHER_SOURCE_COLUMN].unique().to_list() == [boundary]

        # a model on the new source in production (promoted by the run or, where the gate asks for it, by hand)
        if registry.production() == demo_version:
            newest = max(v.version for v in registry.versions())
            registry.promote(newest, reason="operator: new source")
        manifest = registry.manifest(registry.production())
        assert manifest["data"]["interactions"] == own["GAMEREC_INTERACTIONS"]
        assert manifest["data"]["events"]["other_source_until_seq"] == boundary

        # the new source's players post events: they count, the demo's stay out (the manifest keeps the boundary)
        had = set(logs.filter(pl.col("user_id") == "alice")["game_id"].to_list())
        fresh = next(g for g in range(1001, 1013) if g not in had)
        own_events = [
            check_event(user_id="alice", game_id=fresh, type="like", value=None, timestamp=None, received_us=T0 + 900),
            check_event(user_id="newbie", game_id=1001, type="wishlist", value=None, timestamp=None, received_us=T0),
        ]
        last = EventStore(tables).append(own_events).last_seq
        later = materialize(own, instance)
        meta = logs_metadata(later)
        assert meta["events_other_source"] == 15 and meta["events_other_source_until_seq"] == boundary
        assert meta["events_other_source_why"].startswith("posted before this source was served")
        assert meta["events"] == 2 and meta["events_until_seq"] == last
        assert meta["events_by_type"] == {"like": 1, "wishlist": 1}
        rules = meta["event_rules"]
        assert rules["new_user"] == {"events": 1, "users": 1, "action": "added users"}
        assert rules["base_user"]["events"] == 1 and rules["unknown_game"]["events"] == 0
        assert (meta["new_user_events"], meta["new_event_users"]) == (1, 1)
        logs = tables.read("user_logs")
        liked = logs.filter((pl.col("user_id") == "alice") & (pl.col("game_id") == fresh))
        assert liked["weight"].to_list() == [2.0]
        assert logs.filter(pl.col("user_id") == "newbie")["weight"].to_list() == [0.5]
        assert set(logs["user_id"]).isdisjoint({str(u) for u in range(5)})
    tables.engine.dispose()
