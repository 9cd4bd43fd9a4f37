"""gamerec_assets.settings: parsing, defaults, errors, and that nothing else reads the environment."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gamerec_assets import settings as settings_module
from gamerec_assets.recsys import kernels
from gamerec_assets.settings import (
    DEFAULT_HOME,
    RAWG_DEFAULT_BASE_URL,
    VARIABLES,
    ApiSettings,
    ForgetSettings,
    IngestSettings,
    InstanceSettings,
    OnlineSettings,
    RawgSettings,
    ScaleSettings,
    Settings,
    SourceSettings,
    StorageSettings,
    ThreadSettings,
    TrackingSettings,
    export_to_children,
)

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_without_variables() -> None:
    s = Settings.from_env({})
    assert s.storage == StorageSettings(
        table_url=f"sqlite:///{DEFAULT_HOME.resolve() / 'gamerec.db'}",
        artifact_root=DEFAULT_HOME.resolve() / "artifacts",
        home=DEFAULT_HOME.resolve(),
    )
    assert (s.storage.s3_bucket, s.storage.s3_prefix, s.storage.s3_endpoint_url) == (None, "gamerec", None)
    assert (s.storage.s3_connect_timeout, s.storage.s3_read_timeout) == (5.0, 30.0)
    assert (s.storage.db_connect_timeout, s.storage.db_read_timeout, s.storage.db_write_timeout) == (10.0, 300.0, 300.0)
    assert s.rawg == RawgSettings(live=False, base_url=RAWG_DEFAULT_BASE_URL, max_pages=5, snapshot=None)
    assert s.tracking == TrackingSettings(mode="offline", directory=DEFAULT_HOME.resolve())
    assert s.threads == ThreadSettings(None)
    assert s.scale == ScaleSettings(blocks=8, executor="multiprocess")
    assert s.sources == SourceSettings(catalog="rawg", interactions="simulated", steam_path="")
    assert s.instance.dagster_home == DEFAULT_HOME.resolve() / "dagster_home"
    assert s.instance.mysql_config() is None
    assert s.instance.sqlite_dir == DEFAULT_HOME.resolve() / "dagster_home" / "storage"
    assert s.api == ApiSettings()
    assert (s.api.host, s.api.port, s.api.reload_interval, s.api.predict_cache) == ("127.0.0.1", 8000, 30.0, 10_000)
    assert s.api.admin_token is None and s.api.metrics_dir is None
    assert s.online == OnlineSettings(gate=False, alpha=0.05, retention_days=30.0)  # the online gate is off
    assert s.forget == ForgetSettings(retention_days=30.0)


def test_every_variable_is_parsed(tmp_path: Path) -> None:
    env = {
        "GAMEREC_HOME": str(tmp_path),
        "GAMEREC_MYSQL_URL": "mysql+pymysql://root@db:3306/gamerec",
        "GAMEREC_S3_BUCKET": "bucket",
        "GAMEREC_S3_PREFIX": "",
        "AWS_ENDPOINT_URL": "http://minio:9000",
        "GAMEREC_S3_CONNECT_TIMEOUT": "1.5",
        "GAMEREC_S3_READ_TIMEOUT": "2",
        "GAMEREC_DB_CONNECT_TIMEOUT": "3",
        "GAMEREC_DB_READ_TIMEOUT": "4",
        "GAMEREC_DB_WRITE_TIMEOUT": "5",
        "RAWG_API_KEY": "secret-rawg-key",
        "RAWG_BASE_URL": "http://127.0.0.1:9/api",
        "GAMEREC_RAWG_MAX_PAGES": "0",
        "GAMEREC_RAWG_SNAPSHOT": str(tmp_path / "snap.json.gz"),
        "WANDB_MODE": "Disabled",
        "WANDB_API_KEY": "secret-wandb-key",
        "GAMEREC_THREADS": "3",
        "GAMEREC_SCALE_BLOCKS": "4",
        "GAMEREC_SCALE_EXECUTOR": "k8s",
        "GAMEREC_CELERY_BROKER": "pyamqp://u:secret-broker-password@mq:5672//",
        "GAMEREC_CATALOG": "file:/data/games.parquet",
        "GAMEREC_INTERACTIONS": "FILE:/data/plays.csv",
        "GAMEREC_STEAM_PATH": "/data/steam-200k.csv.gz",
        "DAGSTER_HOME": str(tmp_path / "dh"),
        "DAGSTER_MYSQL_HOST": "db",
        "DAGSTER_MYSQL_PORT": "3307",
        "DAGSTER_MYSQL_USER": "dagster",
        "DAGSTER_MYSQL_PASSWORD": "secret-db-password",
        "DAGSTER_MYSQL_DB": "runs",
        "GAMEREC_API_HOST": "0.0.0.0",
        "GAMEREC_API_PORT": "9000",
        "GAMEREC_RELOAD_INTERVAL": "0.5",
        "GAMEREC_ADMIN_TOKEN": "secret-admin-token",
        "GAMEREC_PREDICT_CACHE": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "GAMEREC_EVENTS_POLL": "0.25",
        "DAGSTER_PORT": "3001",
        "GAMEREC_RETRAIN_EVENTS": "250",
        # poisoning guards (issue #22 item 2)
        "GAMEREC_RETRAIN_MIN_SOURCES": "3",
        "GAMEREC_EVENTS_BURST_WINDOW": "30",
        "GAMEREC_EVENTS_BURST_USERS": "20",
        "GAMEREC_TRUST_MIN_EVENTS": "4",
        "GAMEREC_TRUST_GAME_GROWTH": "0.5",
        "GAMEREC_TRUST_GAME_FLOOR": "7",
        "GAMEREC_EVENTS_OPEN": "true",
        "GAMEREC_EVENT_SECRET": "secret-event-secret",
        "GAMEREC_EVENT_TOKEN_TTL": "600",
        "GAMEREC_WRITE_KEYS_TTL": "2",
        "GAMEREC_EVENTS_KEY_RATE": "1000",
        "GAMEREC_EVENTS_KEY_BURST": "2000",
        "GAMEREC_EVENTS_USER_RATE": "5",
        "GAMEREC_EVENTS_USER_BURST": "50",
        "GAMEREC_IDEMPOTENCY_TTL": "3600",
        "GAMEREC_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
        "GAMEREC_MAX_HEADER_BYTES": "32768",
        "GAMEREC_MAX_HEADERS": "50",
        # online evaluation (issue 23 part 2)
        "GAMEREC_ONLINE_GATE": "on",
        "GAMEREC_ONLINE_ALPHA": "0.01",
        "GAMEREC_ONLINE_RETENTION_DAYS": "7",
        # forgetting a player (issue 25 part 5)
        "GAMEREC_FORGET_RETENTION_DAYS": "0.5",
    }
    assert set(env) == set(VARIABLES)  # this test covers every variable settings.py reads
    s = Settings.from_env(env)
    assert s.storage.table_url == env["GAMEREC_MYSQL_URL"] and s.storage.home == tmp_path.resolve()
    assert (s.storage.s3_bucket, s.storage.s3_prefix, s.storage.s3_endpoint_url) == ("bucket", "", "http://minio:9000")
    assert (s.storage.s3_connect_timeout, s.storage.s3_read_timeout) == (1.5, 2.0)
    assert (s.storage.db_connect_timeout, s.storage.db_read_timeout, s.storage.db_write_timeout) == (3.0, 4.0, 5.0)
    assert s.rawg == RawgSettings(True, "http://127.0.0.1:9/api", 0, tmp_path / "snap.json.gz")
    assert s.tracking == TrackingSettings("disabled", tmp_path.resolve())
    assert s.threads.threads == 3
    assert s.scale == ScaleSettings(4, "k8s", celery_broker_set=True)
    assert s.sources == SourceSettings("file:/data/games.parquet", "file:/data/plays.csv", "/data/steam-200k.csv.gz")
    assert s.instance.dagster_home == tmp_path / "dh"
    assert s.instance.mysql_config() == {
        "mysql_db": {
            "hostname": "db",
            "port": 3307,
            "username": "dagster",
            "password": "secret-db-password",
            "db_name": "runs",
        }
    }
    assert s.api == ApiSettings("0.0.0.0", 9000, 0.5, "secret-admin-token", 0, str(tmp_path / "metrics"), 0.25, 3001)
    assert s.retrain.min_events == 250
    assert (s.retrain.min_sources, s.retrain.burst_window_s, s.retrain.burst_new_users) == (3, 30.0, 20)
    assert (s.retrain.trust_min_events, s.retrain.trust_game_growth, s.retrain.trust_game_floor) == (4, 0.5, 7)
    assert s.ingest == IngestSettings(True, "secret-event-secret", 600.0, 2.0, 1000.0, 2000, 5.0, 50, 3600.0)
    assert (s.guards.trusted_proxies, s.guards.max_header_bytes, s.guards.max_headers) == (
        ("10.0.0.0/8", "127.0.0.1/32"),
        32768,
        50,
    )
    assert s.online == OnlineSettings(gate=True, alpha=0.01, retention_days=7.0)
    assert s.forget == ForgetSettings(retention_days=0.5)
    # Keys are never kept, and the secrets that are kept stay out of repr (logs, Dagster metadata).
    text = repr(s)
    for secret in (
        "secret-broker-password",
        "secret-rawg-key",
        "secret-wandb-key",
        "secret-db-password",
        "secret-admin-token",
        "secret-event-secret",
    ):
        assert secret not in text


def test_bad_timeouts_name_their_variable() -> None:
    """(That the timeouts reach the stores and every S3 client is tests/gamerec_assets/test_backends.py's.)"""
    with pytest.raises(ValueError, match="GAMEREC_DB_WRITE_TIMEOUT"):
        StorageSettings.from_env({"GAMEREC_DB_WRITE_TIMEOUT": "soon"})
    with pytest.raises(ValueError, match=re.escape("GAMEREC_S3_READ_TIMEOUT must be a number >= 0.1")):
        StorageSettings.from_env({"GAMEREC_S3_READ_TIMEOUT": "0"})


def test_online_tracking_with_a_key_unless_the_mode_says_otherwise() -> None:
    assert TrackingSettings.from_env({"WANDB_API_KEY": "k"}).mode == "online"
    assert TrackingSettings.from_env({"WANDB_API_KEY": "k", "WANDB_MODE": "offline"}).mode == "offline"
    assert TrackingSettings.from_env({"WANDB_MODE": ""}).mode == "offline"


@pytest.mark.parametrize(
    ("raw", "expected"), [("", None), ("all", None), ("AUTO", None), ("0", None), ("1", 1), ("3", 3), ("-2", 1)]
)
def test_thread_setting(raw: str, expected: int | None) -> None:
    assert ThreadSettings.from_env({"GAMEREC_THREADS": raw}).threads == expected


def test_thread_setting_reaches_the_kernels() -> None:
    try:
        ThreadSettings(2).apply()
        assert kernels.thread_count() == 2
        ThreadSettings(None).apply()
        assert kernels.thread_count() == kernels._cores()
    finally:
        kernels.set_threads(None)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("GAMEREC_THREADS", "many", "GAMEREC_THREADS must be an integer"),
        ("GAMEREC_SCALE_BLOCKS", "0", "GAMEREC_SCALE_BLOCKS must be an integer >= 1"),
        ("GAMEREC_SCALE_BLOCKS", "eight", "GAMEREC_SCALE_BLOCKS must be an integer"),
        ("GAMEREC_SCALE_EXECUTOR", "slurm", "GAMEREC_SCALE_EXECUTOR must be one of"),
        ("GAMEREC_RAWG_MAX_PAGES", "-1", "GAMEREC_RAWG_MAX_PAGES must be an integer >= 0"),
        ("GAMEREC_RAWG_MAX_PAGES", "five", "GAMEREC_RAWG_MAX_PAGES must be an integer"),
        ("WANDB_MODE", "loud", "WANDB_MODE must be one of"),
        ("DAGSTER_MYSQL_PORT", "mysql", "DAGSTER_MYSQL_PORT must be an integer"),
        ("GAMEREC_API_PORT", "70000", "GAMEREC_API_PORT must be an integer in 0..65535"),
        ("GAMEREC_RELOAD_INTERVAL", "soon", "GAMEREC_RELOAD_INTERVAL must be a number"),
        ("GAMEREC_RELOAD_INTERVAL", "-1", "GAMEREC_RELOAD_INTERVAL must be a number >= 0"),
        ("GAMEREC_RELOAD_INTERVAL", "nan", "GAMEREC_RELOAD_INTERVAL must be a number >= 0"),
        ("GAMEREC_PREDICT_CACHE", "-5", "GAMEREC_PREDICT_CACHE must be an integer >= 0"),
        ("GAMEREC_EVENTS_POLL", "-0.5", "GAMEREC_EVENTS_POLL must be a number >= 0"),
        ("GAMEREC_CATALOG", "kaggle", "GAMEREC_CATALOG must be 'rawg' or 'file:<path>'"),
        ("GAMEREC_CATALOG", "file:", "GAMEREC_CATALOG must be 'rawg' or 'file:<path>': 'file' needs a path"),
        ("GAMEREC_CATALOG", "simulated", "GAMEREC_CATALOG must be 'rawg' or 'file:<path>'"),
        ("GAMEREC_INTERACTIONS", "steam", "'steam' needs a path"),
        ("GAMEREC_INTERACTIONS", "rawg", "GAMEREC_INTERACTIONS must be 'simulated' or 'steam:<path>' or 'file:<path>'"),
        ("GAMEREC_INTERACTIONS", "simulated:x", "GAMEREC_INTERACTIONS must be"),
        ("GAMEREC_ONLINE_GATE", "maybe", "GAMEREC_ONLINE_GATE must be true or false"),
        ("GAMEREC_ONLINE_ALPHA", "0", "GAMEREC_ONLINE_ALPHA must be a number >= 1e-06"),
        ("GAMEREC_ONLINE_ALPHA", "0.5", "GAMEREC_ONLINE_ALPHA must be a number in [1e-06, 0.5)"),
        ("GAMEREC_ONLINE_RETENTION_DAYS", "0.5", "GAMEREC_ONLINE_RETENTION_DAYS must be a number >= 1.0"),
        ("GAMEREC_FORGET_RETENTION_DAYS", "-1", "GAMEREC_FORGET_RETENTION_DAYS must be a number >= 0"),
    ],
)
def test_bad_values_name_their_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        Settings.from_env({variable: value})
    assert repr(value) in str(err.value)


