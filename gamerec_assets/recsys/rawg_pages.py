"""RAWG `/api/games` pages -> typed game rows.

A page is validated before it is parsed so that a broken snapshot or API response fails with a message that
names its source and the problem, instead of a KeyError three assets later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

BUNDLED_SNAPSHOT = Path(__file__).resolve().parents[1] / "data" / "rawg_snapshot.json.gz"
STATUS_KEYS = ("yet", "owned", "beaten", "toplay", "dropped", "playing")

GAME_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64(),
    "slug": pl.Utf8(),
    "name": pl.Utf8(),
    "released": pl.Date(),
    "rating": pl.Float64(),
    "ratings_count": pl.Int64(),
    "metacritic": pl.Int64(),
    "playtime": pl.Float64(),
    "added": pl.Int64(),
    **{f"added_by_status_{k}": pl.Int64() for k in STATUS_KEYS},
    "genres": pl.List(pl.Utf8()),
    "tags": pl.List(pl.Utf8()),
    "platforms": pl.List(pl.Utf8()),
    "background_image": pl.Utf8(),
}


class RawgPageError(ValueError):
    """A RAWG page (or snapshot file) is empty or does not have the shape of `/api/games`."""


def validate_page(page: Any, source: str) -> list[Mapping[str, Any]]:
    """Return the page's results, or raise RawgPageError naming `source` and what is wrong."""
    if not isinstance(page, Mapping):
        raise RawgPageError(f"{source}: expected a JSON object, got {type(page).__name__}")
    if "results" not in page:
        raise RawgPageError(f"{source}: page has no 'results' (keys: {sorted(page)[:10]})")
    results = page["results"]
    if not isinstance(results, list):
        raise RawgPageError(f"{source}: 'results' is {type(results).__name__}, not a list")
    for n, game in enumerate(results):
        if not isinstance(game, Mapping):
            raise RawgPageError(f"{source}: results[{n}] is {type(game).__name__}, not an object")
        if not isinstance(game.get("id"), int) or isinstance(game.get("id"), bool):
            raise RawgPageError(f"{source}: results[{n}] has no integer 'id' (got {game.get('id')!r})")
        if not isinstance(game.get("name"), str):
            raise RawgPageError(f"{source}: results[{n}] (id {game['id']}) has no string 'name'")
    return list(results)


def _names(items: Any, key: str | None = None) -> list[str]:
    out: list[str] = []
    for item in items or []:
        if not isinstance(item, Mapping):
            continue
        obj = item.get(key) if key else item
        if isinstance(obj, Mapping) and isinstance(obj.get("name"), str):
            out.append(obj["name"])
    return out


def _number(value: Any, kind: type) -> Any:
    if value is None or isinstance(value, bool):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


def _date(value: Any) -> str | None:
    return value if isinstance(value, str) and len(value) == 10 else None


def game_row(game: Mapping[str, Any]) -> dict[str, Any]:
    """One `/api/games` result -> one flat row (missing or mistyped fields become null)."""
    status = game.get("added_by_status") if isinstance(game.get("added_by_status"), Mapping) else {}
    return {
        "id": int(game["id"]),
        "slug": game.get("slug") if isinstance(game.get("slug"), str) else None,
        "name": game["name"],
        "released": _date(game.get("released")),
        "rating": _number(game.get("rating"), float),
        "ratings_count": _number(game.get("ratings_count"), int),
        "metacritic": _number(game.get("metacritic"), int),
        "playtime": _number(game.get("playtime"), float),
        "added": _number(game.get("added"), int),
        **{f"added_by_status_{k}": _number(status.get(k), int) for k in STATUS_KEYS},
        "genres": _names(game.get("genres")),
        "tags": _names(game.get("tags")),
        "platforms": _names(game.get("platforms"), "platform"),
        "background_image": game.get("background_image") if isinstance(game.get("background_image"), str) else None,
    }


def parse_pages(pages: Iterable[Any], source: str = "pages") -> pl.DataFrame:
    """Validate and flatten pages into one frame with GAME_SCHEMA (duplicates are kept; cleaning drops them)."""
    rows: list[dict[str, Any]] = []
    n_pages = 0
    for n, page in enumerate(pages):
        n_pages += 1
        rows.extend(game_row(g) for g in validate_page(page, f"{source} page {n + 1}"))
    if n_pages == 0:
        raise RawgPageError(f"{source}: no pages")
    if not rows:
        raise RawgPageError(f"{source}: {n_pages} page(s) but no games")
    frame = pl.DataFrame(rows, schema={k: (pl.Utf8() if k == "released" else v) for k, v in GAME_SCHEMA.items()})
    return frame.with_columns(pl.col("released").str.to_date("%Y-%m-%d", strict=False))
