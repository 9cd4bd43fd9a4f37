"""Cleaning RAWG rows into model-ready game features: names, lists, imputation and [0, 1] scaling, with every
repair counted in a report."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

# C0/C1 control characters, zero-width characters and the BOM; non-ASCII letters are kept.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
SCALED = ("rating", "playtime", "ratings_count", "metacritic", "added", "owned_ratio")


@dataclass
class CleaningReport:
    """What cleaning did, for asset metadata."""

    rows_in: int
    rows_out: int
    duplicate_ids: int
    games_added_zero: int
    imputed: dict[str, dict[str, float | int | str]] = field(default_factory=dict)
    scale: dict[str, tuple[float, float]] = field(default_factory=dict)


def clean_name(name: str) -> str:
    return " ".join(_CONTROL.sub(" ", name).split())


def clean_games(raw: pl.DataFrame, impute: Literal["mean", "median"] = "median") -> tuple[pl.DataFrame, CleaningReport]:
    """Deduplicate, clean names, impute, derive owned_ratio and min-max scale the numeric features.

    Keeps the first occurrence of a duplicated id (RAWG pages are ordered, the first is the freshest rank).
    """
    rows_in = raw.height
    frame = raw.unique(subset="id", keep="first", maintain_order=True)
    duplicate_ids = rows_in - frame.height
    frame = frame.with_columns(
        pl.col("name").map_elements(clean_name, return_dtype=pl.Utf8),
        pl.col("genres").fill_null(pl.lit([], dtype=pl.List(pl.Utf8))),
        pl.col("tags").fill_null(pl.lit([], dtype=pl.List(pl.Utf8))),
        pl.col("platforms").fill_null(pl.lit([], dtype=pl.List(pl.Utf8))),
    ).filter(pl.col("name").str.len_chars() > 0)

    imputed: dict[str, dict[str, float | int | str]] = {}
    for col in ("rating", "playtime", "ratings_count", "metacritic", "added", "added_by_status_owned"):
        missing = int(frame[col].null_count())
        stat = frame[col].cast(pl.Float64).median() if impute == "median" else frame[col].cast(pl.Float64).mean()
        value = float(stat) if stat is not None else 0.0
        frame = frame.with_columns(pl.col(col).cast(pl.Float64).fill_null(value))
        imputed[col] = {"missing": missing, "method": impute, "value": round(value, 4)}

    added_zero = int((frame["added"] <= 0).sum())
    frame = frame.with_columns(
        pl.when(pl.col("added") > 0)
        .then((pl.col("added_by_status_owned") / pl.col("added")).clip(0.0, 1.0))
        .otherwise(0.0)
        .alias("owned_ratio"),
        pl.col("genres").list.first().fill_null("Unknown").alias("primary_genre"),
    )

    scale: dict[str, tuple[float, float]] = {}
    scaled = []
    for col in SCALED:
        lo, hi = float(frame[col].min()), float(frame[col].max())  # type: ignore[arg-type]
        scale[col] = (lo, hi)
        span = hi - lo
        expr = ((pl.col(col) - lo) / span) if span > 0 else pl.lit(0.0)
        scaled.append(expr.clip(0.0, 1.0).alias(f"{col}_scaled"))
    frame = frame.with_columns(scaled)

    features = frame.select(
        pl.col("id").alias("game_id"),
        "slug",
        "name",
        "released",
        "primary_genre",
        "genres",
        "tags",
        "platforms",
        "background_image",
        "rating",
        "playtime",
        "ratings_count",
        "metacritic",
        "added",
        "owned_ratio",
        *[f"{c}_scaled" for c in SCALED],
    ).with_columns(pl.col("slug").fill_null(""), pl.col("background_image").fill_null(""))
    report = CleaningReport(rows_in, features.height, duplicate_ids, added_zero, imputed, scale)
    return features, report
