"""`interaction_events.key_name`: every event records who sent it (issue #22: the retraining sensor counts per write
key). Written and read back exactly on SQLite and MariaDB; a table created before the column existed gets it (NULL
for its rows, which are kept) on first use, whether that use is an append or a read."""

import pymysql
import pytest
import sqlalchemy as sa

from gamerec_assets.recsys.feedback import Event, check_event, now_us
from gamerec_assets.store.event_store import EVENTS_TABLE, KEY_COLUMN, READ_SCHEMA, EventStore
from gamerec_assets.store.table_store import TableStore


@pytest.fixture(params=["sqlite", "mysql"])
def tables(request: pytest.FixtureRequest, tmp_path) -> TableStore:
    if request.param == "sqlite":
        return TableStore(f"sqlite:///{tmp_path / 'gamerec.db'}")
    return TableStore(request.getfixturevalue("mysql_db")["url"])


def event(eid: str, user: str = "alice", game: int = 3) -> Event:
    return check_event(
        event_id=eid, user_id=user, game_id=game, type="play", value=None, timestamp=None, received_us=now_us()
    )


def test_each_event_keeps_its_sender_exactly(tables: TableStore) -> None:
    store = EventStore(tables)
    store.append([event("a1"), event("a2")], key_name="partner-a")
    store.append([event("n1")])  # no sender named (a direct append): NULL
    store.append([event("b1", "ゲーマー ")], key_name="answer:ゲーマー ")  # a browser's user, trailing space kept
    store.append([event("p1")], key_name="partner-a ")  # another sender than partner-a
    back = EventStore(tables).read()
    assert back.schema == READ_SCHEMA
    assert back["event_id"].to_list() == ["a1", "a2", "n1", "b1", "p1"]
    assert back[KEY_COLUMN].to_list() == ["partner-a", "partner-a", None, "answer:ゲーマー ", "partner-a "]
    assert store.read(after_seq=3)[KEY_COLUMN].to_list() == ["answer:ゲーマー ", "partner-a "]
    # a retried event keeps its first sender
    assert store.append([event("a1")], key_name="partner-b").accepted == [False]
    assert store.read(until_seq=1)[KEY_COLUMN].to_list() == ["partner-a"]


def test_an_empty_or_missing_table_reads_with_the_sender_column(tables: TableStore) -> None:
    assert EventStore(tables).read().schema == READ_SCHEMA  # no table
    store = EventStore(tables)
    store.ensure()
    assert store.read().schema == READ_SCHEMA  # a table without rows


SQLITE_OLD = f"""CREATE TABLE {EVENTS_TABLE} (seq INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    event_id VARCHAR(128) NOT NULL UNIQUE, user_id VARCHAR(128) NOT NULL, game_id BIGINT NOT NULL,
    type VARCHAR(16) NOT NULL, value FLOAT, timestamp_us BIGINT NOT NULL, received_us BIGINT NOT NULL,
    request_id VARCHAR(128), batch VARCHAR(16) NOT NULL)"""
MYSQL_OLD = f"""CREATE TABLE {EVENTS_TABLE} (seq BIGINT NOT NULL AUTO_INCREMENT,
    event_id VARCHAR(128) NOT NULL, user_id VARCHAR(128) NOT NULL, game_id BIGINT NOT NULL, type VARCHAR(16) NOT NULL,
    value DOUBLE, timestamp_us BIGINT NOT NULL, received_us BIGINT NOT NULL, request_id VARCHAR(128),
    batch VARCHAR(16) NOT NULL, PRIMARY KEY (seq), UNIQUE (event_id))
    ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE {{collation}}"""
OLD_ROWS = f"""INSERT INTO {EVENTS_TABLE} (event_id, user_id, game_id, type, value, timestamp_us, received_us,
    request_id, batch) VALUES ('old-1', 'bob', 3, 'play', 1.5, 10, 10, NULL, 'x'), ('old-2', 'bob ', 4, 'like', NULL,
    11, 11, 'r1', 'x')"""


def _old_table(tables: TableStore) -> None:
    """The events table as the code before senders created it, with two rows."""
    create = SQLITE_OLD if tables.dialect == "sqlite" else MYSQL_OLD.format(collation=tables.exact_collation())
    with tables.engine.begin() as conn:
        conn.exec_driver_sql(create)
        conn.exec_driver_sql(OLD_ROWS)
    assert KEY_COLUMN not in {c["name"] for c in sa.inspect(tables.engine).get_columns(EVENTS_TABLE)}


@pytest.mark.parametrize("first_use", ["read", "append"])
def test_an_older_table_gets_the_column_and_keeps_its_rows(tables: TableStore, first_use: str) -> None:
    _old_table(tables)
    store = EventStore(tables)
    if first_use == "read":  # the retraining sensor and user_logs read before anything is appended
        old = store.read()
        assert old["event_id"].to_list() == ["old-1", "old-2"] and old[KEY_COLUMN].to_list() == [None, None]
    assert store.append([event("new-1")], key_name="partner-a").last_seq == 3  # seqs go on
    back = EventStore(tables).read()
    assert back["event_id"].to_list() == ["old-1", "old-2", "new-1"]
    assert back["user_id"].to_list() == ["bob", "bob ", "alice"]
    assert back["value"].to_list() == [1.5, None, None] and back["request_id"].to_list() == [None, "r1", None]
    assert back[KEY_COLUMN].to_list() == [None, None, "partner-a"]
    EventStore(tables).ensure()  # another process's first use: the column is there, nothing to do


def test_the_added_column_compares_exactly_on_mariadb(mysql_db: dict) -> None:
    tables = TableStore(mysql_db["url"])
    _old_table(tables)
    store = EventStore(tables)
    store.append([event("e1")], key_name="k")
    store.append([event("e2")], key_name="k ")
    conn = pymysql.connect(host=mysql_db["host"], port=mysql_db["port"], user="root", database=mysql_db["db"])
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COLLATION_NAME, IS_NULLABLE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            f"AND TABLE_NAME = '{EVENTS_TABLE}' AND COLUMN_NAME = '{KEY_COLUMN}'"
        )
        assert cur.fetchall() == ((tables.exact_collation(), "YES"),)
        cur.execute(f"SELECT event_id FROM {EVENTS_TABLE} WHERE {KEY_COLUMN} = 'k'")
        assert cur.fetchall() == (("e1",),)  # 'k ' is another sender
