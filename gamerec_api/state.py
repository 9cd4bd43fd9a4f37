"""Everything a request needs, loaded once: the model, the game cards, the user histories, JSON fragments.

A reload builds a whole new `ServingState` off the event loop and the holder swaps one reference, so a request
that read `holder.state` keeps a consistent model / metadata / history set for its whole life. The only thing
that changes inside a state is its bounded cache of finished /predict answers, which belong to that state.

The request path never touches polars, pandas or the database: a user's history is a slice of an in-memory CSR,
and scoring is the model's (`ServingModel.recommend_history`: one compiled kernel call over the similarity rows
of that history), so its cost does not grow with the catalogue. What lives here is the service's own: game cards,
the search index, the users' histories, pre-encoded JSON and the answer cache.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import msgspec
import numpy as np
import polars as pl

from gamerec_api.schemas import GameCard
from gamerec_assets.recsys.served_model import ServingModel
from gamerec_assets.store.registry import ModelRegistry
from gamerec_assets.store.table_store import TableStore

log = logging.getLogger("gamerec_api")


class NotReady(RuntimeError):
    """There is nothing to serve yet (no production model, or its tables are missing)."""


@dataclass(frozen=True)
class Fragments:
    """Per model item: the constant part of an item object, its id as JSON and its {game_id, name} reference."""

    item_head: tuple[bytes, ...]  # b'{"game_id":..,"name":..,"genres":..,"rating":..,"background_image":..,"score":'
    id_json: tuple[bytes, ...]  # the game id as JSON
    ref: tuple[bytes, ...]  # b'{"game_id":..,"name":..}'
    version: bytes  # the model version as a JSON string


def build_fragments(cards: tuple[GameCard, ...], version: str) -> Fragments:
    encode = msgspec.json.encode
    heads, refs = [], []
    for c in cards:
        obj = encode(
            {
                "game_id": c.game_id,
                "name": c.name,
                "genres": c.genres,
                "rating": c.rating,
                "background_image": c.background_image,
            }
        )
        heads.append(obj[:-1] + b',"score":')
        refs.append(encode({"game_id": c.game_id, "name": c.name}))
    return Fragments(tuple(heads), tuple(encode(c.game_id) for c in cards), tuple(refs), encode(version))


@dataclass(frozen=True, eq=False)
class ServingState:
    version: str
    model: ServingModel  # scoring, neighbours and game id -> item index
    cards: tuple[GameCard, ...]  # per model item index
    user_ids: np.ndarray  # sorted int64
    hist_indptr: np.ndarray
    hist_indices: np.ndarray  # model item indices, sorted within each user
    search_index: tuple[tuple[str, int], ...]  # (lower-case name, item index), most popular first
    fragments: Fragments  # pre-encoded JSON per item for /predict
    cache_size: int = 0  # /predict answers kept per state (0: off); a swap starts an empty cache
    loaded_at: float = field(default_factory=time.time)
    # (user row or -1 for "no history", k) -> (JSON after the user id, source); bounded, first in first out
    answers: dict[tuple[int, int], tuple[bytes, str]] = field(default_factory=dict, repr=False)

    def remember(self, key: tuple[int, int], value: tuple[bytes, str]) -> None:
        """Keep an answer; the oldest goes when full (the event loop is the only writer)."""
        if self.cache_size <= 0:
            return
        answers = self.answers
        if len(answers) >= self.cache_size:
            answers.pop(next(iter(answers)), None)
        answers[key] = value

    # -- lookups -------------------------------------------------------------------------------------------------

    def user_row(self, user_id: int) -> int:
        """Row of the user in the history CSR, -1 for users without history."""
        ids = self.user_ids
        pos = int(ids.searchsorted(user_id))
        return pos if pos < ids.size and int(ids[pos]) == user_id else -1

    def history(self, user_id: int, row: int | None = None) -> list[int]:
        """Sorted model item indices the user played (empty for unknown users)."""
        row = self.user_row(user_id) if row is None else row
        return self.history_items(row).tolist()  # type: ignore[no-any-return]

    def history_items(self, row: int) -> np.ndarray:
        """The user's sorted model item indices as an int64 view of the CSR (empty for row -1): no copy."""
        if row < 0:
            return self.hist_indices[:0]
        lo, hi = self.hist_indptr[row : row + 2].tolist()
        return self.hist_indices[lo:hi]

    # -- search --------------------------------------------------------------------------------------------------

    def search(self, text: str, limit: int) -> list[GameCard]:
        """Case-insensitive substring match on names; names that start with the text first, then by popularity."""
        needle = text.strip().lower()
        if not needle:
            return [self.cards[i] for _, i in self.search_index[:limit]]
        hits = [(not name.startswith(needle), n, i) for n, (name, i) in enumerate(self.search_index) if needle in name]
        hits.sort()
        return [self.cards[i] for _, _, i in hits[:limit]]


