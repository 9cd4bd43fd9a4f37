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

    with pytest.raises(TableStoreError, match="published table is unchanged") as info:
        store.write("batch_recommendations", chunks(), primary_key=["game_id"])
    assert f"server at {mysql_db['host']}:{mysql_db['port']} closed the connection: server gone away" in str(info.value)
    assert store.read("batch_recommendations")["game_id"].to_list() == [0, 1, 2]
    admin.close()


def _admin(mysql_db: dict):
    import pymysql

    return pymysql.connect(
        host=mysql_db["host"], port=mysql_db["port"], user="root", password="", database=mysql_db["db"], autocommit=True
    )


def test_mysql_connection_killed_while_streaming_a_chunk_names_the_real_cause(mysql_db: dict) -> None:
    """KILL while LOAD DATA streams a large chunk: PyMySQL's own cleanup then fails with "'NoneType' object has no
    attribute 'sendall'"; the error must name the server going away instead, come fast, and keep the table."""
    import threading
    import time

    store = TableStore(mysql_db["url"], read_timeout=5, write_timeout=5)
    store.write("t", frame(3), primary_key=["game_id"])
    big = pl.DataFrame({"game_id": pl.Series(range(1_000_000), dtype=pl.Int64), "name": ["y" * 40] * 1_000_000})
    admin = _admin(mysql_db)
    for _attempt in range(3):  # the kill must land while the chunk is on the wire; a chunk that got through retries
        killed = threading.Event()

        def killer(killed: threading.Event = killed) -> None:
            deadline = time.monotonic() + 30
            with admin.cursor() as cur:
                while time.monotonic() < deadline:
                    cur.execute(
                        "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID() "
                        "AND info LIKE 'LOAD DATA%%'",
                        (mysql_db["db"],),
                    )
                    ids = [int(i) for (i,) in cur.fetchall()]
                    for conn_id in ids:
                        cur.execute(f"KILL {conn_id}")
                    if ids:
                        killed.set()
                        return
                    time.sleep(0.002)

        def chunks():
            threading.Thread(target=killer, daemon=True).start()
            yield big

        start = time.monotonic()
        try:
            store.write("t", chunks(), primary_key=["game_id"])
        except TableStoreError as exc:
            elapsed = time.monotonic() - start
            message = str(exc)
            break
        store.write("t", frame(3), primary_key=["game_id"])
    else:
        pytest.fail("the kill never landed during the load")
    assert killed.is_set()
    assert "published table is unchanged" in message and "sendall" not in message, message
    assert f"MySQL server at {mysql_db['host']}:{mysql_db['port']}" in message, message
    assert "server gone away" in message or "did not answer within" in message, message
    assert elapsed < 20, elapsed
    assert store.read("t")["game_id"].to_list() == [0, 1, 2]
    admin.close()


def test_mysql_timeouts_are_set_and_a_timeout_is_named(mysql_db: dict) -> None:
    """Defaults on every connection; a read that the server does not answer (the table locked by another session)
    fails after read_timeout, naming it, instead of waiting for the lock."""
    import threading
    import time

    store = TableStore(mysql_db["url"])
    with store.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert (raw.connect_timeout, raw._read_timeout, raw._write_timeout) == (10, 300, 300)
    store = TableStore(mysql_db["url"], connect_timeout=2, read_timeout=1, write_timeout=1)
    store.write("t", frame(3), primary_key=["game_id"])
    admin = _admin(mysql_db)
    with admin.cursor() as cur:
        cur.execute("LOCK TABLES t WRITE")
    release = threading.Timer(15, lambda: admin.cursor().execute("UNLOCK TABLES"))
    release.start()
    start = time.monotonic()
    try:
        with pytest.raises(TableStoreError, match=r"reading table t .* did not answer within read_timeout=1 s"):
            store.read("t")
        assert time.monotonic() - start < 10
    finally:
        release.cancel()
        with admin.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        admin.close()
    assert store.read("t")["game_id"].to_list() == [0, 1, 2]


def test_mysql_unreachable_server_names_host_and_port() -> None:
    from tests.conftest import free_port

    port = free_port()  # nothing listens there
    store = TableStore(f"mysql+pymysql://root@127.0.0.1:{port}/nope", connect_timeout=2)
    with pytest.raises(TableStoreError, match=rf"cannot connect to the MySQL server at 127\.0\.0\.1:{port}"):
        store.write("t", frame(3), primary_key=["game_id"])
    with pytest.raises(TableStoreError, match=rf"127\.0\.0\.1:{port}"):
        store.exists("t")


def test_append_builds_a_history(store: TableStore) -> None:
    store.append("evaluation_history", frame(2))
    store.append("evaluation_history", frame(3, offset=10))
    assert store.read("evaluation_history", order_by=["game_id"])["game_id"].to_list() == [0, 1, 10, 11, 12]
    with pytest.raises(TableStoreError, match="differs"):
        store.append("evaluation_history", frame(1).drop("note"))
    assert store.read("evaluation_history").height == 5


def test_read_returns_rows_in_primary_key_order(store: TableStore) -> None:
    original = frame(50).sample(fraction=1.0, shuffle=True, seed=1)
    store.write("t", original, primary_key=["game_id"])
    assert store.read("t")["game_id"].to_list() == list(range(50))
    assert store.read("t", order_by=["rank"])["rank"].to_list() == list(range(50))
    assert store.primary_key("t") == ["game_id"]


def test_text_user_ids_are_keys_that_keep_case_and_any_script(store: TableStore) -> None:
    """user ids are VARCHAR(128) utf8mb4 keys with a binary collation: `Alice` and `alice` are two users."""
    uuid = "b0f6c2de-1d4e-4c59-9a35-3f8f2d8e7a11"
    ids = ["Alice", "alice", "76561197960287930", "ユーザー", uuid, "x" * 128, 'q"u,o\\te']
    frame = pl.DataFrame({"user_id": ids, "rank": [1] * len(ids), "game_id": list(range(len(ids)))})
    frame = frame.with_columns(pl.col("rank").cast(pl.Int32))
    store.write("recs", frame, primary_key=["user_id", "rank"])
    back = store.read("recs")
    assert back.schema["user_id"] == pl.Utf8 and sorted(back["user_id"].to_list()) == sorted(ids)
    assert back.sort("user_id").equals(frame.sort("user_id"))
