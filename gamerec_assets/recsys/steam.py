"""Reader for the steam-200k purchase/play log (Kaggle "Steam Video Games", Tamber).

The raw file has no header: `user_id,"game_title",behavior,value,0` with behavior `purchase` (value 1.0) or `play`
(value = cumulative hours). It holds exact duplicate rows, repeated (user, title, behavior) keys and titles with
stray spaces, so the reader aggregates to one row per (user, title):

- purchased: True when any purchase row exists for the pair;
- hours: the largest play value (hours are cumulative, so a repeated play row is a later or equal reading), 0.0
  when the pair has no play row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from gamerec_assets.recsys.linking import link_titles

RAW_SCHEMA = {
    "user_id": pl.Int64,
    "title": pl.Utf8,
    "behavior": pl.Utf8,
    "value": pl.Float64,
    "zero": pl.Int64,
}


def read_steam_log(path: str | Path) -> pl.DataFrame:
    """One row per (user_id, title): user_id Int64, title Utf8 (stripped), purchased Boolean, hours Float64."""
    raw = pl.read_csv(path, has_header=False, schema=RAW_SCHEMA, quote_char='"')
    unknown = raw.filter(~pl.col("behavior").is_in(["purchase", "play"]))
    if unknown.height:
        raise ValueError(f"unknown behavior values: {sorted(unknown['behavior'].unique().to_list())}")
    return (
        raw.with_columns(pl.col("title").str.strip_chars())
        .group_by("user_id", "title")
        .agg(
            (pl.col("behavior") == "purchase").any().alias("purchased"),
            pl.col("value").filter(pl.col("behavior") == "play").max().fill_null(0.0).alias("hours"),
        )
        .sort("user_id", "title")
    )


def implicit_weight(hours: np.ndarray | pl.Series | float) -> np.ndarray:
    """Confidence of an interaction: 1 + log1p(hours).

    An owned-but-unplayed game counts 1; play time adds with diminishing returns, so a 1,000-hour game does not
    drown out the rest of a user's library (log1p keeps 0 h at exactly +0).
    """
    h = np.asarray(hours.to_numpy() if isinstance(hours, pl.Series) else hours, dtype=np.float64)
    if np.any(h < 0):
        raise ValueError("hours must be non-negative")
    return 1.0 + np.log1p(h)


def steam_interactions(log: pl.DataFrame, game_features: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(user logs: user_id Utf8, game_id, weight, title; the title links) of a `read_steam_log` frame: each title
    linked to a catalogue game (`linking.link_titles`; an unmatched title gets its own stable id), weighted by
    `implicit_weight`, one row per (user, game) with the largest weight (two titles may link to one game)."""
    links = link_titles(log["title"], game_features)
    log = log.with_columns(pl.Series("weight", implicit_weight(log["hours"].to_numpy()), dtype=pl.Float64))
    logs = log.join(links, on="title", how="left", maintain_order="left").select(
        pl.col("user_id").cast(pl.Utf8), "game_id", "weight", "title"
    )
    logs = logs.group_by("user_id", "game_id", maintain_order=True).agg(pl.col("weight").max(), pl.col("title").first())
    return logs, links