def test_section_parsers_take_any_mapping() -> None:
    env = {"GAMEREC_SCALE_BLOCKS": " 3 ", "GAMEREC_API_PORT": ""}  # blank means default; spaces are ignored
    assert ScaleSettings.from_env(env).blocks == 3
    assert ApiSettings.from_env(env).port == 8000
    assert InstanceSettings.from_env({"DAGSTER_MYSQL_HOST": "db"}).mysql_config()["mysql_db"]["port"] == 3306


def test_root_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GAMEREC_HOME", str(tmp_path))
    monkeypatch.setenv("GAMEREC_SCALE_BLOCKS", "2")
    s = Settings.from_env()
    assert s.storage.home == tmp_path.resolve() and s.scale.blocks == 2


def test_export_to_children_only_takes_settings_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAMEREC_RELOAD_INTERVAL", "30")  # restored after the test, whatever export_to_children sets
    with pytest.raises(ValueError, match="GAMEREC_RELOAD_INTERVALL"):
        export_to_children({"GAMEREC_RELOAD_INTERVALL": "1"})
    export_to_children({"GAMEREC_RELOAD_INTERVAL": "2.5"})
    assert Settings.from_env().api.reload_interval == 2.5


def test_variables_lists_what_settings_reads() -> None:
    """Every quoted variable name in settings.py is in VARIABLES, and every name in VARIABLES is read there."""
    source = Path(settings_module.__file__).read_text()
    quoted = set(re.findall(r'"((?:GAMEREC|RAWG|WANDB|DAGSTER|AWS|PROMETHEUS)_[A-Z0-9_]+)"', source))
    assert quoted == set(VARIABLES)
    assert len(VARIABLES) == len(set(VARIABLES))


