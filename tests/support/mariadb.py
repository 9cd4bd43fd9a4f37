"""Throwaway databases on the local MariaDB (root, no password): each session and each test gets its own."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support import started
from tests.support.availability import unavailable

MYSQL_HOST = os.environ.get("GAMEREC_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("GAMEREC_TEST_MYSQL_PORT", "3306"))


def _connect(timeout: int) -> Any:
    import pymysql

    try:
        return pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", password="", connect_timeout=timeout)
    except pymysql.MySQLError as exc:
        unavailable(f"MariaDB at {MYSQL_HOST}:{MYSQL_PORT}", exc)


def database_info(name: str) -> dict[str, object]:
    return {
        "host": MYSQL_HOST,
        "port": MYSQL_PORT,
        "db": name,
        "url": f"mysql+pymysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{name}?charset=utf8mb4",
    }


@contextmanager
def fresh_database(name: str | None = None, connect_timeout: int = 10) -> Iterator[dict[str, object]]:
    """CREATE a database (a random `gamerec_test_…` name unless given), yield its host/port/db/url, DROP it."""
    conn = _connect(connect_timeout)
    name = name or f"gamerec_test_{secrets.token_hex(4)}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    started.record(f"MariaDB database {name}")
    try:
        yield database_info(name)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()
