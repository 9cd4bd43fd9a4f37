"""Ids are equal only when their bytes are, on SQLite and MariaDB alike: trailing spaces, case and accents make
other ids, as keys of published tables, of appended tables and of `interaction_events`, and in filtered reads.

MariaDB's `utf8mb4_bin` pads with spaces ('padbob' = 'padbob '): a published `user_logs` with both users failed
with a duplicate primary key, 'pad-p1 ' was answered as a duplicate of 'pad-p1', and a lookup of '7 ' found '7'.
Tables created with that collation before are converted in place on first use.
"""

from __future__ import annotations

import polars as pl
import pymysql
import pytest
import sqlalchemy as sa

from gamerec_assets.recsys.feedback import Event, check_event, now_us
from gamerec_assets.store.event_store import EVENTS_TABLE, EventStore
from gamerec_assets.store.table_store import SCHEMA_TABLE, TableStore, TableStoreError

ODD = ["padbob", "padbob ", "Padbob", "padböb", "padbob\t", " padbob"]  # six distinct users


@pytest.fixture(params=["sqlite", "mysql"])
def store(request: pytest.FixtureRequest, tmp_path) -> TableStore:
    if request.param == "sqlite":
        return TableStore(f"sqlite:///{tmp_path / 'db' / 'gamerec.db'}")
    return TableStore(request.getfixturevalue("mysql_db")["url"])


def event(eid: str, user: str, game: int = 3, type: str = "play") -> Event:
    return check_event(
        event_id=eid, user_id=user, game_id=game, type=type, value=1.0, timestamp=None, received_us=now_us()
    )


def test_users_differing_by_a_trailing_space_are_two_keys_of_a_published_table(store: TableStore) -> None:
    logs = pl.DataFrame({"user_id": ODD, "game_id": [3] * len(ODD), "weight": [float(i) for i in range(len(ODD))]})
    assert store.write("user_logs", logs, primary_key=["user_id", "game_id"]).rows == len(ODD)
    back = store.read("user_logs")
    assert sorted(back["user_id"].to_list()) == sorted(ODD)
    assert back["user_id"].to_list() == sorted(ODD, key=str.encode)  # byte order, as written
    for i, user in enumerate(ODD):  # each lookup finds its own row only
        assert store.read("user_logs", where={"user_id": user})["weight"].to_list() == [float(i)]
    assert store.read("user_logs", where={"user_id": "padbob  "}).height == 0


def test_the_lookup_of_7_with_a_trailing_space_is_not_user_7(store: TableStore) -> None:
    batch = pl.DataFrame({"user_id": ["7", "7", "70"], "rank": [1, 2, 1], "game_id": [11, 12, 13]})
    store.write("batch_recommendations", batch, primary_key=["user_id", "rank"])
    assert store.read("batch_recommendations", where={"user_id": "7"}, order_by=["rank"])["game_id"].to_list() == [
        11,
        12,
    ]
    for other in ("7 ", " 7", "7\t", "07"):
        assert store.read("batch_recommendations", where={"user_id": other}).height == 0, other


def test_an_event_id_with_a_trailing_space_is_not_a_duplicate(store: TableStore) -> None:
    events = EventStore(store)
    assert events.append([event("pad-p1", "padbob")]).accepted == [True]
    again = events.append([event("pad-p1 ", "padbob "), event("pad-p1", "padbob"), event("PAD-p1", "padbob")])
    assert again.accepted == [True, False, True]
    back = events.read()
    assert back["event_id"].to_list() == ["pad-p1", "pad-p1 ", "PAD-p1"]
    assert back["user_id"].to_list() == ["padbob", "padbob ", "padbob"]


def test_standing_dislikes_keep_users_apart(store: TableStore) -> None:
    """'padbob ' dislikes a game 'padbob' liked later: the dislike stands for 'padbob ' only."""
    events = EventStore(store)
    stored = events.append([event("d", "padbob ", 5, "dislike"), event("l", "padbob", 5, "like")])
    dislikes = events.standing_dislikes(stored.last_seq)
    assert dislikes["user_id"].to_list() == ["padbob "] and dislikes["game_id"].to_list() == [5]


