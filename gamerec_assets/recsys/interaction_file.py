"""Bring-your-own interactions: a CSV or Parquet file of who did what with which game, aggregated to user_logs.

Format (one row per event):

| column | required | type |
|---|---|---|
| `user_id` | yes | any string or integer id, at most 128 characters (vanity names, UUIDs; 7 and "7" are one user) |
| `game_id` | yes | the catalogue's integer id |
| `type` (or `event`) | no (default `play`) | one of `feedback.EVENT_TYPES`, as `POST /events`' `type` (any case) |
| `value` | no | hours played, for `play` rows (a pair's play rows are summed); ignored for other events |
| `timestamp` | no | ISO 8601 date or date-time, or Unix seconds; orders a pair's events (else file order) |
| `title` | no | the game's title, kept for games the catalogue does not have |

`event` is the column's earlier name, still read (a file with both is refused). The rows are events like
`POST /events`' (the same field names) and become (user, game) pairs by the same rule, `feedback.event_pairs`
with the one weight table (`feedback.EVENT_WEIGHTS`, or the run's `event_weights`): a pair weighs the largest
weight of its event types, play `1 + log1p(total hours)` times the play weight (the steam-200k log's weight); a
`dislike` newer than the pair's latest play, purchase or like removes the pair (rows without a timestamp count as
older than timed ones, in file order); pairs whose events all weigh 0 (impressions, clicks by default) are no
interaction. Both are counted in the report. A bad file raises `InteractionFileError` naming the file, the row and
the problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from gamerec_assets.recsys.catalogue_file import (
    DataFileError,
    cast_column,
    check_game_ids,
    first_bad,
    read_table,
    require_columns,
    where,
)
from gamerec_assets.recsys.feedback import EVENT_TYPES, EVENT_WEIGHTS, event_pairs

MAX_USER_ID = 128  # characters: the tables' VARCHAR(128) key
TYPE_COLUMNS = ("type", "event")  # POST /events' field name; the file format's earlier name
LOG_SCHEMA = {"user_id": pl.Utf8, "game_id": pl.Int64, "weight": pl.Float64, "title": pl.Utf8}


class InteractionFileError(DataFileError):
    """An interaction file that cannot be used."""


@dataclass
class InteractionReport:
    rows_in: int
    events: dict[str, int] = field(default_factory=dict)
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    pairs_disliked: int = 0  # pairs a dislike removed
    pairs_unweighted: int = 0  # pairs whose events all weigh 0 (impressions, clicks)

    def metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rows_in": self.rows_in,
            "events": str(self.events),
            "file_pairs_disliked": self.pairs_disliked,
            "file_pairs_unweighted": self.pairs_unweighted,
        }
        if self.first_timestamp:
            out |= {"first_timestamp": self.first_timestamp, "last_timestamp": self.last_timestamp}
        return out


def user_id_text(series: pl.Series) -> pl.Series:
    """User ids as text: integers become their decimal strings, text is stripped."""
    if series.dtype.is_integer():
        return series.cast(pl.Utf8)
    if series.dtype.is_float():  # an integer column with nulls read as float
        return pl.Series(series.name, [None if v is None else str(int(v)) if v == int(v) else str(v) for v in series])
    return series.cast(pl.Utf8).str.strip_chars()


def _parse_time(text: str | None) -> datetime | None:
    """ISO 8601 (date, date-time, `Z` or an offset; aware times in UTC) or Unix seconds; None when unparseable."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        return datetime.fromtimestamp(float(text), UTC).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _timestamps(raw: pl.Series, path: str | Path, csv: bool) -> pl.Series:
    if raw.dtype.is_temporal():
        return raw.cast(pl.Datetime("us"))
    if raw.dtype.is_numeric():
        return (raw.cast(pl.Float64) * 1e6).cast(pl.Int64).cast(pl.Datetime("us"))
    text = raw.cast(pl.Utf8).str.strip_chars()
    distinct = text.unique().drop_nulls()
    parsed_by_text = {t: _parse_time(t) for t in distinct.to_list()}
    parsed = text.replace_strict(parsed_by_text, default=None, return_dtype=pl.Datetime("us"))
    bad = first_bad(parsed.is_null() & text.is_not_null() & (text != ""))
    if bad is not None:
        raise InteractionFileError(
            f"{where(path, bad, csv)}: timestamp {raw[bad]!r} is not an ISO 8601 date-time or Unix seconds"
        )
    return parsed