def test_readme_configuration_table_lists_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}
    assert documented == set(VARIABLES)


def test_nothing_else_reads_the_environment() -> None:
    pattern = re.compile(r"os\.environ|os\.getenv|getenv\(|environ\[|from os import")
    offenders = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for package in ("gamerec_assets", "gamerec_api")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.resolve() != Path(settings_module.__file__).resolve()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_no_two_modules_share_a_file_name() -> None:
    names = [p.name for package in ("gamerec_assets", "gamerec_api") for p in (ROOT / package).rglob("*.py")]
    duplicates = sorted({n for n in names if names.count(n) > 1} - {"__init__.py"})
    assert duplicates == []


def test_source_settings_resolve_paths_keep_the_steam_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = SourceSettings.from_env({"GAMEREC_CATALOG": " file:games.csv ", "GAMEREC_INTERACTIONS": "steam:log.csv.gz"})
    assert s.catalog == f"file:{tmp_path / 'games.csv'}"
    assert s.interactions == f"steam:{tmp_path / 'log.csv.gz'}"
    assert s.steam_path == str(tmp_path / "log.csv.gz")  # what a run's bare `source: steam` reads
    # the deprecated alias alone never selects the source
    alias = SourceSettings.from_env({"GAMEREC_STEAM_PATH": "/data/steam.csv.gz"})
    assert (alias.interactions, alias.steam_path) == ("simulated", "/data/steam.csv.gz")
    assert SourceSettings.from_env({"GAMEREC_CATALOG": "RAWG", "GAMEREC_INTERACTIONS": ""}).catalog == "rawg"


