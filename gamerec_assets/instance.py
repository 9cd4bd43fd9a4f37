"""Dagster instance storage chosen by the settings: MySQL (dagster-mysql) in production, SQLite otherwise.

The repo's dagster.yaml names this class. With DAGSTER_MYSQL_HOST set, runs, event logs and schedules go to MySQL
through dagster-mysql's own storage; without it they go to SQLite under DAGSTER_HOME (default
GAMEREC_HOME/dagster_home). This disarms the trap of Dagster reading ./dagster.yaml when DAGSTER_HOME is unset: a
plain `dagster dev` in the repo still works offline.
"""

from typing import Any

from dagster._core.storage.base_storage import DagsterStorage
from dagster._serdes import ConfigurableClass, ConfigurableClassData

from gamerec_assets.settings import Settings


class EnvironmentStorage(DagsterStorage, ConfigurableClass):
    """Never instantiated: `from_config_value` returns dagster-mysql's or Dagster's SQLite storage."""

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> Any:  # type: ignore[override]
        settings = Settings.from_env().instance
        mysql = settings.mysql_config()
        if mysql is not None:
            from dagster_mysql import DagsterMySQLStorage

            return DagsterMySQLStorage.from_config_value(inst_data, mysql)  # type: ignore[arg-type]
        from dagster._core.storage.sqlite_storage import DagsterSqliteStorage

        base_dir = settings.sqlite_dir
        base_dir.mkdir(parents=True, exist_ok=True)
        return DagsterSqliteStorage.from_config_value(inst_data, {"base_dir": str(base_dir)})
