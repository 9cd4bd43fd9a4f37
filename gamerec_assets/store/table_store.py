"""Tables on SQLite (embedded default) or MySQL/MariaDB through SQLAlchemy, published atomically.

A write loads a staging table and then swaps it in (MySQL: one `RENAME TABLE`; SQLite: renames inside one
transaction), keeping the replaced table as `<name>__previous`. Readers never see a half-written table and a
failure before the swap leaves the published table as it was. Polars dtypes are recorded in `gamerec_tables` so a
read returns the frame that was written, list and date columns included.

Reads of a whole table from MySQL/MariaDB go through connectorx (Rust, rows decoded straight into Arrow columns:
`user_logs` at over 500,000 rows/s, where PyMySQL's Python decoding gives about 100,000); filtered reads and SQLite
use the DBAPI cursor's tuples. Both give the same frame (`tests/.../test_table_store_bulk_read.py`).

Text compares exactly on both backends: two ids are one key only when their bytes are equal. SQLite's default
BINARY collation already does; on MySQL/MariaDB every text column of every table this store creates has a NO PAD
binary collation (`utf8mb4_nopad_bin` on MariaDB, `utf8mb4_0900_bin` on MySQL 8): `utf8mb4_bin` ignores trailing
spaces, so "padbob" and "padbob " collided in a primary key and `WHERE user_id = '7 '` found user 7. Published tables
get it when they are next written (each write creates a fresh table); tables that live on (`gamerec_tables`,
`interaction_events`, appended history tables) are converted in place by `make_exact` the first time a process
uses them, and `read(where=...)` re-checks string matches byte for byte, so a table written before stays exact too.

MySQL connections carry connect/read/write timeouts (PyMySQL has none by default: a write to a killed or
unreachable server could block in `sendall` for minutes), and an error names its real cause (server gone away,
timeout, host:port) rather than the follow-up error the driver raises while cleaning up.
"""

from __future__ import annotations

import json
import math
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import SQLAlchemyError

from gamerec_assets.settings import DB_CONNECT_TIMEOUT_S as CONNECT_TIMEOUT_S
from gamerec_assets.settings import DB_READ_TIMEOUT_S as READ_TIMEOUT_S
from gamerec_assets.settings import DB_WRITE_TIMEOUT_S as WRITE_TIMEOUT_S
from gamerec_assets.settings import MYSQL_EXTRA_FIX

try:  # the bulk read path on MySQL/MariaDB ([mysql] extra); without it, reads take the DBAPI cursor path (slower)
    import connectorx
except ImportError:  # a SQLite-only install (no [mysql] extra)
    connectorx = None

SCHEMA_TABLE = "gamerec_tables"
# NO PAD binary collations of utf8mb4, preferred first: MariaDB >= 10.2, MySQL >= 8.0 (MariaDB 11.4 has both)
EXACT_COLLATIONS = ("utf8mb4_nopad_bin", "utf8mb4_0900_bin")
INSERT_ROWS = 20_000
READ_BATCH_ROWS = 200_000  # rows per fetch on the DBAPI cursor path
# PyMySQL client error codes: cannot connect, server gone away, lost connection during query, lost at handshake
_CONNECT_FAILED = {2003}
_CONNECTION_LOST = {2006, 2013, 2055}
# connectorx (Rust mysql crate) texts of a connection that went away mid-read (KILL gives "CodecError { IO error:
# `bytes remaining on stream' }")
_CONNECTORX_LOST = ("gone away", "lost connection", "broken pipe", "connection reset", "unexpected eof", "io error")


class TableStoreError(RuntimeError):
    """A table could not be written or read; the message names the table and the cause."""


class _BulkReadError(RuntimeError):
    """connectorx failed; the message is the cause, already named."""


def _dtype_name(dtype: pl.DataType) -> str:
    return str(dtype) if not isinstance(dtype, pl.List) else f"List({dtype.inner})"


_DTYPES: dict[str, pl.DataType] = {
    "Int64": pl.Int64(),
    "Int32": pl.Int32(),
    "Float64": pl.Float64(),
    "Float32": pl.Float32(),
    "String": pl.Utf8(),
    "Boolean": pl.Boolean(),
    "Date": pl.Date(),
    "List(String)": pl.List(pl.Utf8()),
    "List(Int64)": pl.List(pl.Int64()),
}