# -- checks when a command starts (issue #26 §3) ------------------------------------------------------------------


def _check_cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return subprocess.run(
        [sys.executable, "-m", "gamerec_assets.settings", "--check", *args],
        cwd=cwd,
        env={**keep, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_missing_file_is_one_line_naming_variable_value_and_fix(tmp_path: Path) -> None:
    """The example of the issue: a relative path that does not exist, from the command line: exit 2, one line."""
    home = tmp_path / "home"
    done = _check_cli({"GAMEREC_HOME": str(home), "GAMEREC_CATALOG": "file:data/x.csv"}, tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"GAMEREC_CATALOG=file:data/x.csv: no such file (relative paths are resolved from {tmp_path}); "
        "set it to file:<path of a CSV or Parquet catalogue>\n"
    )
    # the details go to the debug log, not the screen
    assert "GAMEREC_CATALOG=file:data/x.csv" in (home / "logs" / "gamerec.log").read_text()


def test_a_path_without_its_kind_says_what_to_write(tmp_path: Path) -> None:
    done = _check_cli({"GAMEREC_HOME": str(tmp_path), "GAMEREC_CATALOG": "data/x.csv"}, tmp_path)
    assert done.returncode == 2
    assert (
        done.stderr
        == "GAMEREC_CATALOG=data/x.csv: a path needs its kind in front; write GAMEREC_CATALOG=file:data/x.csv\n"
    )
    # the same words where Dagster parses the settings (a code location, a run)
    both = "write GAMEREC_INTERACTIONS=file:plays.csv or GAMEREC_INTERACTIONS=steam:plays.csv"
    with pytest.raises(ValueError, match=re.escape(both)):
        SourceSettings.from_env({"GAMEREC_INTERACTIONS": "plays.csv"})
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("GAMEREC_CATALOG", "file:{dir}", "is a directory, not a file; set it to file:<path of a CSV or Parquet"),
        ("GAMEREC_CATALOG", "file:{dir}/games.xlsx", "unknown format (expected .csv, .csv.gz, .txt, .tsv, .parquet"),
        ("GAMEREC_INTERACTIONS", "file:{dir}/none.csv", "no such file; set it to file:<path of a CSV or Parquet inter"),
        ("GAMEREC_INTERACTIONS", "steam:{dir}/none.csv", "no such file; set it to steam:<path of the steam-200k CSV>"),
        ("GAMEREC_STEAM_PATH", "{dir}/none.csv", "no such file; set it to the path of the steam-200k CSV"),
        ("GAMEREC_RAWG_SNAPSHOT", "{dir}/none.json.gz", "no such file; set it to the path of a RAWG snapshot"),
        ("GAMEREC_HOME", "{dir}/games.xlsx", "is a file, not a directory; set it to a writable directory"),
        ("DAGSTER_HOME", "{dir}/games.xlsx", "is a file, not a directory; set it to a writable directory"),
        ("PROMETHEUS_MULTIPROC_DIR", "{dir}/none", "no such directory; create it (mkdir -p) or unset it"),
        ("GAMEREC_API_PORT", "http", "GAMEREC_API_PORT must be an integer"),
    ],
)
def test_every_setting_that_names_a_file_is_checked(tmp_path: Path, variable: str, value: str, problem: str) -> None:
    (tmp_path / "games.xlsx").write_text("x")
    (tmp_path / "games.csv").write_text("game_id,name\n1,a\n")
    value = value.format(dir=tmp_path)
    lines = settings_module.check({"GAMEREC_HOME": str(tmp_path / "h"), variable: value})
    assert len(lines) == 1, lines
    assert (
        lines[0].startswith(f"{variable}={value}: ") or lines[0].startswith(f"{variable} must")
    ) and problem in lines[0]


