"""The production configuration for real: MariaDB tables, S3 artifacts (moto server over HTTP), and Dagster's
own instance storage on MariaDB through the repo's dagster.yaml, driven by the standard CLI."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pymysql
import pytest

from gamerec_assets import backends
from gamerec_assets.definitions import build_definitions
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store import ModelRegistry

pytestmark = pytest.mark.integration  # the `dagster` CLI, MariaDB and S3

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def production_env(tmp_path: Path, mysql_server: dict, mysql_db: dict, s3_bucket: dict) -> dict[str, str]:
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    return {
        "GAMEREC_HOME": str(tmp_path / "gamerec_home"),
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_MYSQL_HOST": str(mysql_server["host"]),
        "DAGSTER_MYSQL_PORT": str(mysql_server["port"]),
        "DAGSTER_MYSQL_USER": "root",
        "DAGSTER_MYSQL_PASSWORD": "",
        "DAGSTER_MYSQL_DB": str(mysql_server["db"]),
        "GAMEREC_MYSQL_URL": str(mysql_db["url"]),
        "GAMEREC_S3_BUCKET": s3_bucket["bucket"],
        "GAMEREC_S3_PREFIX": "gamerec",
        "AWS_ENDPOINT_URL": s3_bucket["endpoint"],
    }


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_whole_graph_on_mariadb_s3_and_mysql_instance_storage(
    tmp_path: Path, mysql_server: dict, mysql_db: dict, s3_bucket: dict
) -> None:
    env = production_env(tmp_path, mysql_server, mysql_db, s3_bucket)
    done = run([str(BIN / "dagster"), "asset", "materialize", "-m", "gamerec_assets.definitions", "--select", "*"], env)
    assert done.returncode == 0, done.stderr[-3000:]

    # autocommit: a failed assertion keeps this connection alive in the traceback, and an open read transaction
    # would hold a metadata lock that blocks the fixture's DROP DATABASE forever
    conn = pymysql.connect(
        host=mysql_server["host"], port=mysql_server["port"], user="root", password="", autocommit=True
    )
    with conn, conn.cursor() as cur:
        cur.execute(f"SELECT run_id, status FROM `{mysql_server['db']}`.runs")
        runs = cur.fetchall()
        assert any(status == "SUCCESS" for _, status in runs)
        cur.execute(f"SELECT COUNT(DISTINCT user_id), COUNT(*) FROM `{mysql_db['db']}`.batch_recommendations")
        assert cur.fetchone() == (1000, 10_000)
        cur.execute(f"SHOW INDEX FROM `{mysql_db['db']}`.batch_recommendations WHERE Key_name = 'PRIMARY'")
        assert [row[4] for row in cur.fetchall()] == ["user_id", "rank"]
        cur.execute(
            "SELECT table_collation FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (mysql_db["db"], "game_features"),
        )
        assert cur.fetchone()[0].startswith("utf8mb4")

    s3 = backends.s3_client(s3_bucket["endpoint"])
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket["bucket"])["Contents"]]
    assert any(k.startswith("gamerec/raw_games/20") and k.endswith("page-0001.json.gz") for k in keys)
    assert any(k.startswith("gamerec/item_similarity/v") and k.endswith("/manifest.json") for k in keys)
    assert "gamerec/item_similarity/_aliases/production.json" in keys
    assert not (Path(env["GAMEREC_HOME"]) / "artifacts").exists()  # nothing went to the local folder

    registry = ModelRegistry(backends.artifact_store(StorageSettings.from_env(env)))
    first = registry.production()
    listed = run([str(BIN / "gamerec"), "models", "list"], env)
    assert listed.returncode == 0 and f"* {first}" in listed.stdout

    # A second materialization (same asset code, in process) publishes a new version; then roll back by CLI.
    with dg.instance_for_test() as instance:
        job = build_definitions(env).resolve_implicit_global_asset_job_def()
        assert job.execute_in_process(instance=instance).success
    second = registry.production()
    assert second != first
    rolled = run([str(BIN / "gamerec"), "models", "rollback"], env)
    assert rolled.returncode == 0, rolled.stderr
    assert registry.production() == first
    bad = run([str(BIN / "gamerec"), "models", "promote", "v20000101T000000-abcdef"], env)
    assert bad.returncode == 2 and "does not exist" in bad.stderr
    assert registry.production() == first


def test_cli_on_the_embedded_default(tmp_path: Path) -> None:
    env = {"GAMEREC_HOME": str(tmp_path / "home")}
    (tmp_path / "dagster_home").mkdir()
    done = run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "gamerec_assets.definitions", "--select", "*"],
        {**env, "DAGSTER_HOME": str(tmp_path / "dagster_home")},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    registry = ModelRegistry(backends.artifact_store(StorageSettings.from_env(env)))
    assert registry.production() is not None
    nothing = run([str(BIN / "gamerec"), "models", "rollback"], env)
    assert nothing.returncode == 2 and "nothing to roll back" in nothing.stderr
    v1 = registry.production()
    promoted = run([str(BIN / "gamerec"), "models", "promote", v1], env)
    assert promoted.returncode == 0 and v1 in promoted.stdout