# Columns read back in another type and converted after the read.
_RAW: dict[str, pl.DataType] = {
    "Date": pl.Utf8(),
    "Boolean": pl.Int64(),
    "List(String)": pl.Utf8(),
    "List(Int64)": pl.Utf8(),
}


def _sql_type(dtype: pl.DataType, key: bool, dialect: str, collation: str) -> sa.types.TypeEngine[Any]:
    if dtype == pl.Int64:
        return sa.BigInteger()
    if dtype == pl.Int32:
        return sa.Integer()
    if dtype == pl.Float64:
        return sa.Double() if dialect == "mysql" else sa.Float()
    if dtype == pl.Float32:
        return sa.Float()
    if dtype == pl.Boolean:
        return sa.Boolean()
    if dtype == pl.Date:
        return sa.Date()
    if dtype == pl.Utf8 and key:
        return _key_type(dialect, collation)
    if dtype == pl.Utf8 or isinstance(dtype, pl.List):
        return _text_type(dialect, collation)
    raise TableStoreError(f"unsupported column dtype {dtype}")


def _key_type(dialect: str, collation: str, length: int = 128) -> sa.types.TypeEngine[Any]:
    if dialect != "mysql":
        return sa.String(length)  # SQLite compares with BINARY (memcmp) unless told otherwise
    return mysql.VARCHAR(length, charset="utf8mb4", collation=collation)


def _text_type(dialect: str, collation: str) -> sa.types.TypeEngine[Any]:
    if dialect != "mysql":
        return sa.Text()
    return mysql.MEDIUMTEXT(charset="utf8mb4", collation=collation)


@dataclass(frozen=True)
class WriteResult:
    table: str
    rows: int
    backend: str


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """`exc` and what it was raised from or during, outermost first (SQLAlchemy's wrapped DBAPI errors included)."""
    out: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in out:
        out.append(e)
        orig = getattr(e, "orig", None)
        if isinstance(orig, BaseException) and orig not in out:
            out.append(orig)
        e = e.__cause__ or e.__context__
    return out


def _batches(cursor: Any, size: int = READ_BATCH_ROWS) -> Iterator[list[Any]]:
    while rows := cursor.fetchmany(size):
        yield rows


def _in_key_order(frame: pl.DataFrame, keys: list[str]) -> bool:
    """Rows already in (byte) order of `keys`? InnoDB scans a table in primary-key order, so a whole-table read
    usually is (the exact collation orders by code point, which is UTF-8 byte order), and one O(rows) comparison of
    neighbours is much cheaper than sorting a million text keys. Not always: a table written before its keys were
    exact pads with spaces ("a\\t" sorts before "a"), and SQLite returns insertion order."""
    if frame.height < 2:
        return True
    ordered: pl.Expr = pl.lit(True)
    for key in reversed(keys):
        here, after = pl.col(key), pl.col(key).shift(-1)
        ordered = (here < after) | ((here == after) & ordered)
    return bool(frame.select(ordered.alias("ordered")).head(frame.height - 1)["ordered"].all())


