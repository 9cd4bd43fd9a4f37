"""Bring-your-own interactions: a CSV or Parquet file of who did what with which game, aggregated to user_logs.

Format (one row per event):

| column | required | type |
|---|---|---|
| `user_id` | yes | any string or integer id, at most 128 characters (vanity names, UUIDs; 7 and "7" are one user) |
| `game_id` | yes | the catalogue's integer id |
| `event` | no (default `play`) | `play`, `purchase`, `like`, `wishlist`, `view` (case-insensitive) |
| `value` | no | hours played, for `play` rows (a pair's play rows are summed); ignored for other events |
| `timestamp` | no | ISO 8601 date or date-time, or Unix seconds; checked and reported (the split is not temporal) |
| `title` | no | the game's title, kept for games the catalogue does not have |

A (user, game) pair's weight is the largest of its events' weights (`EVENT_WEIGHTS`); play counts
`1 + log1p(total hours)`, the steam-200k log's weight. A bad file raises `InteractionFileError` naming the file,
the row and the problem.
"""

from __future__ import annotations

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

MAX_USER_ID = 128  # characters: the tables' VARCHAR(128) key
# play is 1 + log1p(hours) (1 without a value); the others are fixed: a like says more than an unplayed purchase
EVENT_WEIGHTS = {"play": 1.0, "purchase": 1.0, "like": 2.0, "wishlist": 0.5, "view": 0.25}
LOG_SCHEMA = {"user_id": pl.Utf8, "game_id": pl.Int64, "weight": pl.Float64, "title": pl.Utf8}


class InteractionFileError(DataFileError):
    """An interaction file that cannot be used."""


@dataclass
class InteractionReport:
    rows_in: int
    events: dict[str, int] = field(default_factory=dict)
    first_timestamp: str | None = None
    last_timestamp: str | None = None

    def metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rows_in": self.rows_in, "events": str(self.events)}
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


def read_interactions(path: str | Path) -> tuple[pl.DataFrame, InteractionReport]:
    """user_id (text), game_id, weight, title: one row per (user, game), sorted; or InteractionFileError."""
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
    if "event" in frame.columns:
        events = frame["event"].cast(pl.Utf8).str.strip_chars().str.to_lowercase().fill_null("play").replace("", "play")
        bad = first_bad(~events.is_in(list(EVENT_WEIGHTS)))
        if bad is not None:
            raise InteractionFileError(
                f"{where(path, bad, csv)}: event {frame['event'][bad]!r} is not one of {sorted(EVENT_WEIGHTS)}"
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
    if "timestamp" in frame.columns:
        stamps = _timestamps(frame["timestamp"], path, csv)
        if stamps.is_not_null().any():
            report.first_timestamp, report.last_timestamp = str(stamps.min()), str(stamps.max())
    titles = (
        frame["title"].cast(pl.Utf8).str.strip_chars().replace("", None)
        if "title" in frame.columns
        else pl.Series("title", [None] * frame.height, pl.Utf8)
    )
    rows = pl.DataFrame(
        {"user_id": users, "game_id": games, "event": events, "value": values, "title": titles}
    ).with_columns(pl.col("event").replace_strict(EVENT_WEIGHTS, return_dtype=pl.Float64).alias("fixed"))
    logs = (
        rows.group_by("user_id", "game_id")
        .agg(
            pl.col("fixed").max(),
            pl.col("value").filter(pl.col("event") == "play").sum().alias("hours"),
            (pl.col("event") == "play").any().alias("played"),
            pl.col("title").drop_nulls().first(),
        )
        .with_columns(
            pl.max_horizontal(
                "fixed", pl.when("played").then(1.0 + pl.col("hours").fill_null(0.0).log1p()).otherwise(0.0)
            ).alias("weight")
        )
        .select("user_id", "game_id", "weight", "title")
        .sort("user_id", "game_id")
    )
    assert np.all(np.isfinite(logs["weight"].to_numpy()))
    return logs.cast(LOG_SCHEMA), report  # type: ignore[arg-type]
