"""Dagster instance storage chosen by the environment: MySQL (dagster-mysql) in production, SQLite otherwise.

The repo's dagster.yaml names this class. With DAGSTER_MYSQL_HOST set, runs, event logs and schedules go to MySQL
through dagster-mysql's own storage; without it they go to SQLite under GAMEREC_HOME. This disarms the trap of
Dagster reading ./dagster.yaml when DAGSTER_HOME is unset: a plain `dagster dev` in the repo still works offline.
"""

import os
from pathlib import Path
from typing import Any

from dagster._core.storage.base_storage import DagsterStorage
from dagster._serdes import ConfigurableClass, ConfigurableClassData

from gamerec_assets.store.settings import gamerec_home


def mysql_config_from_env(env: dict[str, str] | None = None) -> dict[str, Any] | None:
    env = dict(os.environ if env is None else env)
    host = env.get("DAGSTER_MYSQL_HOST")
    if not host:
        return None
    return {
        "mysql_db": {
            "hostname": host,
            "port": int(env.get("DAGSTER_MYSQL_PORT", "3306")),
            "username": env.get("DAGSTER_MYSQL_USER", "root"),
            "password": env.get("DAGSTER_MYSQL_PASSWORD", ""),
            "db_name": env.get("DAGSTER_MYSQL_DB", "dagster"),
        }
    }


class EnvironmentStorage(DagsterStorage, ConfigurableClass):
    """Never instantiated: `from_config_value` returns dagster-mysql's or Dagster's SQLite storage."""

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> Any:  # type: ignore[override]
        mysql = mysql_config_from_env()
        if mysql is not None:
            from dagster_mysql import DagsterMySQLStorage

            return DagsterMySQLStorage.from_config_value(inst_data, mysql)  # type: ignore[arg-type]
        from dagster._core.storage.sqlite_storage import DagsterSqliteStorage

        base_dir = Path(os.environ.get("DAGSTER_HOME") or gamerec_home() / "dagster_home") / "storage"
        base_dir.mkdir(parents=True, exist_ok=True)
        return DagsterSqliteStorage.from_config_value(inst_data, {"base_dir": str(base_dir)})
