"""The fixtures for the running services (MariaDB, moto's S3 server, RabbitMQ and Celery workers, local fakes of
remote services) and the `integration` marker. The machinery lives in `tests/support/`; each fixture here is a few
lines over it.

Service tests fail (never skip) when CI=true and the service is missing (`unavailable`). Every test that uses one
of these fixtures is marked `integration` at collection (`tests.support.markers`), so `make test-fast`
(`pytest -m "not integration"`) leaves it out without the test saying so.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import markers, started
from tests.support.availability import IN_CI, steam_log_path, unavailable
from tests.support.celery_workers import CeleryWorker, CeleryWorkers, rabbitmq_broker_url
from tests.support.fault_proxy import FaultProxy
from tests.support.mariadb import MYSQL_HOST, MYSQL_PORT, fresh_database
from tests.support.moto_s3 import moto_server, new_bucket
from tests.support.net import free_port
from tests.support.rawg_replay import RawgReplayServer

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

# Importable from here as before (tests written against this module): the helpers now in tests/support.
__all__ = ["IN_CI", "MYSQL_HOST", "MYSQL_PORT", "CeleryWorker", "CeleryWorkers", "free_port", "unavailable"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    markers.mark_items(items)


@pytest.fixture(autouse=True)
def _integration_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test: a test that used a service without the `integration` marker is reported (see markers)."""
    mark = started.count()
    yield
    markers.check_item(request.node, request.fixturenames, started.since(mark))


@pytest.fixture(scope="session")
def steam_log() -> Path:
    """The Kaggle steam-200k log; a failure, not a skip, under CI=true when it cannot be found."""
    return steam_log_path()


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[dict[str, object]]:
    """A fresh database on the local MariaDB for this test session, dropped at the end."""
    with fresh_database(connect_timeout=5) as info:
        yield info


@pytest.fixture
def mysql_db(mysql_server: dict[str, object]) -> Iterator[dict[str, object]]:
    """A fresh database per test (table names repeat across tests)."""
    with fresh_database(f"{mysql_server['db']}_{secrets.token_hex(3)}") as info:
        yield info


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's standalone S3 server on a free loopback port, reached over real HTTP."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_server: str) -> dict[str, str]:
    return new_bucket(s3_server)


@pytest.fixture
def s3_fault_proxy(s3_server: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(s3_server)
    try:
        yield proxy
    finally:
        proxy.thawed.set()
        proxy.close()


@pytest.fixture
def gamerec_home(tmp_path: Path) -> Path:
    home = tmp_path / "gamerec_home"
    home.mkdir()
    return home


@pytest.fixture
def rawg_server() -> Iterator[RawgReplayServer]:
    server = RawgReplayServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def rabbitmq_broker() -> str:
    """The local RabbitMQ's URL (its test vhost created when missing); a failure, not a skip, under CI=true."""
    return rabbitmq_broker_url()


@pytest.fixture
def celery_workers(rabbitmq_broker: str, tmp_path: Path) -> Iterator[CeleryWorkers]:
    """Celery workers of the scale location, started by the test itself as separate processes."""
    workers = CeleryWorkers(rabbitmq_broker, tmp_path)
    try:
        yield workers
    finally:
        workers.stop_all()
