from datetime import date, timedelta

import polars as pl
import pytest
import sqlalchemy as sa

from gamerec_assets.store import TableStore, TableStoreError


@pytest.fixture(params=["sqlite", "mysql"])
def store(request: pytest.FixtureRequest, tmp_path) -> TableStore:
    if request.param == "sqlite":
        return TableStore(f"sqlite:///{tmp_path / 'db' / 'gamerec.db'}")
    return TableStore(request.getfixturevalue("mysql_db")["url"])


def frame(n: int = 5, offset: int = 0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "game_id": pl.Series(range(offset, offset + n), dtype=pl.Int64),
            "name": [f"Gâme {i} ゲーム" for i in range(n)],
            "released": [date(2020, 1, 1) + timedelta(days=i) for i in range(n)],
            "rating": [float(i) / 2 for i in range(n)],
            "weight": pl.Series([0.5] * n, dtype=pl.Float32),
            "rank": pl.Series(range(n), dtype=pl.Int32),
            "genres": [["RPG", "Action"][: i % 3] for i in range(n)],
            "tba": [i % 2 == 0 for i in range(n)],
            "note": [None if i % 2 else "x" for i in range(n)],
        }
    )


def test_roundtrip_keeps_rows_and_dtypes(store: TableStore) -> None:
    original = frame()
    result = store.write("game_features", original, primary_key=["game_id"])
    assert result.rows == 5
    back = store.read("game_features", order_by=["game_id"])
    assert back.schema == original.schema
    assert back.equals(original)
    assert store.read("game_features", where={"game_id": 3})["name"].to_list() == ["Gâme 3 ゲーム"]


def test_rewrite_swaps_atomically_and_keeps_previous(store: TableStore) -> None:
    store.write("t", frame(3), primary_key=["game_id"])
    store.write("t", frame(4, offset=10), primary_key=["game_id"])
    assert store.read("t")["game_id"].to_list() == [10, 11, 12, 13]
    with store.engine.connect() as conn:
        prev = conn.execute(sa.text("SELECT COUNT(*) FROM t__previous")).scalar()
    assert prev == 3


def test_chunked_write(store: TableStore) -> None:
    chunks = (frame(100, offset=100 * i) for i in range(5))
    assert store.write("chunked", chunks, primary_key=["game_id"]).rows == 500
    assert store.read("chunked").height == 500


def test_failed_write_leaves_published_table_intact(store: TableStore) -> None:
    store.write("t", frame(3), primary_key=["game_id"])

    def broken():
        yield frame(3, offset=50)
        raise ConnectionError("connection dropped mid-write")

    with pytest.raises(TableStoreError, match=r"published table is unchanged.*connection dropped"):
        store.write("t", broken(), primary_key=["game_id"])
    assert store.read("t")["game_id"].to_list() == [0, 1, 2]
    leftovers = [t for t in sa.inspect(store.engine).get_table_names() if "staging" in t]
    assert leftovers == []


def test_duplicate_primary_key_fails_cleanly(store: TableStore) -> None:
    store.write("t", frame(2), primary_key=["game_id"])
    with pytest.raises(TableStoreError, match="writing table t"):
        store.write("t", pl.concat([frame(2), frame(2)]), primary_key=["game_id"])
    assert store.read("t").height == 2


def test_unknown_table_is_a_clear_error(store: TableStore) -> None:
    with pytest.raises(TableStoreError, match="does not exist"):
        store.read("nope")


def test_mysql_connection_killed_mid_write_keeps_previous_table(mysql_db: dict) -> None:
    """A real connection drop: between two chunks the writer's MariaDB connection is killed from outside."""
    import pymysql

    store = TableStore(mysql_db["url"])
    store.write("batch_recommendations", frame(3), primary_key=["game_id"])
    admin = pymysql.connect(
        host=mysql_db["host"],
        port=mysql_db["port"],
        user="root",
        password="",
        database=mysql_db["db"],
        autocommit=True,
    )

    def chunks():
        yield frame(100, offset=1000)
        with admin.cursor() as cur:
            cur.execute(
                "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
                (mysql_db["db"],),
            )
            for (conn_id,) in cur.fetchall():
                cur.execute(f"KILL {int(conn_id)}")
        yield frame(100, offset=2000)

    with pytest.raises(TableStoreError, match="published table is unchanged"):
        store.write("batch_recommendations", chunks(), primary_key=["game_id"])
    assert store.read("batch_recommendations")["game_id"].to_list() == [0, 1, 2]
    admin.close()


def test_append_builds_a_history(store: TableStore) -> None:
    store.append("evaluation_history", frame(2))
    store.append("evaluation_history", frame(3, offset=10))
    assert store.read("evaluation_history", order_by=["game_id"])["game_id"].to_list() == [0, 1, 10, 11, 12]
    with pytest.raises(TableStoreError, match="differs"):
        store.append("evaluation_history", frame(1).drop("note"))
    assert store.read("evaluation_history").height == 5
