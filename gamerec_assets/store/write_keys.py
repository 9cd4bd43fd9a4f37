"""The `write_keys` table: named, revocable credentials for `POST /events`, stored hashed.

A key is `grk_` + 43 characters of `secrets.token_urlsafe(32)` (256 random bits). Only its SHA-256 is stored, so
the table (or a backup of it) never yields a usable key; `create` prints the key once and nobody can show it again
(lost: revoke it and create another). A name is the key's identity in the metrics and logs: 1..64 characters of
letters, digits, `.`, `_`, `-`, unique forever (a revoked name is not reused, so a dashboard's series never
changes meaning). The table lives in the table store, beside `interaction_events`, so every API worker and the
`gamerec keys` CLI see the same keys; text columns compare exactly (`TableStore.key_type`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa

from gamerec_assets.store.table_store import TableStore, TableStoreError

WRITE_KEYS_TABLE = "write_keys"
KEY_PREFIX = "grk_"
NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")


class WriteKeyError(ValueError):
    """A key name that is malformed, taken or unknown: the message says which and what to do."""


@dataclass(frozen=True)
class WriteKeyInfo:
    name: str
    created_us: int
    revoked_us: int | None

    @property
    def active(self) -> bool:
        return self.revoked_us is None


def digest(key: str) -> str:
    """The stored form of a key: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise WriteKeyError(f"key name {name!r} must be 1..64 characters of letters, digits, '.', '_' or '-'")
    return name


def _table(meta: sa.MetaData, tables: TableStore) -> sa.Table:
    return sa.Table(
        WRITE_KEYS_TABLE,
        meta,
        sa.Column("name", tables.key_type(64), primary_key=True),
        sa.Column("key_sha256", tables.key_type(64), nullable=False, unique=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("revoked_us", sa.BigInteger(), nullable=True),
        **tables.table_options(),
    )


class WriteKeys:
    """`write_keys` in the database of `tables`."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables
        self._ph = tables.placeholder
        self._ready = False

    def describe(self) -> str:
        return f"{WRITE_KEYS_TABLE} in {self.tables.describe()}"

    def ensure(self) -> None:
        if self._ready:
            return
        try:
            self.tables.create(_table(sa.MetaData(), self.tables))
        except TableStoreError as exc:
            raise TableStoreError(f"{WRITE_KEYS_TABLE}: {exc}") from exc
        self._ready = True

    def create(self, name: str) -> str:
        """A new key named `name`, returned once (only its hash is stored)."""
        check_name(name)
        self.ensure()
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        sql = (
            f"{self.tables.insert_ignore} INTO {WRITE_KEYS_TABLE} (name, key_sha256, created_us) "
            f"VALUES ({self._ph}, {self._ph}, {self._ph})"
        )
        with self.tables.cursor(f"creating write key {name} in") as (raw, cursor):
            cursor.execute(sql, (name, digest(key), time.time_ns() // 1000))
            inserted = cursor.rowcount
            raw.commit()
        if inserted != 1:
            raise WriteKeyError(
                f"a write key named {name!r} exists (or existed: names are not reused); choose another name"
            )
        return key

    def list(self) -> list[WriteKeyInfo]:
        self.ensure()
        query = f"SELECT name, created_us, revoked_us FROM {WRITE_KEYS_TABLE}"
        with self.tables.cursor(f"reading {WRITE_KEYS_TABLE} from") as (raw, cursor):
            cursor.execute(query)
            rows = cursor.fetchall()
            raw.rollback()
        return sorted(
            (WriteKeyInfo(str(n), int(c), None if r is None else int(r)) for n, c, r in rows),
            key=lambda k: k.name.encode(),
        )

    def revoke(self, name: str) -> bool:
        """Revoke key `name`: True when it was active, False when it was revoked before; WriteKeyError if unknown."""
        check_name(name)
        self.ensure()
        sql = f"UPDATE {WRITE_KEYS_TABLE} SET revoked_us = {self._ph} WHERE name = {self._ph} AND revoked_us IS NULL"
        with self.tables.cursor(f"revoking write key {name} in") as (raw, cursor):
            cursor.execute(sql, (time.time_ns() // 1000, name))
            changed = cursor.rowcount
            if not changed:
                cursor.execute(f"SELECT name FROM {WRITE_KEYS_TABLE} WHERE name = {self._ph}", (name,))
                known = cursor.fetchone() is not None
            raw.commit()
        if not changed and not known:
            raise WriteKeyError(f"no write key named {name!r} (`gamerec keys list` shows them)")
        return bool(changed)

    def active(self) -> dict[str, str]:
        """{hex SHA-256: name} of the keys not revoked: what an API worker caches."""
        if not self._ready and not self.tables.exists(WRITE_KEYS_TABLE):
            return {}
        query = f"SELECT key_sha256, name FROM {WRITE_KEYS_TABLE} WHERE revoked_us IS NULL"
        with self.tables.cursor(f"reading {WRITE_KEYS_TABLE} from") as (raw, cursor):
            cursor.execute(query)
            rows = cursor.fetchall()
            raw.rollback()
        return {str(h): str(n) for h, n in rows}
