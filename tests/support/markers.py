"""The `integration` marker, applied by what a test uses rather than by hand.

A test is an integration test when it starts or reaches a server, a database, a worker, a server process or a
browser, or runs the whole system end to end (a whole-graph materialization, the API fuzzed against its schema).
`make test-fast` (`pytest -m "not integration"`) runs everything else. Three rules, so that a new test is
marked without its author's help:

1. at collection, every test whose fixtures (the whole closure) include a service fixture (`SERVICE_FIXTURES`);
2. at collection, every test parametrized with a service name (`SERVICE_PARAMS`: a fixture that asks for
   `mysql_db` or `s3_bucket` through `request.getfixturevalue` for its "mysql" or "s3" parameter);
3. tests that start servers or processes by themselves carry `pytestmark = pytest.mark.integration` or the
   decorator, and a guard (`check_item`) catches the rest when they run: a test that is not marked but used a
   service fixture (also one fetched by `getfixturevalue`) or made a support module start a server (`started`)
   fails when the run deselects integration tests, and warns otherwise.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import pytest

# Fixtures that start or reach a service (tests/conftest.py and the test packages' own conftests).
SERVICE_FIXTURES = frozenset(
    {
        "mysql_server",
        "mysql_db",
        "s3_server",
        "s3_bucket",
        "s3_fault_proxy",
        "rawg_server",
        "rabbitmq_broker",
        "celery_workers",
        "browser",
        "page_browser",
    }
)
# Parameter values that name a service backend.
SERVICE_PARAMS = frozenset({"mysql", "mariadb", "s3", "rabbitmq", "celery", "browser"})

INTEGRATION = "integration"


def needs_services(fixturenames: Iterable[str], params: dict[str, object]) -> bool:
    if SERVICE_FIXTURES.intersection(fixturenames):
        return True
    return any(isinstance(v, str) and v.lower() in SERVICE_PARAMS for v in params.values())


def mark_items(items: list[pytest.Item]) -> None:
    """Rules 1 and 2, at collection."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = dict(callspec.params) if callspec is not None else {}
        if needs_services(getattr(item, "fixturenames", ()), params):
            item.add_marker(pytest.mark.integration)


def check_item(item: pytest.Item, fixturenames: Iterable[str], started: list[str]) -> None:
    """Rule 3, after a test ran: what it used against its marker."""
    if item.get_closest_marker(INTEGRATION) is not None:
        return
    used = sorted(SERVICE_FIXTURES.intersection(fixturenames)) + started
    if not used:
        return
    message = (
        f"{item.nodeid} used {', '.join(used)} but is not marked `integration`: add "
        "`pytestmark = pytest.mark.integration` (or the decorator) so that `make test-fast` leaves it out"
    )
    if INTEGRATION in (item.config.getoption("markexpr") or ""):
        pytest.fail(message, pytrace=False)
    warnings.warn(message, pytest.PytestWarning, stacklevel=1)
