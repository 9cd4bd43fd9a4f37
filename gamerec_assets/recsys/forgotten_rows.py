"""Forgotten players left out of the training data (`user_logs`) and the batch job: the rows of a base source the
forget cannot edit (a simulated or file log, the steam dump) and events up to each forget's `until_seq` (erased
already; this covers one that committed late). A player's events after their forget are them coming back, and
stay. `forgotten`: user_id (text), until_seq, as `store.forgotten_users.ForgottenUsers.frame` returns it.
"""

from __future__ import annotations

import polars as pl


def _forgotten_ids(forgotten: pl.DataFrame) -> pl.Series:
    return forgotten["user_id"].cast(pl.Utf8).unique()


def without_forgotten_users(logs: pl.DataFrame, forgotten: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """`logs` (any user_id dtype: an integer id is its decimal string) without the forgotten users' rows; the rows
    dropped."""
    if not forgotten.height or not logs.height:
        return logs, 0
    kept = logs.filter(~pl.col("user_id").cast(pl.Utf8).is_in(_forgotten_ids(forgotten).implode()))
    return kept, logs.height - kept.height


def without_forgotten_events(events: pl.DataFrame, forgotten: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """`events` (user_id, seq, ...) without the forgotten users' events up to their forget; the events dropped."""
    if not forgotten.height or not events.height:
        return events, 0
    until = dict(zip(forgotten["user_id"].to_list(), forgotten["until_seq"].to_list(), strict=True))
    bound = pl.col("user_id").replace_strict(until, default=None, return_dtype=pl.Int64)
    kept = events.filter(bound.is_null() | (pl.col("seq") > bound))
    return kept, events.height - kept.height
