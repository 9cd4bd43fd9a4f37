"""The `batch_recommendations` table as the recommendations answer reads it: one user's precomputed rows.

The query adapts to the table's schema: an integer `user_id` column holds no user whose id is not a decimal
int64 (and MySQL would coerce 'abc' to 0), so such ids are not looked up at all. Runs in a worker thread.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import polars as pl

from gamerec_api.schemas import MAX_ID
from gamerec_assets.store.table_store import TableStore, TableStoreError

log = logging.getLogger("gamerec_api")
BATCH_TABLE = "batch_recommendations"
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_INTEGER_TYPES = (pl.Int64, pl.Int32, pl.Int16, pl.Int8, pl.UInt64, pl.UInt32, pl.UInt16, pl.UInt8)
BatchRow = tuple[int, int, float, str]  # rank, game_id, score, source


def user_value(tables: TableStore, user_id: str) -> int | str | None:
    """The user id as the table's `user_id` column holds it; None when that column cannot hold this user."""
    numeric = tables.schema(BATCH_TABLE).get("user_id") in _INTEGER_TYPES
    if not numeric:
        return user_id
    return int(user_id) if _DECIMAL.fullmatch(user_id) and int(user_id) <= MAX_ID else None


def batch_rows(open_tables: Callable[[], TableStore], user_id: str) -> tuple[str | None, list[BatchRow] | None]:
    """(the table's model version for this user, its rows by rank), (None, None) when there are none or the table
    store fails (logged: the reason names hosts and paths, the client only sees `computed`)."""
    try:
        tables = open_tables()  # opening may fail too (the store is down)
        if not tables.exists(BATCH_TABLE):
            return None, None
        value = user_value(tables, user_id)
        if value is None:
            return None, None
        frame = tables.read(BATCH_TABLE, where={"user_id": value}, order_by=["rank"])
    except TableStoreError as exc:
        log.warning("batch recommendations: the table store failed: %s", exc)
        return None, None
    if frame.height == 0:
        return None, None
    columns = (frame[c].to_list() for c in ("rank", "game_id", "score", "source"))
    return str(frame["model_version"][0]), list(zip(*columns, strict=True))