def test_an_appended_history_table_keeps_ids_apart(store: TableStore) -> None:
    first = pl.DataFrame({"model": ["itemcf"], "run": ["r1"], "value": [0.5]})
    store.write("evaluation_history", first, primary_key=["model", "run"])
    store.append("evaluation_history", pl.DataFrame({"model": ["itemcf "], "run": ["r1"], "value": [0.6]}))
    assert store.read("evaluation_history")["model"].to_list() == ["itemcf", "itemcf "]
    assert store.read("evaluation_history", where={"model": "itemcf "})["value"].to_list() == [0.6]


# -- tables created before ids compared exactly (MariaDB) ------------------------------------------------------------


def _exec(db: dict, *statements: str) -> list[tuple]:
    conn = pymysql.connect(host=db["host"], port=db["port"], user="root", password="", database=db["db"])
    out: list[tuple] = []
    with conn, conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
            out = list(cur.fetchall())
        conn.commit()
    return out


def _collations(db: dict, table: str) -> dict[str, str]:
    rows = _exec(
        db,
        "SELECT COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        f"AND TABLE_NAME = '{table}' AND COLLATION_NAME IS NOT NULL",
    )
    return dict(rows)


# The DDL the previous code emitted: utf8mb4_bin keys (PAD SPACE), the schema table in the database's default.
OLD_EVENTS = f"""CREATE TABLE {EVENTS_TABLE} (
    seq BIGINT NOT NULL AUTO_INCREMENT, event_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    user_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, game_id BIGINT NOT NULL,
    type VARCHAR(16) NOT NULL, value DOUBLE, timestamp_us BIGINT NOT NULL, received_us BIGINT NOT NULL,
    request_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, batch VARCHAR(16) NOT NULL,
    PRIMARY KEY (seq), UNIQUE (event_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
OLD_SCHEMA = f"""CREATE TABLE {SCHEMA_TABLE} (name VARCHAR(191) NOT NULL, columns TEXT NOT NULL,
    primary_key TEXT NOT NULL, `rows` BIGINT NOT NULL, PRIMARY KEY (name)) DEFAULT CHARSET=utf8mb4"""
OLD_HISTORY = """CREATE TABLE evaluation_history (model VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    run MEDIUMTEXT, value DOUBLE, PRIMARY KEY (model)) DEFAULT CHARSET=utf8mb4 COLLATE utf8mb4_bin"""
OLD_BATCH = """CREATE TABLE batch_recommendations (
    user_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, `rank` BIGINT NOT NULL,
    game_id BIGINT, PRIMARY KEY (user_id, `rank`)) DEFAULT CHARSET=utf8mb4 COLLATE utf8mb4_bin"""
RECORDS = f"""INSERT INTO {SCHEMA_TABLE} VALUES
    ('evaluation_history', '{{"model": "String", "run": "String", "value": "Float64"}}', '["model"]', 1),
    ('batch_recommendations', '{{"user_id": "String", "rank": "Int64", "game_id": "Int64"}}',
     '["user_id", "rank"]', 2)"""


def test_tables_created_with_the_padding_collation_are_converted_on_first_use(mysql_db: dict) -> None:
    _exec(
        mysql_db,
        OLD_EVENTS,
        OLD_SCHEMA,
        OLD_HISTORY,
        OLD_BATCH,
        RECORDS,
        f"INSERT INTO {EVENTS_TABLE} (event_id, user_id, game_id, type, timestamp_us, received_us, batch) "
        "VALUES ('pad-p1', 'padbob', 3, 'play', 1, 1, 'old')",
        "INSERT INTO evaluation_history VALUES ('itemcf', 'r0', 0.5)",
        "INSERT INTO batch_recommendations VALUES ('7', 1, 11), ('7', 2, 12)",
    )
    # what the old collation did: 'pad-p1 ' is the stored 'pad-p1'
    assert _exec(mysql_db, f"SELECT COUNT(*) FROM {EVENTS_TABLE} WHERE event_id = 'pad-p1 '") == [(1,)]
    store = TableStore(str(mysql_db["url"]))

    # a filtered read of a table not yet rewritten is exact already (read-only: it converts nothing)
    assert store.read("batch_recommendations", where={"user_id": "7 "}).height == 0
    assert store.read("batch_recommendations", where={"user_id": "7"})["game_id"].to_list() == [11, 12]
    assert set(_collations(mysql_db, "batch_recommendations").values()) == {"utf8mb4_bin"}

    # interaction_events: converted when an EventStore first uses it, the stored event kept
    events = EventStore(store)
    assert events.append([event("pad-p1 ", "padbob ")]).accepted == [True]
    assert events.read()["event_id"].to_list() == ["pad-p1", "pad-p1 "]
    assert set(_collations(mysql_db, EVENTS_TABLE).values()) == {"utf8mb4_nopad_bin"}
    assert store.inexact_columns(EVENTS_TABLE) == {}

    # an appended history table, and the schema table on the first write
    store.append("evaluation_history", pl.DataFrame({"model": ["itemcf "], "run": ["r1"], "value": [0.6]}))
    assert store.read("evaluation_history")["model"].to_list() == ["itemcf", "itemcf "]
    assert set(_collations(mysql_db, "evaluation_history").values()) == {"utf8mb4_nopad_bin"}
    assert set(_collations(mysql_db, SCHEMA_TABLE).values()) == {"utf8mb4_nopad_bin"}

    # a published table gets the exact collation from its next write
    batch = pl.DataFrame({"user_id": ["7", "7 "], "rank": [1, 1], "game_id": [11, 99]})
    store.write("batch_recommendations", batch, primary_key=["user_id", "rank"])
    assert set(_collations(mysql_db, "batch_recommendations").values()) == {"utf8mb4_nopad_bin"}
    assert store.read("batch_recommendations", where={"user_id": "7 "})["game_id"].to_list() == [99]


def test_a_refused_conversion_says_what_to_run(mysql_db: dict) -> None:
    """A service account without ALTER gets the statement to run, not a duplicate key later."""
    _exec(mysql_db, OLD_EVENTS)
    user = f"ro_{mysql_db['db'][-6:]}"
    _exec(
        mysql_db,
        f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'",
        f"GRANT SELECT, INSERT ON `{mysql_db['db']}`.* TO '{user}'@'%'",
    )
    try:
        url = sa.make_url(str(mysql_db["url"])).set(username=user, password="pw")
        events = EventStore(TableStore(url.render_as_string(hide_password=False)))
        with pytest.raises(TableStoreError, match=r"ALTER TABLE `interaction_events` CONVERT TO .*utf8mb4_nopad_bin"):
            events.append([event("pad-p1", "padbob")])
    finally:
        _exec(mysql_db, f"DROP USER '{user}'@'%'")


def test_public_cursor_names_the_action_and_discards_a_failed_connection(store: TableStore) -> None:
    """`cursor` (what EventStore's raw-cursor paths use): a failure is a TableStoreError naming the action and the
    database, and its connection is not handed back to the pool (the next cursor gets another one)."""
    ident = "SELECT CONNECTION_ID()" if store.dialect == "mysql" else "SELECT 1"
    with store.cursor("probing") as (_, cursor):
        cursor.execute(ident)
        first = cursor.fetchone()[0]
    with store.cursor("probing") as (_, cursor):  # a healthy connection goes back to the pool and is reused
        cursor.execute(ident)
        assert cursor.fetchone()[0] == first
    failing = store.cursor("reading nothing from")
    with pytest.raises(TableStoreError, match=r"^reading nothing from .* failed: .*no_such_table"), failing as (_, c):
        c.execute(f"SELECT x FROM no_such_table WHERE x = {store.placeholder}", (1,))
    if store.dialect == "mysql":
        with store.cursor("probing") as (_, cursor):
            cursor.execute(ident)
            assert cursor.fetchone()[0] != first
