"""The whole graph after events whose ids differ only by a trailing space (issue 22), on SQLite and MariaDB.

On MariaDB, `utf8mb4_bin` compared 'padbob' and 'padbob ' as equal, so every refresh after such plays failed in
`user_logs` with a duplicate primary key. Here a refresh passes, both players keep their own histories, and every
text column of every table the project wrote compares exactly (MariaDB: `utf8mb4_nopad_bin`; SQLite: BINARY)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pymysql
import pytest

from gamerec_assets import backends
from gamerec_assets.definitions import build_definitions
from gamerec_assets.recsys.feedback import check_event
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store import ModelRegistry, TableStore
from gamerec_assets.store.event_store import EventStore

pytestmark = pytest.mark.integration  # a whole-graph run (make test-fast leaves it out)

FAST = {"item_similarity": {"config": {"strategy": "fixed"}}}  # selection is not what this tests
T0 = 1_796_000_000_000_000  # 2026-11-30, in microseconds
# Tables a refresh with events writes (each checked, and no table escapes the walk below)
WRITTEN = {"gamerec_tables", "game_features", "user_logs", "batch_recommendations", "interaction_events"}


def refresh(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("refresh_all").execute_in_process(instance=instance, run_config={"ops": FAST})


def text_columns_mysql(db: dict) -> tuple[dict[tuple[str, str], str], dict[str, str], set[tuple[str, str]]]:
    """({(table, column): collation} of every text column, {table: default collation}, {(table, column) in an
    index}) of the whole database."""
    conn = pymysql.connect(host=db["host"], port=db["port"], user="root", password="", autocommit=True)
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND COLLATION_NAME IS NOT NULL",
            (db["db"],),
        )
        columns = {(t, c): k for t, c, k in cur.fetchall()}
        cur.execute(
            "SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (db["db"],)
        )
        tables = dict(cur.fetchall())
        cur.execute(
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s", (db["db"],)
        )
        indexed = set(cur.fetchall())
    return columns, tables, indexed


def check_every_text_column_is_exact_mysql(db: dict) -> None:
    columns, tables, indexed = text_columns_mysql(db)
    assert set(tables) >= WRITTEN, sorted(tables)
    assert {t: k for t, k in tables.items() if k != "utf8mb4_nopad_bin"} == {}
    assert {tc: k for tc, k in columns.items() if k != "utf8mb4_nopad_bin"} == {}
    text_keys = {tc for tc in indexed if tc in columns}  # every text column in a primary key, unique key or index
    for key in [
        ("user_logs", "user_id"),
        ("batch_recommendations", "user_id"),
        ("interaction_events", "event_id"),
        ("gamerec_tables", "name"),
    ]:
        assert key in text_keys, (key, sorted(text_keys))


def check_every_text_column_is_exact_sqlite(store: TableStore) -> None:
    """SQLite compares text with BINARY (memcmp) unless a column or index names another collation: none does."""
    with store.engine.connect() as conn:
        ddl = dict(conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall())
    assert set(ddl) >= WRITTEN, sorted(ddl)
    assert {n: s for n, s in ddl.items() if "COLLATE" in s.upper() and "BINARY" not in s.upper()} == {}


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_a_refresh_passes_after_ids_differing_by_a_trailing_space(
    backend: str, gamerec_home: Path, request: pytest.FixtureRequest
) -> None:
    env = {"GAMEREC_HOME": str(gamerec_home)}
    db = request.getfixturevalue("mysql_db") if backend == "mysql" else None
    if db is not None:
        env["GAMEREC_MYSQL_URL"] = str(db["url"])
    defs = build_definitions(env)
    storage = StorageSettings.from_env(env)
    tables = backends.table_store(storage)
    assert tables.dialect == ("mysql" if db else "sqlite")
    with dg.instance_for_test() as instance:
        assert refresh(defs, instance).success
        games = tables.read("game_features")["game_id"].to_list()

        def play(eid: str, user: str, game: int, at: int) -> object:
            return check_event(
                event_id=eid, user_id=user, game_id=game, type="play", value=1.0, timestamp=None, received_us=T0 + at
            )

        # the same games for both players: one (user_id, game_id) key each in user_logs
        events = [play(f"pad-p{i}", "padbob", g, i) for i, g in enumerate(games[:3])]
        events += [play(f"pad-p{i} ", "padbob ", g, 10 + i) for i, g in enumerate(games[:3])]
        stored = EventStore(tables).append(events)
        assert stored.accepted == [True] * 6, "'pad-pN ' is not a duplicate of 'pad-pN'"

        second = refresh(defs, instance)
        assert second.success

        logs = tables.read("user_logs")
        for user in ("padbob", "padbob "):
            assert sorted(logs.filter(pl.col("user_id") == user)["game_id"].to_list()) == sorted(games[:3]), user
        batch = tables.read("batch_recommendations")
        assert {"padbob", "padbob "} <= set(batch["user_id"].to_list())
        meta = {
            e.asset_key.to_user_string(): e.materialization.metadata for e in second.get_asset_materialization_events()
        }
        model = ModelRegistry(backends.artifact_store(storage)).load(str(meta["item_similarity"]["version"].value))
        serving = model.serving
        known = [serving.user_id(r) for r in range(serving.n_users)]
        assert known.count("padbob") == 1 and known.count("padbob ") == 1, "the model keeps both players"
        if db is not None:
            check_every_text_column_is_exact_mysql(db)
        else:
            check_every_text_column_is_exact_sqlite(tables)
    tables.engine.dispose()
