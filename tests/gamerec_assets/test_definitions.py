import dagster as dg

from gamerec_assets.definitions import build_definitions
from gamerec_assets.resources import LocalArtifactsResource, S3ArtifactsResource
from tests.gamerec_assets.support import ASSETS


def test_definitions_load_with_lineage(gamerec_home) -> None:
    defs = build_definitions({"GAMEREC_HOME": str(gamerec_home)})
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == ASSETS
    parents = {
        k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys} for k in graph.get_all_asset_keys()
    }
    assert parents["game_features"] == {"raw_games"}
    assert parents["user_logs"] == {"game_features"}
    assert parents["item_similarity"] == {"user_logs", "game_features"}
    assert parents["production_model"] == {"item_similarity", "evaluation_report", "user_logs", "game_features"}
    assert "production_model" in parents["batch_recommendations"]
    checks = {c.name for c in graph.asset_check_keys}
    assert "item_similarity_beats_popularity" in checks and len(checks) >= 9
    schedule = defs.resolve_schedule_def("daily_refresh")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.execution_timezone == "UTC"


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
    assert prod["artifacts"].s3.endpoint_url == "http://127.0.0.1:9"
    assert prod["tables"].url.startswith("mysql+pymysql://")
