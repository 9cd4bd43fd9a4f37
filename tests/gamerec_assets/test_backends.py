"""gamerec_assets.backends: which backend for which settings, and one S3 client policy for every caller.

Every place that builds a store (the Dagster resources and IO managers, the scale location, the API's holder, the
CLI) is asked here for what it built, and all must agree with the factory. The behaviour of that policy against a
frozen endpoint is in test_frozen_s3.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gamerec_api.holder import ModelHolder
from gamerec_assets import backends, cli
from gamerec_assets.resources.from_settings import build_resources
from gamerec_assets.scale.location import scale_resources
from gamerec_assets.settings import (
    DB_CONNECT_TIMEOUT_S,
    DB_READ_TIMEOUT_S,
    DB_WRITE_TIMEOUT_S,
    S3_CONNECT_TIMEOUT_S,
    S3_READ_TIMEOUT_S,
    Settings,
    StorageSettings,
)
from gamerec_assets.store import LocalArtifactStore, S3ArtifactStore, TableStore
from gamerec_assets.store.event_store import EventStore

ROOT = Path(__file__).resolve().parents[2]
MYSQL_URL = "mysql+pymysql://gamerec:secret@db.invalid:3306/gamerec"


def storage(home: Path, **env: str) -> StorageSettings:
    return StorageSettings.from_env({"GAMEREC_HOME": str(home), **env})


def policy(client: Any) -> tuple:
    """What decides how long a call to a hung endpoint can take, and where the client points."""
    config = client.meta.config
    return (client.meta.endpoint_url, config.connect_timeout, config.read_timeout, config.retries)


def test_embedded_default_sqlite_and_local_folder(tmp_path: Path) -> None:
    s = storage(tmp_path)
    assert backends.describe(s) == {
        "tables": "sqlite",
        "artifacts": "local",
        "artifact_store": (tmp_path / "artifacts").resolve().as_uri(),
    }
    tables = backends.table_store(s)
    assert isinstance(tables, TableStore) and tables.backend == "sqlite"
    assert tables.url == f"sqlite:///{tmp_path.resolve() / 'gamerec.db'}"
    artifacts = backends.artifact_store(s)
    assert isinstance(artifacts, LocalArtifactStore) and artifacts.root == (tmp_path / "artifacts").resolve()
    events = backends.event_store(s)
    assert isinstance(events, EventStore) and events.tables.url == tables.url
    assert backends.event_store(tables).tables is tables  # on a store already open: the same engine
    assert backends.registry(s).store.describe() == artifacts.describe()
    resources = build_resources(Settings.from_env({"GAMEREC_HOME": str(tmp_path)}))
    assert resources["tables"].spec() == backends.tables(s)
    assert resources["artifacts"].spec() == backends.artifacts(s)


def test_mysql_url_and_bucket_choose_mysql_and_s3(tmp_path: Path) -> None:
    s = storage(
        tmp_path,
        GAMEREC_MYSQL_URL=MYSQL_URL,
        GAMEREC_S3_BUCKET="models",
        GAMEREC_S3_PREFIX="prod",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
    )
    described = backends.describe(s)
    assert (described["tables"], described["artifacts"]) == ("mysql", "s3")
    assert described["artifact_store"] == "s3://models/prod at http://127.0.0.1:9"
    assert "3 attempts (standard retries), connect 5 s, read 30 s" in described["s3_client"]
    assert "secret" not in str(described)
    tables = backends.table_store(s)  # the engine connects lazily: nothing is reached here
    assert tables.backend == "mysql" and tables.url == MYSQL_URL
    store = backends.artifact_store(s)
    assert isinstance(store, S3ArtifactStore) and (store.bucket, store.prefix) == ("models", "prod")
    assert store.describe() == "s3://models/prod" and store.endpoint() == "http://127.0.0.1:9"
    resources = build_resources(Settings.from_env({"GAMEREC_HOME": str(tmp_path), **_s3_env(s)}))
    assert resources["artifacts"].spec() == backends.artifacts(s)


def _s3_env(s: StorageSettings) -> dict[str, str]:
    return {
        "GAMEREC_S3_BUCKET": s.s3_bucket or "",
        "GAMEREC_S3_PREFIX": s.s3_prefix,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }


def test_a_blank_bucket_or_url_keeps_the_embedded_default(tmp_path: Path) -> None:
    s = storage(tmp_path, GAMEREC_S3_BUCKET="  ", GAMEREC_MYSQL_URL="")
    assert (backends.tables(s).backend, backends.artifacts(s).backend) == ("sqlite", "local")


def test_timeouts_reach_every_store(tmp_path: Path) -> None:
    defaults = storage(tmp_path, GAMEREC_MYSQL_URL=MYSQL_URL)
    assert backends.table_store(defaults).timeouts == {
        "connect_timeout": DB_CONNECT_TIMEOUT_S,
        "read_timeout": DB_READ_TIMEOUT_S,
        "write_timeout": DB_WRITE_TIMEOUT_S,
    }
    assert (DB_CONNECT_TIMEOUT_S, DB_READ_TIMEOUT_S, DB_WRITE_TIMEOUT_S) == (10.0, 300.0, 300.0)  # README
    assert (S3_CONNECT_TIMEOUT_S, S3_READ_TIMEOUT_S) == (5.0, 30.0)  # README
    env = {"GAMEREC_HOME": str(tmp_path), "GAMEREC_MYSQL_URL": MYSQL_URL, "GAMEREC_DB_READ_TIMEOUT": "8"}
    env |= {"GAMEREC_DB_CONNECT_TIMEOUT": "2", "GAMEREC_DB_WRITE_TIMEOUT": "9"}
    settings = Settings.from_env(env)
    expected = {"connect_timeout": 2.0, "read_timeout": 8.0, "write_timeout": 9.0}
    assert backends.table_store(settings.storage).timeouts == expected
    assert build_resources(settings)["tables"].store().timeouts == expected
    assert scale_resources(settings)["tables"].store().timeouts == expected


def test_every_s3_client_has_the_one_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Dagster resources, the IO manager, the scale location, the API holder and the CLI: one policy, set
    explicitly, so neither boto's environment variables nor dagster-aws's 5 attempts change it."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("AWS_RETRY_MODE", "legacy")
    env = {
        "GAMEREC_HOME": str(tmp_path),
        "GAMEREC_S3_BUCKET": "models",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "GAMEREC_S3_READ_TIMEOUT": "7",
    }
    settings = Settings.from_env(env)
    expected = ("http://127.0.0.1:9", 5.0, 7.0, {"total_max_attempts": 3, "mode": "standard"})
    resources = build_resources(settings)
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the CLI reads this process's environment
    holder = ModelHolder(settings.storage, reload_interval=0, events_poll=0)
    clients = {
        "factory": backends.s3_client("http://127.0.0.1:9", read_timeout=7),
        "artifact store": backends.artifact_store(settings.storage).client,
        "dagster resource": resources["artifacts"].client(),
        "dagster resource store": resources["artifacts"].store().client,
        "artifact io manager": resources["artifact_io_manager"].artifacts.store().client,
        "scale location": scale_resources(settings)["artifacts"].store().client,
        "api holder": holder._open()[0].store.client,
        "cli": cli._registry().store.client,
    }
    assert {name: policy(client) for name, client in clients.items()} == dict.fromkeys(clients, expected)


def test_the_stated_bound_of_one_call() -> None:
    """attempts x (connect + an upload's 1 s wait for "100 Continue" + read) + the standard mode's backoff between
    them (at most 1 s, then 2 s): the README's figure for the defaults."""
    assert backends.S3_ATTEMPTS == 3
    assert backends.s3_call_bound(1, 1) == 3 * 3 + 3
    assert backends.s3_call_bound() == 3 * (5 + 1 + 30) + 3 == 111


def _package_sources() -> list[tuple[str, str]]:
    return [
        (str(path.relative_to(ROOT)), path.read_text())
        for package in ("gamerec_assets", "gamerec_api")
        for path in sorted((ROOT / package).rglob("*.py"))
    ]


def test_one_s3_client_builder_and_each_timeout_default_once() -> None:
    """The grep the issue asks for: one place builds S3 clients, and each timeout default is written once."""
    builders = [
        f"{name}: {line.strip()}"
        for name, text in _package_sources()
        for line in text.splitlines()
        if re.search(
            r"""(boto3|session)\.(client|resource)\(\s*["']s3|client\(\s*["']s3["']|construct_s3_client""", line
        )
    ]
    assert builders == [
        'gamerec_assets/backends.py: return session.client("s3", endpoint_url=endpoint_url, '
        "config=s3_client_config(connect_timeout, read_timeout))"
    ]
    assert [name for name, text in _package_sources() if re.search(r"^\s*(import boto3|from boto3)", text, re.M)] == [
        "gamerec_assets/backends.py"
    ]
    assert [name for name, text in _package_sources() if "dagster_aws" in text] == []  # no second S3 client
    # a timeout written as a number (a default, a keyword or a constant) appears in settings.py only
    literal = re.compile(r"(connect|read|write)_timeout\w*\s*(:\s*float\s*)?=\s*\d|_TIMEOUT_S\s*=\s*\d", re.I)
    written = [(name, line.strip()) for name, text in _package_sources() for line in text.splitlines()]
    assert sorted(line for name, line in written if literal.search(line)) == sorted(
        f"{n} = {v}"
        for n, v in [
            ("S3_CONNECT_TIMEOUT_S", 5.0),
            ("S3_READ_TIMEOUT_S", 30.0),
            ("DB_CONNECT_TIMEOUT_S", 10.0),
            ("DB_READ_TIMEOUT_S", 300.0),
            ("DB_WRITE_TIMEOUT_S", 300.0),
        ]
    )
    assert {name for name, line in written if literal.search(line)} == {"gamerec_assets/settings.py"}


def test_settings_only_describe() -> None:
    """StorageSettings has fields and a parser, nothing that builds a store or a client."""
    public = {n: v for n, v in vars(StorageSettings).items() if not n.startswith("_")}
    methods = {n for n, v in public.items() if callable(v) or isinstance(v, (property, classmethod))}
    assert methods == {"from_env"}
