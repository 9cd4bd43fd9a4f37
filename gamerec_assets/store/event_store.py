"""The append-only `interaction_events` table, beside the published tables in the same database.

Not a published table (those are replaced whole, atomically): events only ever get added, one transaction per
append, committed before `POST /events` answers. Each row gets a `seq` (auto-increment) that orders the log:
readers remember the last `seq` they saw (the API's realtime overlay tails the table; a model records up to which
`seq` it was trained), so no reader needs timestamps to agree across machines.

Ids compare exactly: `event_id`, `user_id` and every other text column use the table store's exact collation
(`TableStore.key_type`), so "pad-p1 " is not a duplicate of "pad-p1" and "padbob " is not "padbob", on MariaDB
as on SQLite; a table created with the old `utf8mb4_bin` (which ignores trailing spaces) is converted on first use.

Senders: `key_name` is who posted the event (the write key's name, `answer:<user_id>` for a browser's answer token,
`open` without a credential; `gamerec_api.ingest`), so the retraining sensor and the trust rules count events per
sender (`event_trust.sources`). NULL for rows stored before the column existed and for appends that name no sender
(a table without the column gets it, nullable, on first use: `ensure`).

Duplicates: `event_id` is unique. An append inserts with INSERT IGNORE (SQLite: INSERT OR IGNORE) and compares the
number of rows inserted with the number sent; only when they differ does it look up which ids this append wrote
(its own `batch` token), so a retry of a stored event is reported as a duplicate, also under concurrent appends.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import polars as pl
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from gamerec_assets.recsys.feedback import NEGATIVE, POSITIVE, Event
from gamerec_assets.store.table_store import TableStore, TableStoreError

EVENTS_TABLE = "interaction_events"
COLUMNS = ("seq", "event_id", "user_id", "game_id", "type", "value", "timestamp_us", "received_us", "request_id")
FRAME_SCHEMA = {
    "seq": pl.Int64,
    "event_id": pl.Utf8,
    "user_id": pl.Utf8,
    "game_id": pl.Int64,
    "type": pl.Utf8,
    "value": pl.Float64,
    "timestamp_us": pl.Int64,
    "received_us": pl.Int64,
    "request_id": pl.Utf8,
}
KEY_COLUMN = "key_name"  # who sent the event (`event_trust.SOURCE_COLUMNS` names it)
KEY_LENGTH = 160  # "answer:" + a 128-character user id fits; write key names have at most 64 characters
# what `read` returns: FRAME_SCHEMA (what the pure code needs; frames built for tests need no sender) and the sender
READ_SCHEMA = {**FRAME_SCHEMA, KEY_COLUMN: pl.Utf8}
_INSERTED = (
    "event_id",
    "user_id",
    "game_id",
    "type",
    "value",
    "timestamp_us",
    "received_us",
    "request_id",
    "batch",
    KEY_COLUMN,
)


def _table(meta: sa.MetaData, tables: TableStore) -> sa.Table:
    key = tables.key_type  # byte-for-byte comparison on every backend: "Alice", "alice" and "alice " are three ids
    return sa.Table(
        EVENTS_TABLE,
        meta,
        # SQLite only auto-increments an INTEGER PRIMARY KEY
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("event_id", key(), nullable=False, unique=True),
        sa.Column("user_id", key(), nullable=False),
        sa.Column("game_id", sa.BigInteger(), nullable=False),
        sa.Column("type", key(16), nullable=False),
        sa.Column("value", sa.Float().with_variant(mysql.DOUBLE(), "mysql"), nullable=True),
        sa.Column("timestamp_us", sa.BigInteger(), nullable=False),
        sa.Column("received_us", sa.BigInteger(), nullable=False),
        sa.Column("request_id", key(), nullable=True),
        sa.Column("batch", key(16), nullable=False),
        sa.Column(KEY_COLUMN, key(KEY_LENGTH), nullable=True),  # added last: an older table gets it by ALTER TABLE
        sqlite_autoincrement=True,  # a seq is never reused, even after the newest rows are deleted
        **tables.table_options(),
    )


@dataclass(frozen=True)
class AppendResult:
    accepted: list[bool]  # per event sent: stored now (True) or a duplicate of a stored event_id (False)
    last_seq: int  # the table's newest seq after the append

    @property
    def n_accepted(self) -> int:
        return sum(self.accepted)


class AppendHook(Protocol):
    """Work done in the append's own transaction (`EventStore.append(..., hook=)`), so it commits with the events or
    not at all: the idempotency record of `POST /events` (`event_requests.RecordHook`). `before` runs first and may
    raise to abandon the append (nothing is stored); `after` runs last, before the COMMIT."""

    def before(self, cursor: Any) -> None: ...

    def after(self, cursor: Any, result: AppendResult) -> None: ...


class CommitUncertain(TableStoreError):
    """The COMMIT itself failed (the connection died while the server may have committed): whether the events are
    stored is unknown. A failure before the COMMIT raises a plain TableStoreError: then nothing is stored."""


class EventStore:
    """`interaction_events` in the database of `tables` (same engine, timeouts and error messages)."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables
        self.engine = tables.engine
        self._ready = False
        self._ph = tables.placeholder

    def describe(self) -> str:
        return f"{EVENTS_TABLE} in {self.tables.describe()}"

    def ensure(self) -> None:
        """Create the table when it is missing (idempotent, safe under concurrent callers)."""
        if self._ready:
            return
        try:  # `create` also converts a table created before its ids compared exactly
            self.tables.create(_table(sa.MetaData(), self.tables))
            self._add_key_column()
        except TableStoreError as exc:
            raise TableStoreError(f"{EVENTS_TABLE}: {exc}") from exc
        self._ready = True

    def _has_key_column(self) -> bool:
        with self.tables.errors(f"reading the columns of {EVENTS_TABLE} in"):
            return KEY_COLUMN in {c["name"] for c in sa.inspect(self.engine).get_columns(EVENTS_TABLE)}

    def _add_key_column(self) -> None:
        """Add `key_name` (nullable, exact collation, last) to a table created before events recorded their sender;
        its rows keep NULL. A nullable column added last is an instant change on MariaDB >= 10.3 (no table rebuild)
        and on SQLite. Safe under concurrent callers (a failed ALTER is fine when the column is there after)."""
        if self._has_key_column():
            return
        kind = self.tables.key_type(KEY_LENGTH).compile(dialect=self.engine.dialect)
        sql = f"ALTER TABLE {EVENTS_TABLE} ADD COLUMN {KEY_COLUMN} {kind} NULL"
        try:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(sql)
        except sa.exc.SQLAlchemyError as exc:
            if not self._has_key_column():
                raise TableStoreError(
                    f"adding column {KEY_COLUMN} failed: {self.tables.cause(exc)}; run `{sql}` as a user allowed to "
                    "ALTER it"
                ) from exc

    def exists(self) -> bool:
        return self._ready or self.tables.exists(EVENTS_TABLE)

    # -- writing -------------------------------------------------------------------------------------------------

    def append(
        self, events: Sequence[Event], hook: AppendHook | None = None, key_name: str | None = None
    ) -> AppendResult:
        """Store `events` in one transaction, committed when this returns; a stored `event_id` (also one repeated
        within `events`) is a duplicate and changes nothing. All or nothing on failure (TableStoreError; a failed
        COMMIT is CommitUncertain: stored or not, unknown). `hook` runs inside the same transaction. `key_name`:
        who sent them all (one credential per request), stored with every row; None stores NULL."""
        self.ensure()
        accepted = [False] * len(events)
        first: dict[str, int] = {}
        for i, e in enumerate(events):
            first.setdefault(e.event_id, i)
        token = secrets.token_hex(8)
        rows = [
            (
                e.event_id,
                e.user_id,
                e.game_id,
                e.type,
                e.value,
                e.timestamp_us,
                e.received_us,
                e.request_id,
                token,
                key_name,
            )
            for i, e in enumerate(events)
            if first[e.event_id] == i
        ]
        marks = ", ".join([self._ph] * len(_INSERTED))
        sql = f"{self.tables.insert_ignore} INTO {EVENTS_TABLE} ({', '.join(_INSERTED)}) VALUES ({marks})"
        with self.tables.cursor(f"storing {len(rows)} events in {EVENTS_TABLE} of") as (raw, cursor):
            if hook is not None:
                hook.before(cursor)
            inserted = 0
            if rows:
                cursor.executemany(sql, rows)
                inserted = cursor.rowcount
            if inserted == len(rows):
                stored = set(first)
            else:  # some ids were stored before: which ones did this append write?
                ids = [r[0] for r in rows]
                stored = set()
                for lo in range(0, len(ids), 500):
                    part = ids[lo : lo + 500]
                    cursor.execute(
                        f"SELECT event_id FROM {EVENTS_TABLE} WHERE batch = {self._ph} AND event_id IN "
                        f"({', '.join([self._ph] * len(part))})",
                        (token, *part),
                    )
                    stored.update(r[0] for r in cursor.fetchall())
            cursor.execute(f"SELECT MAX(seq) FROM {EVENTS_TABLE}")
            last = cursor.fetchone()[0] or 0
            for eid, i in first.items():
                accepted[i] = eid in stored
            result = AppendResult(accepted, int(last))
            if hook is not None:
                hook.after(cursor, result)
            try:
                raw.commit()
            except Exception as exc:
                raise CommitUncertain(
                    f"committing {len(rows)} events to {EVENTS_TABLE} of {self.tables.describe()} failed, so whether "
                    f"they are stored is unknown: {self.tables.cause(exc)}"
                ) from exc
        return result

    # -- reading -------------------------------------------------------------------------------------------------

    def last_seq(self) -> int:
        """The newest seq (0 when there are no events, or no table yet)."""
        if not self.exists():
            return 0
        with self.tables.errors(f"reading {EVENTS_TABLE} from"), self.engine.connect() as conn:
            return int(conn.exec_driver_sql(f"SELECT MAX(seq) FROM {EVENTS_TABLE}").scalar() or 0)

    def count_after(self, seq: int) -> int:
        """Events with a seq above `seq`: what arrived since a reader (or a model) last looked."""
        if not self.exists():
            return 0
        with self.tables.errors(f"counting {EVENTS_TABLE} in"), self.engine.connect() as conn:
            query = f"SELECT COUNT(*) FROM {EVENTS_TABLE} WHERE seq > {self._ph}"
            return int(conn.exec_driver_sql(query, (int(seq),)).scalar() or 0)

    def summary(self, after_seq: int = 0, until_seq: int | None = None) -> dict[str, Any]:
        """{"count", "by_type", "until_seq", "newest_us"} of the events after_seq < seq <= until_seq (None: all), one
        GROUP BY over a range of the primary key: what the `interaction_events` observation and the retraining
        sensor show without reading the rows."""
        out: dict[str, Any] = {"count": 0, "by_type": {}, "until_seq": 0, "newest_us": None}
        if not self.exists():
            return out
        where, params = f" WHERE seq > {self._ph}", [int(after_seq)]
        if until_seq is not None:
            where += f" AND seq <= {self._ph}"
            params.append(int(until_seq))
        query = f"SELECT type, COUNT(*), MAX(seq), MAX(timestamp_us) FROM {EVENTS_TABLE}{where} GROUP BY type"
        with self.tables.errors(f"summarising {EVENTS_TABLE} in"), self.engine.connect() as conn:
            rows = conn.exec_driver_sql(query, tuple(params)).fetchall()
        for type_, n, seq, newest in sorted(rows):
            out["by_type"][str(type_)] = int(n)
            out["count"] += int(n)
            out["until_seq"] = max(out["until_seq"], int(seq))
            out["newest_us"] = int(newest) if out["newest_us"] is None else max(out["newest_us"], int(newest))
        return out

    def read(self, after_seq: int = 0, until_seq: int | None = None, limit: int | None = None) -> pl.DataFrame:
        """Events with after_seq < seq <= until_seq, in seq order, as a frame of READ_SCHEMA (FRAME_SCHEMA and the
        sender, `key_name`; empty when there is no table). `user_logs` reads everything up to a seq, the retraining
        sensor what came after production's data; both count per sender."""
        if not self.exists():
            return pl.DataFrame(schema=READ_SCHEMA)
        self.ensure()  # an older table gets its key_name column before it is read
        names = (*COLUMNS, KEY_COLUMN)
        query = f"SELECT {', '.join(names)} FROM {EVENTS_TABLE} WHERE seq > {self._ph}"
        params: list[int] = [int(after_seq)]
        if until_seq is not None:
            query += f" AND seq <= {self._ph}"
            params.append(int(until_seq))
        query += " ORDER BY seq"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        with self.tables.cursor(f"reading {EVENTS_TABLE} from") as (_, cursor):
            cursor.execute(query, tuple(params))
            rows = cursor.fetchall()
        if not rows:
            return pl.DataFrame(schema=READ_SCHEMA)
        columns = list(zip(*rows, strict=True))
        return pl.DataFrame(
            {name: pl.Series(name, col, dtype=READ_SCHEMA[name]) for name, col in zip(names, columns, strict=True)}
        )

    def standing_dislikes(self, until_seq: int, chunk: int = 500, after_seq: int = 0) -> pl.DataFrame:
        """(user_id, game_id, seq) of the pairs whose latest play/purchase/like/dislike in (`after_seq`,
        `until_seq`] is a dislike (`after_seq`: the events up to it were posted under another source, which the
        model left out): what a model trained up to that seq has dropped from the user's history
        (`feedback.event_pairs`, whose order this keeps: by timestamp, then seq), and must still never show that
        user. Two filtered scans (dislikes are few), the second only for the users who disliked; no index beyond the
        primary key is needed, so appends stay as cheap as they are."""
        schema = {"user_id": pl.Utf8, "game_id": pl.Int64, "seq": pl.Int64}
        if until_seq <= 0 or not self.exists():
            return pl.DataFrame(schema=schema)
        neg = ", ".join(f"'{t}'" for t in sorted(NEGATIVE))
        pos = ", ".join(f"'{t}'" for t in sorted(POSITIVE))
        seqs = f"seq <= {self._ph} AND seq > {self._ph}"
        columns = f"SELECT user_id, game_id, timestamp_us, seq FROM {EVENTS_TABLE} WHERE {seqs}"
        with self.tables.cursor(f"reading dislikes from {EVENTS_TABLE} of") as (_, cursor):
            cursor.execute(f"{columns} AND type IN ({neg})", (int(until_seq), int(after_seq)))
            disliked = cursor.fetchall()
            users = sorted({r[0] for r in disliked})
            liked: list[tuple[Any, ...]] = []
            for lo in range(0, len(users), chunk):
                part = users[lo : lo + chunk]
                cursor.execute(
                    f"{columns} AND type IN ({pos}) AND user_id IN ({', '.join([self._ph] * len(part))})",
                    (int(until_seq), int(after_seq), *part),
                )
                liked.extend(cursor.fetchall())
        rows = {"user_id": pl.Utf8, "game_id": pl.Int64, "timestamp_us": pl.Int64, "seq": pl.Int64}
        events = pl.concat(
            [
                pl.DataFrame(disliked, schema=rows, orient="row").with_columns(pl.lit(True).alias("dislike")),
                pl.DataFrame(liked, schema=rows, orient="row").with_columns(pl.lit(False).alias("dislike")),
            ]
        )
        latest = events.sort("timestamp_us", "seq").group_by("user_id", "game_id").last()
        return latest.filter(pl.col("dislike")).select(list(schema)).sort("seq")

    # -- tailing (the API's realtime overlay) ----------------------------------------------------------------------

    def tail(
        self, after_seq: int, limit: int, gaps: Sequence[int] = (), horizon: bool = False
    ) -> tuple[pl.DataFrame, float, float | None]:
        """One read of a reader that tails the table by seq, on one connection: (rows, read_at, horizon).

        rows: seq, user_id, game_id, type (only what a tail needs: decoding is most of a read's cost) of the first
        `limit` events with seq > after_seq and of the events whose seq is in `gaps` (seqs the reader found missing
        below a seq it read), in seq order.

        On MariaDB/MySQL an append's seqs are allocated at its INSERT and commit later, so a missing seq below a read
        one may still appear (its transaction is open) or never (rolled back, or an INSERT IGNORE duplicate). The
        two values, seconds on the server's clock in its system time zone (the one trx_started is given in; a zone
        without daylight saving time, such as UTC, is assumed), tell which:
        - read_at, taken after the read: a missing seq below a row this read returned was allocated by a
          transaction that started no later than read_at;
        - horizon (with `horizon=True`; taken from information_schema.innodb_trx *before* the read): every write
          transaction that started before it had ended before the read began (the oldest open one started at
          `horizon`, in whole seconds; the view may lag by 0.1 s, hence the margin). So a gap seen at a read_at
          below a later read's horizon, and not returned by that read, will never be filled. None without the
          PROCESS privilege (the reader then falls back on a timeout) or when not asked.
        On SQLite a seq is allocated under the one write lock, held until COMMIT: rows commit in seq order, and a
        seq missing below a read one never appears later; read_at is -inf and horizon +inf.
        """
        schema = {"seq": pl.Int64, "user_id": pl.Utf8, "game_id": pl.Int64, "type": pl.Utf8}
        mysql_ = self.tables.dialect == "mysql"
        if not self.exists():
            return pl.DataFrame(schema=schema), -float("inf"), float("inf")
        sql = f"SELECT seq, user_id, game_id, type FROM {EVENTS_TABLE} WHERE "
        spans = self._spans(gaps)
        with self.tables.errors(f"tailing {EVENTS_TABLE} in"), self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            cursor = raw.cursor()  # type: ignore[union-attr]
            try:
                seen_open = self._horizon(cursor) if mysql_ and horizon else None
                raw.rollback()  # type: ignore[union-attr]  # the reads below get a snapshot taken after that
                rows = self._fetch(cursor, f"{sql}seq > {self._ph} ORDER BY seq LIMIT {int(limit)}", (int(after_seq),))
                for lo in range(0, len(spans), 500):
                    part = spans[lo : lo + 500]
                    where = " OR ".join([f"seq BETWEEN {self._ph} AND {self._ph}"] * len(part))
                    rows += self._fetch(cursor, f"{sql}{where}", tuple(x for span in part for x in span))
                read_at = (
                    self._seconds(self._fetch(cursor, f"SELECT {self._NOW}", ())[0][0]) if mysql_ else -float("inf")
                )
                cursor.close()
                raw.rollback()  # type: ignore[union-attr]
            except BaseException:
                conn.invalidate()  # raw-cursor work: never hand a connection in an unknown state back to the pool
                raise
        frame = pl.DataFrame(rows, schema=schema, orient="row")
        return (frame.sort("seq") if spans else frame), read_at, (seen_open if mysql_ else float("inf"))

    _horizon_denied = False  # set on the first refusal (no PROCESS privilege): not asked again
    # now on the clock innodb_trx.trx_started is given in (the server's system time zone, whatever the session's);
    # NULL when the session's zone is a name and the server has no time zone tables
    _NOW = "CONVERT_TZ(NOW(6), @@session.time_zone, 'SYSTEM')"

    def _horizon(self, cursor: Any) -> float | None:
        """The `horizon` of `tail`: min(the oldest other open write transaction's start, now - 0.25 s)."""
        if self._horizon_denied:
            return None
        try:
            cursor.execute(
                f"SELECT {self._NOW}, MIN(trx_started) FROM information_schema.innodb_trx "
                "WHERE trx_mysql_thread_id <> CONNECTION_ID()"
            )
        except Exception as exc:  # 1227: access denied, the PROCESS privilege is missing
            if getattr(exc, "args", (None,))[0] not in (1227, 1142):
                raise
            self._horizon_denied = True
            return None
        now, oldest = cursor.fetchone()
        if now is None:
            return None
        bound = self._seconds(now) - 0.25
        return bound if oldest is None else min(bound, self._seconds(oldest))

    @staticmethod
    def _seconds(when: Any) -> float:
        """A server DATETIME (naive, the server's system time zone) as seconds, only compared with other such
        values; None (unknown) as +inf: a gap seen then is never proven final by a horizon."""
        from datetime import datetime

        return float("inf") if when is None else float((when - datetime(1970, 1, 1)).total_seconds())

    @staticmethod
    def _fetch(cursor: Any, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        cursor.execute(sql, params)
        return list(cursor.fetchall())

    @staticmethod
    def _spans(seqs: Sequence[int]) -> list[tuple[int, int]]:
        """Seqs as sorted (first, last) runs of consecutive values: what a gap re-read asks for."""
        import numpy as np

        values = np.unique(np.asarray(seqs, dtype=np.int64))
        if not values.size:
            return []
        cut = np.flatnonzero(np.diff(values) != 1)
        firsts = np.concatenate([values[:1], values[cut + 1]])
        lasts = np.concatenate([values[cut], values[-1:]])
        return list(zip(firsts.tolist(), lasts.tolist(), strict=True))
