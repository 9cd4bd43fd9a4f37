"""Linking play-log titles (Steam) to RAWG games by normalised title.

Rule, in order: (1) exact match of normalised titles (NFKD -> ASCII, lowercase, `&` -> and, anything not a letter
or digit -> space); (2) the same after dropping edition suffixes ("GOTY", "Game of the Year Edition",
"Definitive Edition", ...). Titles that still do not match stay items of their own, under a stable id derived
from the title (>= STEAM_ONLY_BASE, so it can never collide with a RAWG id).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import polars as pl

STEAM_ONLY_BASE = 10**12
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_EDITION = re.compile(
    r"\s+(goty|game of the year( edition)?|definitive edition|enhanced edition|complete edition|"
    r"gold edition|deluxe edition|special edition|ultimate edition|remastered|directors cut|hd)$"
)


_MARKS = {0x2122: None, 0xAE: None, 0xA9: None}  # ™ ® © would otherwise become "tm", "r", "c"


def normalise_title(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title.translate(_MARKS)).encode("ascii", "ignore").decode()
    return " ".join(_NON_ALNUM.sub(" ", ascii_title.lower().replace("&", " and ")).split())


def strip_edition(normalised: str) -> str:
    previous = None
    while previous != normalised:
        previous, normalised = normalised, _EDITION.sub("", normalised)
    return normalised


def steam_only_id(title: str) -> int:
    return STEAM_ONLY_BASE + int(hashlib.sha1(title.encode()).hexdigest()[:12], 16) % STEAM_ONLY_BASE


def link_titles(titles: pl.Series, games: pl.DataFrame) -> pl.DataFrame:
    """title -> game_id, rule (exact | edition | unmatched) for every distinct title; games needs game_id, name."""
    catalogue = games.select(
        "game_id", pl.col("name").map_elements(normalise_title, return_dtype=pl.Utf8).alias("key")
    ).unique(subset="key", keep="first", maintain_order=True)
    edition_keys = (
        catalogue.with_columns(pl.col("key").map_elements(strip_edition, return_dtype=pl.Utf8))
        .unique(subset="key", keep="first", maintain_order=True)
        .rename({"game_id": "edition_game_id"})
    )
    frame = pl.DataFrame({"title": titles.unique().sort()}).with_columns(
        pl.col("title").map_elements(normalise_title, return_dtype=pl.Utf8).alias("key")
    )
    frame = frame.with_columns(pl.col("key").map_elements(strip_edition, return_dtype=pl.Utf8).alias("bare"))
    frame = frame.join(catalogue, on="key", how="left").join(edition_keys, left_on="bare", right_on="key", how="left")
    return frame.select(
        "title",
        pl.coalesce("game_id", "edition_game_id", pl.col("title").map_elements(steam_only_id, return_dtype=pl.Int64))
        .cast(pl.Int64)
        .alias("game_id"),
        pl.when(pl.col("game_id").is_not_null())
        .then(pl.lit("exact"))
        .when(pl.col("edition_game_id").is_not_null())
        .then(pl.lit("edition"))
        .otherwise(pl.lit("unmatched"))
        .alias("rule"),
    )
