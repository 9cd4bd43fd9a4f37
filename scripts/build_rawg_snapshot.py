"""Rebuild the bundled RAWG snapshot from ../shared/data/rawg (run once; the output is committed).

The 2025-07 list crawl (20 pages x 20 games, every field of the `/api/games` list endpoint) was saved by pandas
with nested fields as Python reprs. This script turns each row back into the JSON object RAWG returned and
regroups the rows into the 20 pages of the crawl, in the `/api/games` envelope (count, next, previous, results).
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "rawg" / "rawg_games_list_400_2025-07.csv.gz"
DEST = Path(__file__).resolve().parents[1] / "gamerec_assets" / "data" / "rawg_snapshot.json.gz"
PAGE_SIZE = 20
NESTED = {
    "ratings",
    "added_by_status",
    "platforms",
    "parent_platforms",
    "genres",
    "stores",
    "tags",
    "esrb_rating",
    "short_screenshots",
}
INTS = {
    "id",
    "rating_top",
    "ratings_count",
    "reviews_text_count",
    "added",
    "playtime",
    "suggestions_count",
    "reviews_count",
}


def _value(key: str, text: str) -> object:
    if text in ("", "None", "nan"):
        return None
    if key in NESTED:
        return ast.literal_eval(text)
    if key in INTS:
        return int(float(text))
    if key == "metacritic":
        return int(float(text))
    if key == "rating":
        return float(text)
    if key == "tba":
        return text == "True"
    return text


def main() -> int:
    with gzip.open(SRC, "rt", encoding="utf-8") as fh:
        rows = list(csv.DictReader(io.StringIO(fh.read())))
    games = [{k: _value(k, v) for k, v in row.items()} for row in rows]
    pages = []
    for n, start in enumerate(range(0, len(games), PAGE_SIZE), start=1):
        last = start + PAGE_SIZE >= len(games)
        pages.append(
            {
                "count": len(games),
                "next": None if last else f"https://api.rawg.io/api/games?page={n + 1}&page_size={PAGE_SIZE}",
                "previous": None if n == 1 else f"https://api.rawg.io/api/games?page={n - 1}&page_size={PAGE_SIZE}",
                "results": games[start : start + PAGE_SIZE],
            }
        )
    bundle = {
        "source": "RAWG /api/games list crawl, 2025-07-04 (BidhunB/Game_Rec_redefined, "
        "rawg_data/rawg_games_page_20_20250704_133611.csv)",
        "attribution": "Data from RAWG (https://rawg.io)",
        "pages": pages,
    }
    DEST.write_bytes(gzip.compress(json.dumps(bundle, ensure_ascii=False).encode("utf-8"), 9, mtime=0))
    print(f"wrote {DEST} ({len(pages)} pages, {len(games)} games, {DEST.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