def _card_frame(features: pl.DataFrame, item_ids: np.ndarray) -> pl.DataFrame:
    """One metadata row per model item (left join; items without metadata get a placeholder name)."""
    cols = features.select(
        pl.col("game_id").cast(pl.Int64),
        pl.col("name").fill_null(""),
        pl.col("slug").fill_null(""),
        pl.col("genres").fill_null(pl.lit([], dtype=pl.List(pl.Utf8))),
        pl.col("rating").cast(pl.Float64).fill_null(0.0),
        pl.col("released").cast(pl.Utf8),
        pl.col("background_image").fill_null(""),
        pl.col("added").cast(pl.Float64).fill_null(0.0) if "added" in features.columns else pl.lit(0.0).alias("added"),
    ).unique(subset="game_id", keep="first")
    base = pl.DataFrame({"game_id": item_ids}, schema={"game_id": pl.Int64})
    return base.join(cols.with_columns(pl.lit(True).alias("known")), on="game_id", how="left", maintain_order="left")


def build_state(
    model: ServingModel, features: pl.DataFrame, user_logs: pl.DataFrame, cache_size: int = 0
) -> ServingState:
    """Precompute cards, the search index and the users × items history CSR (vectorised) for one model."""
    frame = _card_frame(features, model.item_ids)
    known = frame["known"].fill_null(False).to_numpy()
    names = [
        n if k else f"Game {g}"
        for n, k, g in zip(frame["name"].to_list(), known, frame["game_id"].to_list(), strict=True)
    ]
    cards = tuple(
        GameCard(
            game_id=g,
            name=n,
            slug=s or "",
            genres=list(gs or []),
            rating=float(r or 0.0),
            released=d,
            background_image=b or "",
        )
        for g, n, s, gs, r, d, b in zip(
            frame["game_id"].to_list(),
            names,
            frame["slug"].to_list(),
            frame["genres"].to_list(),
            frame["rating"].to_list(),
            frame["released"].to_list(),
            frame["background_image"].to_list(),
            strict=True,
        )
    )
    # search: only games with metadata, most popular first (model popularity, then RAWG "added")
    added = frame["added"].fill_null(0.0).to_numpy()
    order = np.lexsort((np.arange(model.n_items), -added, -model.popularity))
    search_index = tuple((names[i].lower(), int(i)) for i in order if known[i])

    logs = user_logs.select(pl.col("user_id").cast(pl.Int64), pl.col("game_id").cast(pl.Int64))
    users = np.unique(logs["user_id"].to_numpy())
    rows = np.searchsorted(users, logs["user_id"].to_numpy())
    hist = model.history_matrix(rows, logs["game_id"].to_numpy(), len(users))
    hist.sort_indices()
    return ServingState(
        version=model.version,
        model=model,
        cards=cards,
        user_ids=users.astype(np.int64),
        hist_indptr=hist.indptr.astype(np.int64),
        hist_indices=hist.indices.astype(np.int64),
        search_index=search_index,
        fragments=build_fragments(cards, model.version),
        cache_size=cache_size,
    )


def load_state(
    registry: ModelRegistry,
    tables: TableStore,
    version: str | None = None,
    cache_size: int = 0,
    fallback: bool = False,
) -> ServingState:
    """Load the production (or the given) model version and the tables, then warm up with one prediction.

    Every array is validated by the registry before a kernel sees it. With `fallback` (a server that has nothing to
    serve yet) an unservable production version is skipped for the newest servable one of the alias's history,
    so a bad promote leaves a fresh server on the previous model instead of 503 or a crash.
    """
    if fallback:
        if version is None and registry.production() is None:
            raise NotReady(f"the registry has no production {registry.name} model yet (run the Dagster pipeline)")
        artifact, skipped = registry.load_serving(version)
        for bad, why in skipped:
            log.error("not serving model %s: %s", bad, why)
        model = ServingModel(artifact)
    else:
        version = version or registry.production()
        if version is None:
            raise NotReady(f"the registry has no production {registry.name} model yet (run the Dagster pipeline)")
        model = ServingModel(registry.load(version))
    missing = [t for t in ("game_features", "user_logs") if not tables.exists(t)]
    if missing:
        raise NotReady(f"tables not materialised yet: {', '.join(missing)}")
    state = build_state(model, tables.read("game_features"), tables.read("user_logs"), cache_size)
    # warm-up: the first kernel call of a process loads its machine code (numba's on-disk cache; compiles on a new
    # machine), and numpy initialises lazily; a user's history, or the most popular game when there are no users.
    warm = state.history_items(0) if state.user_ids.size else np.asarray(model.popular_list[:1], np.int64)
    model.recommend_history(warm, 10)
    return state