def test_good_settings_pass_the_check(tmp_path: Path) -> None:
    (tmp_path / "games.csv").write_text("game_id,name\n1,a\n")
    (tmp_path / "plays.parquet").write_bytes(b"PAR1")
    env = {
        "GAMEREC_HOME": str(tmp_path / "new" / "home"),  # created later: its parent is writable
        "GAMEREC_CATALOG": f"file:{tmp_path / 'games.csv'}",
        "GAMEREC_INTERACTIONS": f"file:{tmp_path / 'plays.parquet'}",
    }
    assert settings_module.check(env) == []
    assert settings_module.check({}) == []
    exports = settings_module.source_exports({**env, "GAMEREC_CATALOG": "file:games.csv", "DAGSTER_HOME": "dh"})
    assert exports["GAMEREC_CATALOG"] == f"file:{Path.cwd() / 'games.csv'}"  # absolute, for `dagster dev`'s cwd
    assert exports["DAGSTER_HOME"] == str(Path.cwd() / "dh")


def test_mysql_without_its_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SQLite-only install has no PyMySQL ([mysql] extra): the check and the table store both name the extra."""
    from gamerec_assets.store.table_store import TableStore, TableStoreError

    url = "mysql+pymysql://root:secret-pw@127.0.0.1:3306/gamerec"
    assert settings_module.check({"GAMEREC_MYSQL_URL": url}) == []  # installed here (make install-dev)
    monkeypatch.setitem(sys.modules, "pymysql", None)  # what a venv without the extra gives: the import fails
    lines = settings_module.check({"GAMEREC_MYSQL_URL": url})
    assert lines == [
        "GAMEREC_MYSQL_URL=mysql+pymysql://root:***@127.0.0.1:3306/gamerec: its driver pymysql is not installed; "
        "install the MySQL extra: .venv/bin/pip install -e '.[mysql]' (make install adds it when GAMEREC_MYSQL_URL "
        "is set)"
    ]
    missing = "the driver pymysql is not installed; install the MySQL extra"
    with pytest.raises(TableStoreError, match=re.escape(missing)) as err:
        TableStore(url)
    assert "secret-pw" not in str(err.value)


def test_mysql_extra_holds_the_mysql_only_packages() -> None:
    """The run-only install stays lean: PyMySQL, connectorx and pyarrow only in `[mysql]` (and so in dev)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=\[ ]", spec, maxsplit=1)[0].lower() for spec in project["dependencies"]}
    assert names.isdisjoint({"pymysql", "connectorx", "pyarrow", "pandas"})
    mysql = {re.split(r"[<>=\[ ]", spec, maxsplit=1)[0].lower() for spec in project["optional-dependencies"]["mysql"]}
    assert mysql == {"pymysql", "connectorx", "pyarrow"}
    assert "dagster-mysql" in names  # Dagster's storage on MySQL stays installed (it brings mysql-connector-python)
