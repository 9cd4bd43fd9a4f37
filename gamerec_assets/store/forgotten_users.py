"""Forgetting a player (`gamerec users forget ID`, `DELETE /admin/users/{id}`): the `forgotten_users` table and the
erasure of a user's rows from every table of the table database.

Order, so that a forget that fails halfway is safe and can simply be run again:
1. record the forget in `forgotten_users` (committed first): every API worker polls this table by `seq` beside
   its events tail and masks the user at once (no trained history, no batch rows, not listed, the realtime overlay
   dropped); `user_logs` and `batch_recommendations` leave the user out of their next materialization (also the
   rows of a base file source, which this erasure cannot edit). `until_seq` is the events table's newest seq at the
   forget: events of the user up to it are the forgotten ones (a later event is the player coming back);
2. delete the user's `interaction_events` up to `until_seq` (one transaction);
3. delete the user's rows from every other table with a `user_id` column (published tables such as `user_logs`,
   `batch_recommendations`, their `__previous` copies, `experiment_answers`): one transaction per table, the
   table's recorded row count adjusted in the same transaction. Tables being written at that moment (`__staging_`)
   are left alone: the run that writes them read the forgotten list, or its output is masked and the next forget
   run or materialization removes the rows;
4. mark the forget as erased (with what was deleted where).
Each step is idempotent (a DELETE of rows that are gone deletes nothing); running the forget again records it
again with a new `seq` and the newest `until_seq` (workers re-apply it), then erases whatever is left.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl
import sqlalchemy as sa

from gamerec_assets.recsys.feedback import now_us
from gamerec_assets.store.event_store import EVENTS_TABLE, EventStore
from gamerec_assets.store.table_store import SCHEMA_TABLE, TableStore, TableStoreError

FORGOTTEN_TABLE = "forgotten_users"
USER_COLUMN = "user_id"
_INTEGER_SQL = ("INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "MEDIUMINT")
_MAX_INT64 = 2**63 - 1
SCHEMA = {"seq": pl.Int64, "user_id": pl.Utf8, "until_seq": pl.Int64, "forgotten_us": pl.Int64}


def _table(meta: sa.MetaData, tables: TableStore) -> sa.Table:
    return sa.Table(
        FORGOTTEN_TABLE,
        meta,
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("user_id", tables.key_type(), nullable=False, unique=True),
        sa.Column("until_seq", sa.BigInteger(), nullable=False),
        sa.Column("forgotten_us", sa.BigInteger(), nullable=False),
        sa.Column("erased_us", sa.BigInteger(), nullable=True),
        sa.Column("erased", tables.text_type(), nullable=True),
        sqlite_autoincrement=True,
        **tables.table_options(),
    )


@dataclass(frozen=True)
class Forget:
    """One recorded forget: its `seq` (workers poll by it), the user, and the events seq it covers."""

    seq: int
    user_id: str
    until_seq: int
    forgotten_us: int


@dataclass
class ForgetReport:
    """What a forget did: rows deleted per table (tables with none left out)."""

    user_id: str
    seq: int
    until_seq: int
    deleted: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


class ForgottenUsers:
    """`forgotten_users` in the database of `tables`, and the erasure (`forget`)."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables
        self._ready = False
        self._ph = tables.placeholder

    def ensure(self) -> None:
        if self._ready:
            return
        try:
            self.tables.create(_table(sa.MetaData(), self.tables))
        except TableStoreError as exc:
            raise TableStoreError(f"{FORGOTTEN_TABLE}: {exc}") from exc
        self._ready = True

    def exists(self) -> bool:
        return self._ready or self.tables.exists(FORGOTTEN_TABLE)

    # -- recording -----------------------------------------------------------------------------------------------

    def record(self, user_id: str, until_seq: int) -> Forget:
        """Record (or record again, with a new seq) that `user_id` is forgotten, covering events up to
        `until_seq`; committed when this returns."""
        self.ensure()
        ph, at = self._ph, now_us()
        with self.tables.cursor(f"recording a forget in {FORGOTTEN_TABLE} of") as (raw, cursor):
            cursor.execute(f"DELETE FROM {FORGOTTEN_TABLE} WHERE user_id = {ph}", (user_id,))
            cursor.execute(
                f"INSERT INTO {FORGOTTEN_TABLE} (user_id, until_seq, forgotten_us) VALUES ({ph}, {ph}, {ph})",
                (user_id, int(until_seq), at),
            )
            cursor.execute(f"SELECT seq FROM {FORGOTTEN_TABLE} WHERE user_id = {ph}", (user_id,))
            seq = int(cursor.fetchone()[0])
            raw.commit()
        return Forget(seq, user_id, int(until_seq), at)

    def mark_erased(self, report: ForgetReport) -> None:
        ph = self._ph
        with self.tables.cursor(f"marking a forget erased in {FORGOTTEN_TABLE} of") as (raw, cursor):
            cursor.execute(
                f"UPDATE {FORGOTTEN_TABLE} SET erased_us = {ph}, erased = {ph} WHERE user_id = {ph} AND seq = {ph}",
                (now_us(), json.dumps(report.deleted, sort_keys=True), report.user_id, report.seq),
            )
            raw.commit()

    # -- reading -------------------------------------------------------------------------------------------------

    def since(self, after_seq: int = 0) -> list[Forget]:
        """The forgets recorded after `after_seq`, in seq order (what a worker's poll applies); [] without a table."""
        if not self.exists():
            return []
        query = (
            f"SELECT seq, user_id, until_seq, forgotten_us FROM {FORGOTTEN_TABLE} WHERE seq > {self._ph} ORDER BY seq"
        )
        with self.tables.cursor(f"reading {FORGOTTEN_TABLE} from") as (raw, cursor):
            cursor.execute(query, (int(after_seq),))
            rows = cursor.fetchall()
            raw.rollback()
        return [Forget(int(s), str(u), int(t), int(f)) for s, u, t, f in rows]

    def frame(self) -> pl.DataFrame:
        """Every forgotten user (user_id, until_seq, ...): what `user_logs` and the batch job leave out."""
        forgets = self.since(0)
        return pl.DataFrame(
            {
                "seq": [f.seq for f in forgets],
                "user_id": [f.user_id for f in forgets],
                "until_seq": [f.until_seq for f in forgets],
                "forgotten_us": [f.forgotten_us for f in forgets],
            },
            schema=SCHEMA,
        )

    def erased(self, user_id: str) -> dict[str, int] | None:
        """What the completed erasure of `user_id` deleted per table; None when not (yet) erased."""
        if not self.exists():
            return None
        with self.tables.cursor(f"reading {FORGOTTEN_TABLE} from") as (raw, cursor):
            cursor.execute(f"SELECT erased FROM {FORGOTTEN_TABLE} WHERE user_id = {self._ph}", (user_id,))
            row = cursor.fetchone()
            raw.rollback()
        return None if row is None or row[0] is None else dict(json.loads(row[0]))

    # -- erasing -------------------------------------------------------------------------------------------------

    def forget(self, user_id: str) -> ForgetReport:
        """Forget `user_id` (the module's steps, in order); what was deleted where."""
        if not user_id:
            raise ValueError("user_id must not be empty")
        events = EventStore(self.tables)
        forget = self.record(user_id, events.last_seq())
        report = ForgetReport(user_id, forget.seq, forget.until_seq)
        if events.exists():
            n = self._delete_events(user_id, forget.until_seq)
            if n:
                report.deleted[EVENTS_TABLE] = n
        for table, integer in self.user_tables().items():
            value: str | int = user_id
            if integer:
                if not (user_id.isascii() and user_id.isdecimal() and int(user_id) <= _MAX_INT64):
                    continue  # an integer column cannot hold this user
                value = int(user_id)
            n = self._delete(table, value, count=True)
            if n:
                report.deleted[table] = n
        self.mark_erased(report)
        return report

    def user_tables(self) -> Mapping[str, bool]:
        """{table: its user_id column is an integer} of every table with a `user_id` column, but the events, the
        forgotten list itself and tables being written (`__staging_`)."""
        skip = {EVENTS_TABLE, FORGOTTEN_TABLE}
        out: dict[str, bool] = {}
        with self.tables.errors("listing the tables of"):
            inspector = sa.inspect(self.tables.engine)
            for name in sorted(inspector.get_table_names()):
                if name in skip or "__staging_" in name:
                    continue
                for col in inspector.get_columns(name):
                    if col["name"] == USER_COLUMN:
                        kind = str(col["type"]).upper().split("(")[0]
                        out[name] = kind in _INTEGER_SQL
        return out

    def _delete_events(self, user_id: str, until_seq: int, chunk: int = 1_000) -> int:
        """The user's events up to `until_seq`, deleted by primary key in one transaction: the seqs are found by a
        plain (non-locking) read first, because `interaction_events` has no index on user_id and a DELETE that
        scans the table would lock every row it reads on InnoDB and hold up `POST /events` meanwhile."""
        ph = self._ph
        with self.tables.cursor(f"deleting a forgotten user's events from {EVENTS_TABLE} in") as (raw, cursor):
            cursor.execute(f"SELECT seq FROM {EVENTS_TABLE} WHERE user_id = {ph} AND seq <= {ph}", (user_id, until_seq))
            seqs = [int(r[0]) for r in cursor.fetchall()]
            deleted = 0
            for lo in range(0, len(seqs), chunk):
                part = seqs[lo : lo + chunk]
                marks = ", ".join([ph] * len(part))
                cursor.execute(
                    f"DELETE FROM {EVENTS_TABLE} WHERE seq IN ({marks}) AND user_id = {ph}", (*part, user_id)
                )
                deleted += int(cursor.rowcount or 0)
            raw.commit()
        return deleted

    def _delete(self, table: str, value: str | int, count: bool) -> int:
        """DELETE the user's rows of `table` in one transaction, with its recorded row count (`gamerec_tables`,
        `count`) in the same one; the rows deleted. Text matches byte for byte (the exact collation); published
        tables keyed by user_id (user_logs, batch_recommendations) find the rows by their primary key's index."""
        ph = self._ph
        quoted = self.tables.engine.dialect.identifier_preparer.quote(table)
        with self.tables.cursor(f"deleting a forgotten user's rows from {table} in") as (raw, cursor):
            cursor.execute(f"DELETE FROM {quoted} WHERE {USER_COLUMN} = {ph}", (value,))
            n = int(cursor.rowcount or 0)
            if count and n:
                rows = self.tables.engine.dialect.identifier_preparer.quote_identifier("rows")  # reserved on MySQL
                cursor.execute(f"UPDATE {SCHEMA_TABLE} SET {rows} = {rows} - {ph} WHERE name = {ph}", (n, table))
            raw.commit()
        return n