def read_interactions(
    path: str | Path, weights: Mapping[str, float] = EVENT_WEIGHTS
) -> tuple[pl.DataFrame, InteractionReport]:
    """user_id (text), game_id, weight, title: one row per (user, game) with weight, sorted; or
    InteractionFileError. `weights`: per event type, on top of EVENT_WEIGHTS (the run's `event_weights`)."""
    frame, csv = read_table(path, InteractionFileError)
    require_columns(frame, path, ("user_id", "game_id"), InteractionFileError)
    if frame.height == 0:
        raise InteractionFileError(f"{path}: no interactions")
    users = user_id_text(frame["user_id"])
    bad = first_bad(users.is_null() | (users == ""))
    if bad is not None:
        raise InteractionFileError(f"{where(path, bad, csv)}: user_id is missing")
    bad = first_bad(users.str.len_chars() > MAX_USER_ID)
    if bad is not None:
        raise InteractionFileError(f"{where(path, bad, csv)}: user_id is longer than {MAX_USER_ID} characters")
    games_raw = frame["game_id"]
    if games_raw.dtype == pl.Utf8:
        frame = frame.with_columns(pl.col("game_id").str.strip_chars().replace("", None))
    games = cast_column(frame, "game_id", pl.Int64(), path, csv, InteractionFileError, strict_int=True)
    check_game_ids(games, games_raw, path, csv, InteractionFileError)
    named = [c for c in TYPE_COLUMNS if c in frame.columns]
    if len(named) > 1:
        raise InteractionFileError(f"{path}: columns `type` and `event` both give the event type: keep `type`")
    if named:
        column = named[0]
        events = frame[column].cast(pl.Utf8).str.strip_chars().str.to_lowercase().fill_null("play").replace("", "play")
        bad = first_bad(~events.is_in(list(EVENT_TYPES)))
        if bad is not None:
            raise InteractionFileError(
                f"{where(path, bad, csv)}: {column} {frame[column][bad]!r} is not one of {', '.join(EVENT_TYPES)}"
            )
    else:
        events = pl.Series("event", ["play"] * frame.height)
    if "value" in frame.columns:
        if frame["value"].dtype == pl.Utf8:
            frame = frame.with_columns(pl.col("value").str.strip_chars().replace("", None))
        values = cast_column(frame, "value", pl.Float64(), path, csv, InteractionFileError)
        bad = first_bad((values < 0).fill_null(False))
        if bad is not None:
            raise InteractionFileError(f"{where(path, bad, csv)}: value {frame['value'][bad]!r} is negative")
    else:
        values = pl.Series("value", [None] * frame.height, pl.Float64)
    report = InteractionReport(frame.height, dict(sorted(events.value_counts().iter_rows())))
    stamps = pl.Series("timestamp_us", [None] * frame.height, pl.Int64)
    if "timestamp" in frame.columns:
        parsed = _timestamps(frame["timestamp"], path, csv)
        if parsed.is_not_null().any():
            report.first_timestamp, report.last_timestamp = str(parsed.min()), str(parsed.max())
        stamps = parsed.dt.epoch("us")
    titles = (
        frame["title"].cast(pl.Utf8).str.strip_chars().replace("", None)
        if "title" in frame.columns
        else pl.Series("title", [None] * frame.height, pl.Utf8)
    )
    rows = pl.DataFrame(
        {
            "seq": pl.int_range(frame.height, dtype=pl.Int64, eager=True),  # file order breaks timestamp ties
            "user_id": users,
            "game_id": games,
            "type": events,
            "value": values,
            "timestamp_us": stamps,
            "title": titles,
        }
    )
    try:
        pairs = event_pairs(rows, weights)
    except ValueError as exc:  # a weight table the caller did not check
        raise InteractionFileError(f"{path}: {exc}") from exc
    report.pairs_disliked = int(pairs["removed"].sum())
    report.pairs_unweighted = int((~pairs["removed"] & (pairs["weight"] <= 0)).sum())
    named = rows.group_by("user_id", "game_id").agg(pl.col("title").drop_nulls().first())
    logs = (
        pairs.filter(~pl.col("removed") & (pl.col("weight") > 0))
        .join(named, on=["user_id", "game_id"], how="left")
        .select("user_id", "game_id", "weight", "title")
        .sort("user_id", "game_id")
    )
    if logs.height == 0:
        raise InteractionFileError(
            f"{path}: no (user, game) pair has weight (disliked: {report.pairs_disliked}, only events that weigh 0: "
            f"{report.pairs_unweighted})"
        )
    assert np.all(np.isfinite(logs["weight"].to_numpy()))
    return logs.cast(LOG_SCHEMA), report  # type: ignore[arg-type]
