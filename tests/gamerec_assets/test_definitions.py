import dagster as dg

from gamerec_assets.definitions import build_definitions
from gamerec_assets.recsys import kernels
from gamerec_assets.recsys.rawg_pages import BUNDLED_SNAPSHOT
from gamerec_assets.resources import (
    ExperimentTracker,
    InteractionSources,
    LiveRawgClient,
    LocalArtifactsResource,
    S3ArtifactsResource,
    SnapshotRawgClient,
)
from tests.gamerec_assets.support import ASSETS


def test_definitions_load_with_lineage(gamerec_home) -> None:
    defs = build_definitions({"GAMEREC_HOME": str(gamerec_home)})
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == ASSETS | {"interaction_events"}  # observed (players' events), not materialized
    parents = {
        k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys} for k in graph.get_all_asset_keys()
    }
    assert parents["game_features"] == {"raw_games"}
    assert parents["user_logs"] == {"game_features", "interaction_events"}
    assert graph.get(dg.AssetKey("interaction_events")).is_observable
    assert parents["item_similarity"] == {"user_logs", "game_features"}
    assert parents["production_model"] == {"item_similarity", "evaluation_report", "user_logs", "game_features"}
    assert "production_model" in parents["batch_recommendations"]
    assert parents["online_evaluation"] == {"interaction_events"}  # issue 23: observes the events
    # the schedule and the events sensor run refresh_all, which materializes the online evaluation too
    refresh = defs.resolve_job_def("refresh_all")
    assert dg.AssetKey("online_evaluation") in refresh.asset_layer.executable_asset_keys
    checks = {c.name for c in graph.asset_check_keys}
    assert "item_similarity_beats_popularity" in checks and len(checks) >= 9
    schedule = defs.resolve_schedule_def("daily_refresh")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.execution_timezone == "UTC"
    sensor = defs.resolve_sensor_def("retrain_on_new_events")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and sensor.job_name == "refresh_all"
    assert sensor.minimum_interval_seconds == 30


def test_backends_are_chosen_by_environment(gamerec_home) -> None:
    local = build_definitions({"GAMEREC_HOME": str(gamerec_home)}).resources
    assert isinstance(local["artifacts"], LocalArtifactsResource)
    assert local["tables"].url.startswith("sqlite:///")
    prod = build_definitions(
        {
            "GAMEREC_HOME": str(gamerec_home),
            "GAMEREC_MYSQL_URL": "mysql+pymysql://root@127.0.0.1:3306/x",
            "GAMEREC_S3_BUCKET": "bucket",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        }
    ).resources
    assert isinstance(prod["artifacts"], S3ArtifactsResource)
    assert prod["artifacts"].endpoint_url == "http://127.0.0.1:9"
    assert prod["tables"].url.startswith("mysql+pymysql://")


def test_rawg_tracking_and_sources_come_from_settings(gamerec_home) -> None:
    offline = build_definitions({"GAMEREC_HOME": str(gamerec_home)}).resources
    assert isinstance(offline["rawg"], SnapshotRawgClient) and offline["rawg"].path == str(BUNDLED_SNAPSHOT)
    assert offline["tracker"] == ExperimentTracker(mode="offline", directory=str(gamerec_home.resolve()))
    assert offline["sources"] == InteractionSources(steam_path="")
    live = build_definitions(
        {
            "GAMEREC_HOME": str(gamerec_home),
            "RAWG_API_KEY": "not-to-be-stored",
            "RAWG_BASE_URL": "http://127.0.0.1:9/api",
            "GAMEREC_RAWG_MAX_PAGES": "2",
            "WANDB_API_KEY": "x",
            "GAMEREC_STEAM_PATH": "/data/steam.csv.gz",
        }
    ).resources
    assert isinstance(live["rawg"], LiveRawgClient)
    assert (live["rawg"].base_url, live["rawg"].max_pages) == ("http://127.0.0.1:9/api", 2)
    assert "not-to-be-stored" not in repr(live["rawg"])  # the key stays a dg.EnvVar until the run starts
    assert live["tracker"].mode == "online"
    assert live["sources"].steam_path == "/data/steam.csv.gz"


def test_online_evaluation_settings_reach_its_resource(gamerec_home) -> None:
    default = build_definitions({"GAMEREC_HOME": str(gamerec_home)}).resources["online"]
    assert (default.gate, default.alpha, default.retention_days) == (False, 0.05, 30.0)
    assert default.tables.url.startswith("sqlite:///")
    env = {
        "GAMEREC_HOME": str(gamerec_home),
        "GAMEREC_ONLINE_GATE": "true",
        "GAMEREC_ONLINE_ALPHA": "0.01",
        "GAMEREC_ONLINE_RETENTION_DAYS": "14",
    }
    online = build_definitions(env).resources["online"]
    assert (online.gate, online.alpha, online.retention_days) == (True, 0.01, 14.0)
    assert online.params().alpha == 0.01


def test_definitions_apply_the_thread_setting(gamerec_home) -> None:
    try:
        build_definitions({"GAMEREC_HOME": str(gamerec_home), "GAMEREC_THREADS": "1"})
        assert kernels.thread_count() == 1
    finally:
        kernels.set_threads(None)


def test_history_check_is_declared_by_its_asset(gamerec_home) -> None:
    """`user_logs` yields its own history check (it has the config); no check reads the instance's metadata."""
    graph = build_definitions({"GAMEREC_HOME": str(gamerec_home)}).resolve_asset_graph()
    user_logs = graph.get(dg.AssetKey("user_logs")).assets_def
    assert {key.name for key in user_logs.check_keys} == {"user_logs_history_lengths"}
