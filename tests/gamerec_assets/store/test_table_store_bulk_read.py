"""The bulk read path (connectorx on MySQL/MariaDB) returns exactly what the DBAPI cursor path returns."""

from datetime import date

import connectorx  # noqa: F401  # a dependency of the project: the bulk path must be there to be tested
import polars as pl
import pytest

from gamerec_assets.store import TableStore


def every_dtype(n: int = 300) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": [["Alice", "alice", "ユーザー", 'q"u,o\\te'][i % 4] + f"-{i}" for i in range(n)],
            "game_id": pl.Series([(i * 7919) % 1_000_003 for i in range(n)], dtype=pl.Int64),
            "weight": [i / 3 for i in range(n)],
            "weight32": pl.Series([i / 4 for i in range(n)], dtype=pl.Float32),
            "rank": pl.Series([i % 10 for i in range(n)], dtype=pl.Int32),
            "title": [None if i % 3 == 0 else f'Gâme {i} ゲーム, "quoted"\n' for i in range(n)],
            "released": [None if i % 5 == 0 else date(2000 + i % 25, 1 + i % 12, 1 + i % 28) for i in range(n)],
            "tba": [None if i % 7 == 0 else i % 2 == 0 for i in range(n)],
            "genres": [["RPG", "Action", "ゲーム"][: i % 4] for i in range(n)],
            "tags": [list(range(i % 3)) for i in range(n)],
        },
        schema_overrides={"tags": pl.List(pl.Int64)},
    ).sample(fraction=1.0, shuffle=True, seed=3)


def both_paths(store: TableStore, name: str, **kwargs: object) -> tuple[pl.DataFrame, pl.DataFrame]:
    store.bulk_reads = True
    bulk = store.read(name, **kwargs)  # type: ignore[arg-type]
    store.bulk_reads = False
    rows = store.read(name, **kwargs)  # type: ignore[arg-type]
    store.bulk_reads = True
    return bulk, rows


def test_bulk_and_cursor_reads_are_identical_on_mariadb(mysql_db: dict) -> None:
    store = TableStore(mysql_db["url"])
    original = every_dtype()
    store.write("user_logs", original, primary_key=["user_id", "game_id"])
    bulk, rows = both_paths(store, "user_logs")
    assert bulk.schema == original.schema
    assert bulk.equals(rows)
    assert bulk.equals(original.sort(["user_id", "game_id"]))  # primary-key (byte) order, every value as written
    bulk, rows = both_paths(store, "user_logs", order_by=["game_id"])
    assert bulk.equals(rows) and bulk["game_id"].is_sorted()


def test_bulk_read_of_an_empty_table_keeps_the_schema(mysql_db: dict) -> None:
    store = TableStore(mysql_db["url"])
    empty = every_dtype().head(0)
    store.write("empty", [empty], primary_key=["user_id"])
    bulk, rows = both_paths(store, "empty")
    assert bulk.schema == rows.schema == empty.schema and bulk.height == 0


def test_a_filtered_read_takes_the_cursor_path_with_bound_values(mysql_db: dict, tmp_path) -> None:
    """`where` values are bound parameters on both backends (a quote in an id is data, not SQL)."""
    for store in (TableStore(mysql_db["url"]), TableStore(f"sqlite:///{tmp_path / 'db.sqlite'}")):
        store.write("user_logs", every_dtype(), primary_key=["user_id", "game_id"])
        user = 'q"u,o\\te-3'
        got = store.read("user_logs", where={"user_id": user})
        assert got["user_id"].to_list() == [user]
        assert store.read("user_logs", where={"user_id": "x' OR '1'='1"}).height == 0


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_rows_come_back_in_byte_order_even_where_the_server_sorts_otherwise(
    backend: str, request: pytest.FixtureRequest, tmp_path
) -> None:
    """SQLite returns insertion order, and a table written with utf8mb4_bin (before keys were NO PAD) padded with
    spaces, so MariaDB's primary-key scan put "a\\t" before "a"; byte order is "a" first."""
    url = request.getfixturevalue("mysql_db")["url"] if backend == "mysql" else f"sqlite:///{tmp_path / 'db'}"
    store = TableStore(url)
    ids = ["a\t", "a", "b", "a\tb", "A"]
    store.write("keys", pl.DataFrame({"user_id": ids, "n": list(range(5))}), primary_key=["user_id"])
    assert store.read("keys")["user_id"].to_list() == sorted(ids)
