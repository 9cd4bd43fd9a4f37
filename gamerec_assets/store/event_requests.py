"""The `event_requests` table: the recorded outcome of each `POST /events` that carried an `Idempotency-Key`.

A retry must get the first attempt's outcome whether or not that attempt committed, so the outcome is written in
the events' own transaction (`EventStore.append(..., hook=RecordHook)`): first a claim of (scope, key) (an INSERT
that also serialises concurrent attempts with one key: the second waits on the first's row lock, then finds the
key taken), then the events, then the answer's status and body, then one COMMIT. Either all of it is stored, and
a retry finds the record and replays it, or none of it, and a retry is processed afresh. The key is scoped by the
credential (`scope`: a write key's name, an answer's request id, or the open door), so two clients cannot read or
block each other's outcomes. `fingerprint` (SHA-256 of the request body) catches a key reused for another body.

Records older than GAMEREC_IDEMPOTENCY_TTL (a day) are purged; text columns compare exactly (`key_type`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from gamerec_assets.recsys.feedback import now_us
from gamerec_assets.store.event_store import AppendResult
from gamerec_assets.store.table_store import TableStore, TableStoreError

REQUESTS_TABLE = "event_requests"
MAX_KEY = 128  # characters of an Idempotency-Key


class AlreadyRecorded(Exception):
    """The (scope, key) was claimed by an attempt that committed: nothing of this one is stored; replay that one's."""


@dataclass(frozen=True)
class Recorded:
    fingerprint: str
    status: int
    body: bytes


def _table(meta: sa.MetaData, tables: TableStore) -> sa.Table:
    return sa.Table(
        REQUESTS_TABLE,
        meta,
        sa.Column("scope", tables.key_type(96), primary_key=True),
        sa.Column("idem_key", tables.key_type(MAX_KEY), primary_key=True),
        sa.Column("fingerprint", tables.key_type(64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", tables.text_type(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        **tables.table_options(),
    )


class RecordHook:
    """Claims (scope, key) first in the append's transaction and records the outcome last (`AppendHook`)."""

    def __init__(
        self,
        log: RequestLog,
        scope: str,
        key: str,
        fingerprint: str,
        answer: Callable[[AppendResult], tuple[int, bytes]],
    ) -> None:
        self.log, self.scope, self.key, self.fingerprint, self.answer = log, scope, key, fingerprint, answer
        self.outcome: tuple[int, bytes] | None = None

    def before(self, cursor: Any) -> None:
        ph = self.log.tables.placeholder
        cursor.execute(
            f"{self.log.tables.insert_ignore} INTO {REQUESTS_TABLE} (scope, idem_key, fingerprint, status, body, "
            f"created_us) VALUES ({ph}, {ph}, {ph}, 0, '', {ph})",
            (self.scope, self.key, self.fingerprint, now_us()),
        )
        if cursor.rowcount != 1:
            raise AlreadyRecorded(self.key)

    def after(self, cursor: Any, result: AppendResult) -> None:
        status, body = self.answer(result)
        ph = self.log.tables.placeholder
        cursor.execute(
            f"UPDATE {REQUESTS_TABLE} SET status = {ph}, body = {ph} WHERE scope = {ph} AND idem_key = {ph}",
            (status, body.decode(), self.scope, self.key),
        )
        self.outcome = (status, body)


class RequestLog:
    """`event_requests` in the database of `tables`."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables
        self._ready = False

    def ensure(self) -> None:
        if self._ready:
            return
        try:
            self.tables.create(_table(sa.MetaData(), self.tables))
        except TableStoreError as exc:
            raise TableStoreError(f"{REQUESTS_TABLE}: {exc}") from exc
        self._ready = True

    def hook(
        self, scope: str, key: str, fingerprint: str, answer: Callable[[AppendResult], tuple[int, bytes]]
    ) -> RecordHook:
        self.ensure()
        return RecordHook(self, scope, key, fingerprint, answer)

    def lookup(self, scope: str, key: str) -> Recorded | None:
        ph = self.tables.placeholder
        query = f"SELECT fingerprint, status, body FROM {REQUESTS_TABLE} WHERE scope = {ph} AND idem_key = {ph}"
        with self.tables.cursor(f"reading {REQUESTS_TABLE} from") as (raw, cursor):
            cursor.execute(query, (scope, key))
            row = cursor.fetchone()
            raw.rollback()
        return None if row is None else Recorded(str(row[0]), int(row[1]), str(row[2]).encode())

    def purge(self, older_than_us: int) -> int:
        """Forget the outcomes recorded before `older_than_us`; the number forgotten."""
        self.ensure()
        sql = f"DELETE FROM {REQUESTS_TABLE} WHERE created_us < {self.tables.placeholder}"
        with self.tables.cursor(f"purging {REQUESTS_TABLE} in") as (raw, cursor):
            cursor.execute(sql, (int(older_than_us),))
            n = cursor.rowcount
            raw.commit()
        return int(n)
