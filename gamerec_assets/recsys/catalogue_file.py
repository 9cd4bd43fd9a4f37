"""Bring-your-own catalogue: a CSV or Parquet file of games, validated and turned into the rows RAWG pages give.

Format (one row per game):

| column | required | type |
|---|---|---|
| `game_id` | yes | integer, 1 .. 999,999,999,999 (ids from 10^12 up are reserved for games known only from a log) |
| `name` | yes | non-empty text |
| `genres`, `tags`, `platforms` | no | lists (Parquet) or `\\|`-separated text (`Action\\|RPG`) |
| `released` | no | date, `YYYY-MM-DD` |
| `rating`, `playtime` | no | number (rating 0..5 like RAWG; playtime in hours) |
| `ratings_count`, `added`, `metacritic` | no | integer |
| `background_image`, `slug`, `description` | no | text (`description` is read and not used yet) |

Blank cells are nulls. Other columns are ignored. A bad file raises `CatalogueFileError` naming the file, the row
(1-based data row; CSV line = row + 1) and the problem: a missing column, a bad id, a bad number or date, a
duplicate id.

RAWG exports with fewer columns load too (`RAWG_EXPORT_COLUMNS`): a file with RAWG's `id`, `game_name` or
`release_date` instead of `game_id`, `name`, `released` is read as a RAWG export: those columns are renamed, lists are
comma-separated (`"Action, RPG"`) and `metacritic` may say "Not Rated". A file that needs none of those renames
is read in this format.

`catalogue_pages` wraps the rows as RAWG `/api/games` pages, so `raw_games` stores them like a crawl and
`game_features` cleans them with the same code (its schema does not depend on the source).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from gamerec_assets.recsys.linking import STEAM_ONLY_BASE
from gamerec_assets.recsys.rawg_pages import GAME_SCHEMA, STATUS_KEYS

REQUIRED = ("game_id", "name")
LIST_COLUMNS = ("genres", "tags", "platforms")
FLOAT_COLUMNS = ("rating", "playtime")
INT_COLUMNS = ("ratings_count", "added", "metacritic")
TEXT_COLUMNS = ("background_image", "slug", "description")
OPTIONAL = (*LIST_COLUMNS, "released", *FLOAT_COLUMNS, *INT_COLUMNS, *TEXT_COLUMNS)
# RAWG's reduced exports (e.g. ../shared/data/rawg/*.csv.gz) -> this format
RAWG_EXPORT_COLUMNS = {"id": "game_id", "game_name": "name", "release_date": "released"}
RAWG_EXPORT_NULLS = ("Not Rated", "N/A", "None", "nan")
PAGE_SIZE = 1000


class DataFileError(ValueError):
    """A data file (catalogue or interactions) that cannot be used; the message names file, row and problem."""


class CatalogueFileError(DataFileError):
    """A catalogue file that cannot be used."""


def read_table(path: str | Path, error: type[DataFileError]) -> tuple[pl.DataFrame, bool]:
    """The file as a frame (CSV: every column as text, so each cell is checked here) and whether it is CSV."""
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith(".parquet") or name.endswith(".pq"):
            return pl.read_parquet(path), False
        if name.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
            sep = "\t" if ".tsv" in name else ","
            return pl.read_csv(path, infer_schema=False, separator=sep), True
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise error(f"{path}: cannot read: {exc}") from exc
    raise error(f"{path}: unknown format (expected .csv, .csv.gz or .parquet)")


def where(path: str | Path, row: int, csv: bool) -> str:
    """'file: row N (line N+1)' for CSV, 'file: row N' for Parquet; `row` is 0-based."""
    return f"{path}: row {row + 1}" + (f" (line {row + 2})" if csv else "")


def _blank_to_null(frame: pl.DataFrame, nulls: tuple[str, ...] = ()) -> pl.DataFrame:
    text = [c for c, d in frame.schema.items() if d == pl.Utf8]
    return frame.with_columns(
        pl.when(pl.col(c).str.strip_chars().is_in(["", *nulls]))
        .then(None)
        .otherwise(pl.col(c).str.strip_chars())
        .alias(c)
        for c in text
    )


def require_columns(frame: pl.DataFrame, path: str | Path, required: tuple[str, ...], error: type[DataFileError]):
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise error(f"{path}: missing column(s) {missing} (columns: {frame.columns[:20]})")


def first_bad(mask: pl.Series) -> int | None:
    bad = mask.arg_true()
    return int(bad[0]) if len(bad) else None


def cast_column(
    frame: pl.DataFrame,
    col: str,
    dtype: pl.DataType,
    path: str | Path,
    csv: bool,
    error: type[DataFileError],
    strict_int: bool = False,
) -> pl.Series:
    """`col` cast to `dtype` (a number); the first value that does not parse raises naming its row.

    Integers may be written as integral floats ("81.0"), except with `strict_int` (ids: "12.0" is not an id).
    """
    src = frame[col]
    if dtype.is_integer() and (src.dtype == pl.Utf8 and strict_int):
        out = src.str.strip_chars().cast(pl.Int64, strict=False)
    elif dtype.is_integer() and (src.dtype == pl.Utf8 or src.dtype.is_float()):
        floats = src.cast(pl.Float64, strict=False)
        integral = floats.is_finite() & (floats == floats.floor()) & (floats.abs() < 2.0**53)
        out = pl.select(pl.when(integral).then(floats.cast(pl.Int64, strict=False))).to_series()
    else:
        out = src.cast(dtype, strict=False)
    bad = first_bad(out.is_null() & src.is_not_null())
    if bad is not None:
        kind = "an integer" if dtype.is_integer() else "a number"
        raise error(f"{where(path, bad, csv)}: {col} {src[bad]!r} is not {kind}")
    if dtype.is_float():
        bad = first_bad(~out.is_finite().fill_null(True))
        if bad is not None:
            raise error(f"{where(path, bad, csv)}: {col} {src[bad]!r} is not a finite number")
    return out.cast(dtype).alias(col)


def check_game_ids(ids: pl.Series, raw: pl.Series, path: str | Path, csv: bool, error: type[DataFileError]) -> None:
    bad = first_bad(ids.is_null())
    if bad is not None:
        raise error(f"{where(path, bad, csv)}: game_id is missing")
    bad = first_bad((ids < 1) | (ids >= STEAM_ONLY_BASE))
    if bad is not None:
        raise error(f"{where(path, bad, csv)}: game_id {raw[bad]!r} is out of range (1 .. {STEAM_ONLY_BASE - 1})")


def _list_column(series: pl.Series, sep: str) -> pl.Series:
    is_list = isinstance(series.dtype, pl.List)
    items = series.cast(pl.List(pl.Utf8)) if is_list else series.cast(pl.Utf8).str.split(sep)
    return items.list.eval(pl.element().str.strip_chars().filter(pl.element().str.len_chars() > 0)).fill_null([])


def read_catalogue(path: str | Path) -> pl.DataFrame:
    """The catalogue file as rows with `rawg_pages.GAME_SCHEMA` (what `parse_pages` gives), or CatalogueFileError."""
    frame, csv = read_table(path, CatalogueFileError)
    renames = {k: v for k, v in RAWG_EXPORT_COLUMNS.items() if k in frame.columns and v not in frame.columns}
    rawg_export = bool(renames)
    frame = frame.rename(renames)
    require_columns(frame, path, REQUIRED, CatalogueFileError)
    frame = _blank_to_null(frame, RAWG_EXPORT_NULLS if rawg_export else ())
    if frame.height == 0:
        raise CatalogueFileError(f"{path}: no games")
    ids = cast_column(frame, "game_id", pl.Int64(), path, csv, CatalogueFileError, strict_int=True)
    check_game_ids(ids, frame["game_id"], path, csv, CatalogueFileError)
    dupes = ids.is_duplicated()
    bad = first_bad(dupes)
    if bad is not None:
        again = first_bad(dupes & (ids == ids[bad]) & (pl.Series(range(len(ids))) > bad))
        raise CatalogueFileError(
            f"{where(path, again if again is not None else bad, csv)}: duplicate game_id {int(ids[bad])} "
            f"(first at row {bad + 1})"
        )
    names = frame["name"].cast(pl.Utf8)
    bad = first_bad(names.is_null())
    if bad is not None:
        raise CatalogueFileError(f"{where(path, bad, csv)}: name is missing (game_id {int(ids[bad])})")
    out: dict[str, pl.Series] = {"id": ids, "slug": pl.Series("slug", [None] * frame.height, pl.Utf8), "name": names}
    if "released" in frame.columns:
        raw = frame["released"]
        text = raw.cast(pl.Utf8).str.slice(0, 10)
        released = raw if raw.dtype == pl.Date else text.str.to_date("%Y-%m-%d", strict=False)
        bad = first_bad(released.is_null() & raw.is_not_null())
        if bad is not None:
            raise CatalogueFileError(f"{where(path, bad, csv)}: released {raw[bad]!r} is not a YYYY-MM-DD date")
        out["released"] = released
    for col in FLOAT_COLUMNS:
        if col in frame.columns:
            out[col] = cast_column(frame, col, pl.Float64(), path, csv, CatalogueFileError)
    for col in INT_COLUMNS:
        if col in frame.columns:
            out[col] = cast_column(frame, col, pl.Int64(), path, csv, CatalogueFileError)
    for col in LIST_COLUMNS:
        if col in frame.columns:
            out[col] = _list_column(frame[col], "," if rawg_export else "|")
    for col in ("slug", "background_image"):
        if col in frame.columns:
            out[col] = frame[col].cast(pl.Utf8)
    rows = pl.DataFrame({k: v.alias(k) for k, v in out.items()})
    missing = {c: d for c, d in GAME_SCHEMA.items() if c not in rows.columns}
    rows = rows.with_columns(
        (pl.lit([], dtype=d) if isinstance(d, pl.List) else pl.lit(None, dtype=d)).alias(c) for c, d in missing.items()
    )
    return rows.select(pl.col(c).cast(d) for c, d in GAME_SCHEMA.items())


def game_result(row: dict[str, Any]) -> dict[str, Any]:
    """One catalogue row as a RAWG `/api/games` result (what `rawg_pages.game_row` reads back)."""
    released = row["released"]
    return {
        "id": row["id"],
        "slug": row["slug"],
        "name": row["name"],
        "released": released.isoformat() if released is not None else None,
        **{c: row[c] for c in ("rating", "ratings_count", "metacritic", "playtime", "added")},
        "added_by_status": {k: v for k in STATUS_KEYS if (v := row[f"added_by_status_{k}"]) is not None},
        "genres": [{"name": g} for g in row["genres"]],
        "tags": [{"name": t} for t in row["tags"]],
        "platforms": [{"platform": {"name": p}} for p in row["platforms"]],
        "background_image": row["background_image"],
    }


def catalogue_pages(rows: pl.DataFrame, page_size: int = PAGE_SIZE) -> list[dict[str, Any]]:
    """Catalogue rows as RAWG-shaped pages (`{"count", "results"}`), `page_size` games each."""
    results = [game_result(r) for r in rows.iter_rows(named=True)]
    return [
        {"count": len(results), "results": results[start : start + page_size]}
        for start in range(0, max(len(results), 1), page_size)
    ]