class TableStore:
    def __init__(
        self,
        url: str,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        read_timeout: float = READ_TIMEOUT_S,
        write_timeout: float = WRITE_TIMEOUT_S,
        **engine_kwargs: Any,
    ) -> None:
        """Timeouts (seconds) apply to MySQL connections; `connect_args` in `engine_kwargs` override them."""
        self.url = url
        self.timeouts = {
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "write_timeout": write_timeout,
        }
        if url.startswith("sqlite"):
            engine_kwargs.setdefault("connect_args", {"timeout": 30})
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        else:
            engine_kwargs.setdefault("pool_pre_ping", True)
            engine_kwargs["connect_args"] = {
                "local_infile": True,
                **self.timeouts,
                **engine_kwargs.get("connect_args", {}),
            }
        try:
            self.engine = sa.create_engine(url, **engine_kwargs)
        except ModuleNotFoundError as exc:  # the driver is in the `[mysql]` extra, not in a SQLite-only install
            shown = sa.engine.make_url(url).render_as_string(hide_password=True)
            raise TableStoreError(f"{shown}: the driver {exc.name} is not installed; {MYSQL_EXTRA_FIX}") from None
        self._load_data = self.engine.dialect.name == "mysql"
        self.dialect = self.engine.dialect.name
        self._schema_table_ready = False
        self._collation: str | None = None
        self._exact: set[str] = set()  # tables whose text columns this process has checked (`make_exact`)
        # whole-table reads on MySQL through connectorx (`read`); False: the DBAPI cursor path, for comparisons
        self.bulk_reads = True

    @property
    def backend(self) -> str:
        return self.dialect

    def describe(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def _server(self) -> str:
        url = self.engine.url
        return f"{url.host or 'localhost'}:{url.port or 3306}"

    def cause(self, exc: BaseException) -> str:
        """The real cause of a database failure, for messages: the first connection-level error in the chain (a
        killed connection, a timeout, a refused connect) rather than what the driver raised while cleaning up after
        it (`'NoneType' object has no attribute 'sendall'`), with the server's host:port."""
        chain = _exception_chain(exc)
        timed_out = False
        for e in reversed(chain):  # the earliest first
            code = e.args[0] if e.args and isinstance(e.args[0], int) else None
            text = f"{type(e).__name__}: {e}"
            timed_out = timed_out or isinstance(e, TimeoutError) or "timed out" in str(e)
            if code in _CONNECT_FAILED:
                return f"cannot connect to the MySQL server at {self._server()} ({text})"
            if code in _CONNECTION_LOST and timed_out:
                which = "write_timeout" if code == 2006 else "read_timeout"
                limit = f"{which}={self.timeouts[which]:g} s"
                return f"the MySQL server at {self._server()} did not answer within {limit} ({text})"
            if code in _CONNECTION_LOST:
                return (
                    f"the MySQL server at {self._server()} closed the connection: server gone away (connection "
                    f"killed, server restarted or network lost) ({text})"
                )
        outer = next((e for e in chain if isinstance(e, SQLAlchemyError)), chain[0])
        if timed_out:
            return f"timed out talking to the MySQL server at {self._server()} ({type(outer).__name__}: {outer})"
        return f"{type(outer).__name__}: {outer}"

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """SQLAlchemy and driver errors become TableStoreError naming the action, the database and the cause:
        "`action` <database> failed: <cause>" (so `action` ends with "in", "from", "of")."""
        try:
            yield
        except TableStoreError:
            raise
        except (SQLAlchemyError, OSError, self.engine.dialect.loaded_dbapi.Error) as exc:
            raise TableStoreError(f"{action} {self.describe()} failed: {self.cause(exc)}") from exc

    @contextmanager
    def cursor(self, action: str) -> Iterator[tuple[Any, Any]]:
        """(DBAPI connection, cursor) of a pooled connection, inside `errors(action)`: the fast path for many rows
        (executemany of plain tuples, fetchall without row objects). The caller commits on the DBAPI connection
        (work not committed is rolled back when the connection goes back to the pool); after any failure the
        connection is discarded, never handed back to the pool in an unknown state."""
        with self.errors(action), self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None, "a pooled connection without its DBAPI connection"
            cursor = raw.cursor()
            try:
                yield raw, cursor
            except BaseException:
                with suppress(Exception):  # closing first: after `invalidate` it would fail and hide the cause
                    cursor.close()
                conn.invalidate()
                raise
            cursor.close()

    @property
    def placeholder(self) -> str:
        """The DBAPI parameter marker of this backend's driver, for hand-written SQL ("%s" or "?")."""
        return "%s" if self.dialect == "mysql" else "?"

    @property
    def insert_ignore(self) -> str:
        """The INSERT that skips rows whose unique key is already stored (and counts only the rows it inserted)."""
        return "INSERT IGNORE" if self.dialect == "mysql" else "INSERT OR IGNORE"

    # -- exact text ----------------------------------------------------------------------------------------------

    def exact_collation(self) -> str:
        """The collation every text column gets: one under which two strings are equal only when their bytes are.
        SQLite: BINARY (its default). MySQL/MariaDB: the first NO PAD binary utf8mb4 collation the server has
        (asked once); a server without one is refused rather than given keys that ignore trailing spaces."""
        if self.dialect != "mysql":
            return "BINARY"
        if self._collation is None:
            marks = ", ".join(["%s"] * len(EXACT_COLLATIONS))
            query = f"SELECT COLLATION_NAME FROM information_schema.COLLATIONS WHERE COLLATION_NAME IN ({marks})"
            with self.errors("reading the collations of"), self.engine.connect() as conn:
                found = {r[0] for r in conn.exec_driver_sql(query, EXACT_COLLATIONS).fetchall()}
            best = next((c for c in EXACT_COLLATIONS if c in found), None)
            if best is None:
                raise TableStoreError(
                    f"the MySQL server at {self._server()} has no NO PAD binary collation for utf8mb4 (one of "
                    f"{', '.join(EXACT_COLLATIONS)}; MariaDB >= 10.2 and MySQL >= 8.0 have one): its utf8mb4_bin "
                    "ignores trailing spaces, so ids such as 'bob' and 'bob ' would be one key. Upgrade the server."
                )
            self._collation = best
        return self._collation

    def key_type(self, length: int = 128) -> sa.types.TypeEngine[Any]:
        """A text key column (user ids, event ids, model names): VARCHAR(length) compared byte for byte, so ids
        differing only in case, accents or trailing spaces ("alice", "Alice", "alice ") are distinct keys, and rows
        sort in byte order."""
        return _key_type(self.dialect, self.exact_collation(), length)

    def text_type(self) -> sa.types.TypeEngine[Any]:
        """A long text column (MEDIUMTEXT on MySQL) with the same exact comparison as `key_type`."""
        return _text_type(self.dialect, self.exact_collation())

    def table_options(self) -> dict[str, Any]:
        """`sa.Table` keyword arguments for a table of this store: InnoDB, utf8mb4 and the exact collation as the
        table's default (so a text column declared without one compares exactly too)."""
        if self.dialect != "mysql":
            return {}
        return {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": self.exact_collation()}

    def inexact_columns(self, name: str) -> dict[str, str]:
        """{column: collation} of table `name`'s text columns that do not compare exactly ({} on SQLite), with
        "(table default)" for a table whose default collation is another."""
        if self.dialect != "mysql":
            return {}
        exact = self.exact_collation()
        columns = (
            "SELECT COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = %s AND COLLATION_NAME IS NOT NULL AND COLLATION_NAME <> %s"
        )
        table = (
            "SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s"
        )
        with self.errors(f"reading the collations of table {name} in"), self.engine.connect() as conn:
            out = {str(c): str(k) for c, k in conn.exec_driver_sql(columns, (name, exact)).fetchall()}
            default = conn.exec_driver_sql(table, (name,)).scalar()
        if default is not None and default != exact:
            out["(table default)"] = str(default)
        return out

    def make_exact(self, name: str) -> dict[str, str]:
        """Convert table `name`'s text columns to the exact collation when some are not (a table created before
        text keys compared exactly); returns what it changed ({column: old collation}), {} when nothing was to do.
        Converting can never break a unique key (byte equality is the strictest there is); it rebuilds the table
        once, holding writes to it meanwhile. Checked once per table and process."""
        if self.dialect != "mysql" or name in self._exact:
            return {}
        changed = self.inexact_columns(name)
        if changed:
            sql = f"ALTER TABLE `{name}` CONVERT TO CHARACTER SET utf8mb4 COLLATE {self.exact_collation()}"
            try:
                with self.engine.begin() as conn:
                    conn.exec_driver_sql(sql)
            except SQLAlchemyError as exc:
                raise TableStoreError(
                    f"table {name} in {self.describe()} has text columns that do not compare exactly ({changed}: "
                    f"'a' = 'a ' or 'a' = 'A'); converting them failed: {self.cause(exc)}. "
                    f"Run `{sql}` as a user allowed to ALTER it."
                ) from exc
        self._exact.add(name)
        return changed

    def create(self, table: sa.Table) -> dict[str, str]:
        """Create `table` when it is missing (idempotent, safe under concurrent callers), then `make_exact` it: an
        append-only table that outlives the code that created it (build it with `key_type` and `table_options`)."""
        with self.errors(f"creating table {table.name} in"):
            try:
                table.create(self.engine, checkfirst=True)
            except sa.exc.DBAPIError:  # another process created it between the check and the CREATE
                if not sa.inspect(self.engine).has_table(table.name):
                    raise
        return self.make_exact(table.name)

    def _ensure_schema_table(self) -> None:
        """Created on first write, so a read-only service account can still read."""
        if self._schema_table_ready:
            return
        table = sa.Table(
            SCHEMA_TABLE,
            sa.MetaData(),
            sa.Column("name", self.key_type(191), primary_key=True),
            sa.Column("columns", sa.Text(), nullable=False),
            sa.Column("primary_key", sa.Text(), nullable=False),
            sa.Column("rows", sa.BigInteger(), nullable=False),
            **self.table_options(),
        )
        self.create(table)
        self._schema_table_ready = True

    def _table(
        self,
        name: str,
        schema: dict[str, pl.DataType],
        primary_key: list[str],
        indexes: list[list[str]],
        token: str,
    ) -> sa.Table:
        meta = sa.MetaData()
        collation = self.exact_collation()
        cols = [
            sa.Column(
                col,
                _sql_type(dtype, col in primary_key or any(col in ix for ix in indexes), self.dialect, collation),
                primary_key=col in primary_key,
                nullable=col not in primary_key,
                autoincrement=False,
            )
            for col, dtype in schema.items()
        ]
        table = sa.Table(name, meta, *cols, **self.table_options())
        for n, ix in enumerate(indexes):
            sa.Index(f"ix_{name}_{n}_{token}"[:60], *[table.c[c] for c in ix])
        return table

    @staticmethod
    def _encode(frame: pl.DataFrame) -> pl.DataFrame:
        """List columns are stored as JSON text."""
        return frame.with_columns(
            pl.col(c).map_elements(lambda v: json.dumps(list(v), ensure_ascii=False), return_dtype=pl.Utf8)
            for c, d in frame.schema.items()
            if isinstance(d, pl.List)
        )

    def write(
        self,
        name: str,
        frames: pl.DataFrame | Iterable[pl.DataFrame],
        primary_key: list[str] | None = None,
        indexes: list[list[str]] | None = None,
    ) -> WriteResult:
        """Publish `frames` (one frame or an iterator of chunks with one schema) as table `name`, atomically."""
        self._ensure_schema_table()
        chunks: Iterator[pl.DataFrame] = iter([frames] if isinstance(frames, pl.DataFrame) else frames)
        first = next(chunks, None)
        if first is None:
            raise TableStoreError(f"table {name}: nothing to write (no frames)")
        schema = dict(first.schema)
        primary_key = primary_key or []
        indexes = indexes or []
        token = secrets.token_hex(4)
        staging = f"{name}__staging_{token}"
        table = self._table(staging, schema, primary_key, indexes, token)
        rows = 0
        try:
            # One connection for the whole load: a dropped connection fails the write instead of silently
            # continuing on a fresh one with half the rows committed elsewhere.
            with self.engine.connect() as conn:
                try:
                    table.create(conn)
                    conn.commit()
                    for chunk in self._chain(first, chunks):
                        if dict(chunk.schema) != schema:
                            raise TableStoreError(f"table {name}: chunk schema {chunk.schema} differs from {schema}")
                        rows += self._insert(conn, table, self._encode(chunk))
                    conn.commit()
                    conn.connection.dbapi_connection.commit()  # type: ignore[union-attr]  # raw-cursor inserts
                except BaseException:
                    # The raw-cursor inserts bypass SQLAlchemy, so it does not know a failed connection is dead:
                    # discard it instead of returning it to the pool (whose rollback would fail a second time).
                    conn.invalidate()
                    raise
            self._swap(name, staging, schema, primary_key, rows)
        except Exception as exc:
            self._drop_quietly(staging)
            if isinstance(exc, TableStoreError):
                raise
            raise TableStoreError(
                f"writing table {name} to {self.describe()} failed after {rows} rows; the published table is "
                f"unchanged: {self.cause(exc)}"
            ) from exc
        return WriteResult(name, rows, self.dialect)

    @staticmethod
    def _chain(first: pl.DataFrame, rest: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
        yield first
        yield from rest

    def _insert(self, conn: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> int:
        if self.dialect == "mysql":
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                if self._load_data:
                    try:
                        self._load_data_infile(cursor, table.name, frame)
                        return frame.height
                    except Exception as exc:  # the server refuses LOCAL INFILE: fall back for good
                        if getattr(exc, "args", (None,))[0] not in (1148, 3948, 2068):
                            raise
                        self._load_data = False
                # PyMySQL rewrites executemany of one INSERT ... VALUES into multi-row statements.
                names = ", ".join(f"`{c}`" for c in frame.columns)
                sql = f"INSERT INTO `{table.name}` ({names}) VALUES ({', '.join(['%s'] * frame.width)})"
                for start in range(0, frame.height, INSERT_ROWS):
                    cursor.executemany(sql, frame.slice(start, INSERT_ROWS).rows())
            finally:
                cursor.close()
        else:
            for start in range(0, frame.height, INSERT_ROWS):
                conn.execute(table.insert(), frame.slice(start, INSERT_ROWS).to_dicts())
        return frame.height

    @staticmethod
    def _load_data_infile(cursor: Any, table: str, frame: pl.DataFrame) -> None:
        """MariaDB's bulk path: the chunk as CSV (written by polars in Rust), then LOAD DATA LOCAL INFILE."""
        frame = frame.with_columns(pl.col(c).cast(pl.Int8) for c, d in frame.schema.items() if d == pl.Boolean)
        with tempfile.NamedTemporaryFile(suffix=".csv") as tmp:
            frame.write_csv(tmp.name, include_header=False, null_value="NULL", quote_style="non_numeric")
            names = ", ".join(f"`{c}`" for c in frame.columns)
            cursor.execute(
                f"LOAD DATA LOCAL INFILE %s INTO TABLE `{table}` CHARACTER SET utf8mb4 "
                "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' "
                f"LINES TERMINATED BY '\\n' ({names})",
                (tmp.name,),
            )
            warnings = cursor.execute("SHOW WARNINGS") and cursor.fetchall()
            if warnings:
                raise ValueError(f"LOAD DATA into {table} reported: {warnings[:3]}")

    def _swap(self, name: str, staging: str, schema: dict[str, pl.DataType], primary_key: list[str], rows: int) -> None:
        previous = f"{name}__previous"
        record = {
            "name": name,
            "columns": json.dumps({c: _dtype_name(d) for c, d in schema.items()}),
            "primary_key": json.dumps(primary_key),
            "rows": rows,
        }
        schema_table = sa.table(
            SCHEMA_TABLE, sa.column("name"), sa.column("columns"), sa.column("primary_key"), sa.column("rows")
        )
        exists = sa.inspect(self.engine).has_table(name)
        with self.engine.begin() as conn:
            if self.dialect == "mysql":
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS `{previous}`")
                if exists:
                    conn.exec_driver_sql(f"RENAME TABLE `{name}` TO `{previous}`, `{staging}` TO `{name}`")
                else:
                    conn.exec_driver_sql(f"RENAME TABLE `{staging}` TO `{name}`")
            else:
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{previous}"')
                if exists:
                    conn.exec_driver_sql(f'ALTER TABLE "{name}" RENAME TO "{previous}"')
                conn.exec_driver_sql(f'ALTER TABLE "{staging}" RENAME TO "{name}"')
            conn.execute(sa.delete(schema_table).where(schema_table.c.name == name))
            conn.execute(sa.insert(schema_table).values(**record))

    def _drop_quietly(self, table: str) -> None:
        try:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self._quote(table)}")
        except SQLAlchemyError:
            pass

    def _quote(self, name: str) -> str:
        return self.engine.dialect.identifier_preparer.quote(name)

    def _record(self, name: str) -> tuple[dict[str, pl.DataType], list[str]]:
        """The recorded dtypes and primary key of table `name`."""
        if not self.exists(SCHEMA_TABLE):
            raise TableStoreError(f"table {name} does not exist in {self.describe()} (nothing written yet)")
        with self.errors(f"reading the schema of table {name} from"), self.engine.connect() as conn:
            row = conn.exec_driver_sql(
                f"SELECT columns, primary_key FROM {SCHEMA_TABLE} "
                f"WHERE name = {'%s' if self.dialect == 'mysql' else '?'}",
                (name,),
            ).first()
        if row is None:
            raise TableStoreError(f"table {name} does not exist in {self.describe()}")
        return {c: _DTYPES[d] for c, d in json.loads(row[0]).items()}, list(json.loads(row[1] or "[]"))

    def schema(self, name: str) -> dict[str, pl.DataType]:
        return self._record(name)[0]

    def primary_key(self, name: str) -> list[str]:
        return self._record(name)[1]

    def append(self, name: str, frame: pl.DataFrame) -> WriteResult:
        """Add rows to a history table in one transaction (created by the first append); all rows or none."""
        if not self.exists(name):
            return self.write(name, frame)
        self._ensure_schema_table()  # both live on: created before text compared exactly, they are converted
        self.make_exact(name)
        schema = self.schema(name)
        if dict(frame.schema) != schema:
            raise TableStoreError(f"table {name}: appended schema {dict(frame.schema)} differs from {schema}")
        table = sa.table(name, *[sa.column(c) for c in schema])
        schema_table = sa.table(SCHEMA_TABLE, sa.column("name"), sa.column("rows"))
        try:
            with self.engine.begin() as conn:
                conn.execute(table.insert(), self._encode(frame).to_dicts())
                conn.execute(
                    sa.update(schema_table)
                    .where(schema_table.c.name == name)
                    .values(rows=schema_table.c.rows + frame.height)
                )
        except SQLAlchemyError as exc:
            raise TableStoreError(f"appending to table {name} in {self.describe()} failed: {self.cause(exc)}") from exc
        return WriteResult(name, frame.height, self.dialect)

    def exists(self, name: str) -> bool:
        with self.errors(f"looking up table {name} in"):
            return sa.inspect(self.engine).has_table(name)

    def read(self, name: str, where: dict[str, Any] | None = None, order_by: list[str] | None = None) -> pl.DataFrame:
        """Read table `name` (optionally rows equal to `where`) with the dtypes it was written with.

        Rows come back ordered by `order_by` (in SQL), by default by the primary key (sorted here, after the read:
        cheaper than SQLite's ORDER BY over an index, and byte order rather than the server's collation). An
        unordered SELECT returns rows in another order on SQLite than on MariaDB, and anything seeded downstream
        (the simulation, the holdout split) would differ per backend.

        Two paths, one result: a whole table on MySQL/MariaDB streams through connectorx (a Rust client that
        decodes the rows straight into Arrow columns, about 10x the rows/s of PyMySQL's Python decoding); a
        filtered read (the API's one user) and every SQLite read take the pooled connection's DBAPI cursor,
        whose plain tuples become columns without SQLAlchemy row objects.
        """
        schema, primary_key = self._record(name)
        table = sa.table(name, *[sa.column(c) for c in schema])
        # Dates come back as text from both backends (SQLite has no date type); booleans as 0/1.
        selected = [
            sa.cast(table.c[c], sa.String(10)).label(c) if d == pl.Date else table.c[c] for c, d in schema.items()
        ]
        query = sa.select(*selected)
        for col, value in (where or {}).items():
            query = query.where(table.c[col] == value)
        for col in order_by or []:
            query = query.order_by(table.c[col])
        raw_schema = {c: _RAW.get(_dtype_name(d), d) for c, d in schema.items()}
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        try:
            if self.dialect == "mysql" and not where and self.bulk_reads and connectorx is not None:
                frame = self._read_arrow(query, raw_schema)
            else:
                frame = self._read_rows(query, raw_schema)
        except (SQLAlchemyError, OSError, dbapi_error) as exc:
            raise TableStoreError(f"reading table {name} from {self.describe()} failed: {self.cause(exc)}") from exc
        except _BulkReadError as exc:
            raise TableStoreError(f"reading table {name} from {self.describe()} failed: {exc}") from exc
        exact = [pl.col(c) == v for c, v in (where or {}).items() if isinstance(v, str)]
        if exact:  # byte for byte, also on a table written before its text compared exactly (PAD SPACE: 'a' = 'a ')
            frame = frame.filter(*exact)
        if order_by is None and primary_key and not _in_key_order(frame, primary_key):
            frame = frame.sort(primary_key, maintain_order=True)
        return frame.with_columns(
            pl.col(c).str.json_decode(d)
            if isinstance(d, pl.List)
            else pl.col(c).str.to_date("%Y-%m-%d")
            if d == pl.Date
            else pl.col(c).cast(d)
            for c, d in schema.items()
            if _dtype_name(d) in _RAW
        )

    def _read_rows(self, query: sa.Select[Any], raw_schema: dict[str, pl.DataType]) -> pl.DataFrame:
        """The DBAPI cursor's tuples as columns: no SQLAlchemy row object per row."""
        compiled = query.compile(dialect=self.engine.dialect)
        params: Any = (
            tuple(compiled.params[key] for key in compiled.positiontup or [])
            if compiled.positional
            else compiled.params
        )
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None, "a pooled connection without its DBAPI connection"
            try:
                cursor = raw.cursor()
                try:
                    cursor.execute(str(compiled), params)
                    # batch by batch into columns: a million-row table never exists as a million Python tuples
                    frames = [pl.DataFrame(rows, schema=raw_schema, orient="row") for rows in _batches(cursor)]
                finally:
                    cursor.close()
                raw.rollback()  # end the read's transaction on the raw connection (SQLAlchemy did not start it)
            except BaseException:
                conn.invalidate()  # a failed raw cursor may have left the connection dead: never back to the pool
                raise
        return pl.concat(frames) if frames else pl.DataFrame(schema=raw_schema)

    def _read_arrow(self, query: sa.Select[Any], raw_schema: dict[str, pl.DataType]) -> pl.DataFrame:
        """A whole table from MySQL/MariaDB through connectorx into Arrow, then to the raw dtypes.

        connectorx has no read timeout of its own: the server bounds the statement instead (MariaDB's
        max_statement_time, MySQL's max_execution_time, and lock_wait_timeout for a table another session has
        locked), so a read that gets no answer fails after `read_timeout` as on the cursor path.
        """
        url = self.engine.url.set(drivername="mysql", query={})
        connect_ms = int(self.timeouts["connect_timeout"] * 1000)
        uri = f"{url.render_as_string(hide_password=False)}?tcp_connect_timeout_ms={connect_ms}"
        read_timeout = self.timeouts["read_timeout"]
        statement_limit = (
            f"SET SESSION max_statement_time = {read_timeout:g}"
            if getattr(self.engine.dialect, "is_mariadb", True)
            else f"SET SESSION max_execution_time = {int(read_timeout * 1000)}"
        )
        pre = [statement_limit, f"SET SESSION lock_wait_timeout = {max(1, math.ceil(read_timeout))}"]
        sql = str(query.compile(dialect=self.engine.dialect))
        try:
            arrow = connectorx.read_sql(uri, sql, return_type="arrow", pre_execution_query=pre)
        except RuntimeError as exc:
            raise _BulkReadError(self._connectorx_cause(exc)) from exc
        frame = pl.from_arrow(arrow)
        assert isinstance(frame, pl.DataFrame)
        # connectorx types columns by their SQL type (TINYINT -> Int8, INT -> Int32): cast to the raw dtypes
        return frame.select(pl.col(c).cast(d) for c, d in raw_schema.items())

    def _connectorx_cause(self, exc: BaseException) -> str:
        """connectorx's errors are one text (the Rust error's debug form): name the same causes as `cause`."""
        text = f"{type(exc).__name__}: {exc}"
        lowered = text.lower()
        if any(s in lowered for s in ("max_statement_time", "max_execution_time", "lock wait timeout", "1969", "3024")):
            limit = f"read_timeout={self.timeouts['read_timeout']:g} s"
            return f"the MySQL server at {self._server()} did not answer within {limit} ({text})"
        if "could not connect" in lowered or "connection refused" in lowered:
            return f"cannot connect to the MySQL server at {self._server()} ({text})"
        if any(s in lowered for s in _CONNECTORX_LOST):
            return (
                f"the MySQL server at {self._server()} closed the connection: server gone away (connection "
                f"killed, server restarted or network lost) ({text})"
            )
        return text
