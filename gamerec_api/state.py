"""Everything a request needs, loaded once: the model, the game cards, the user histories, JSON fragments.

A reload builds a whole new `ServingState` off the event loop and the holder swaps one reference, so a request
that read `holder.state` keeps a consistent model / metadata / history set for its whole life. The only thing
that changes inside a state is its bounded cache of finished /predict answers, which belong to that state.

The request path never touches polars, pandas or the database: a user's history is a slice of an in-memory CSR,
and scoring reads only the similarity rows of that history (per-item neighbour dicts when the neighbourhood is
small, numpy on the gathered CSR rows when it is large), so its cost does not grow with the catalogue.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import msgspec
import numpy as np
import polars as pl
import scipy.sparse as sp

from gamerec_api.schemas import GameCard
from gamerec_assets.recsys.serving import ServingModel
from gamerec_assets.store.registry import ModelRegistry
from gamerec_assets.store.tables import TableStore

MODEL_NAME = "item_similarity"
BECAUSE = 3
# Python neighbour maps are kept when the model has at most this many neighbour pairs (~100 bytes each).
PY_MAX_PAIRS = 300_000
# ... and used for a request whose history rows hold at most this many pairs; larger ones go to numpy.
PY_MAX_WORK = 1_000


class NotReady(RuntimeError):
    """There is nothing to serve yet (no production model, or its tables are missing)."""


@dataclass(frozen=True)
class Recommended:
    """One ranked list: model item indices and scores; the first n_cf come from item-CF (each with its `because`
    item indices), the rest is popularity fill (score 0)."""

    idx: list[int]
    scores: list[float]
    n_cf: int
    because: list[list[int]]

    @property
    def from_cf(self) -> np.ndarray:
        return np.arange(len(self.idx)) < self.n_cf


@dataclass(frozen=True)
class Fragments:
    """Per model item: the constant part of an item object, its id as text and its {game_id, name} reference."""

    item_head: tuple[bytes, ...]  # b'{"game_id":..,"name":..,"genres":..,"rating":..,"background_image":..,"score":'
    id_text: tuple[str, ...]
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
    return Fragments(tuple(heads), tuple(str(c.game_id) for c in cards), tuple(refs), encode(version))


def neighbour_maps(similarity: sp.csr_matrix) -> tuple[dict[int, float], ...]:
    """Per item {neighbour: sim} in rank order (sim descending, then index): the request path's small-case index."""
    sim = similarity.tocsr()
    rows = np.repeat(np.arange(sim.shape[0]), np.diff(sim.indptr))
    order = np.lexsort((sim.indices, -sim.data, rows))
    cols = sim.indices[order].tolist()
    vals = sim.data[order].astype(np.float64).tolist()
    bounds = sim.indptr.tolist()
    return tuple(
        dict(zip(cols[bounds[i] : bounds[i + 1]], vals[bounds[i] : bounds[i + 1]], strict=True))
        for i in range(sim.shape[0])
    )


def _rank(pair: tuple[int, float]) -> tuple[float, int]:
    return -pair[1], pair[0]


@dataclass(frozen=True, eq=False)
class ServingState:
    version: str
    model: ServingModel
    manifest: dict[str, Any]
    cards: tuple[GameCard, ...]  # per model item index
    has_metadata: np.ndarray  # bool per model item index
    user_ids: np.ndarray  # sorted int64
    hist_indptr: np.ndarray
    hist_indices: np.ndarray  # model item indices, sorted within each user
    search_index: tuple[tuple[str, int], ...]  # (lower-case name, item index), most popular first
    popular_list: list[int]  # item indices, most popular first
    row_len: list[int]  # neighbours per item
    neighbours: tuple[dict[int, float], ...] | None  # see neighbour_maps; None for very large models
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
        if row < 0:
            return []
        lo, hi = self.hist_indptr[row : row + 2].tolist()
        return self.hist_indices[lo:hi].tolist()  # type: ignore[no-any-return]

    def item_index(self, game_id: int) -> int:
        """Model item index of a game id, -1 when the model does not know it."""
        ids = self.model.item_ids
        pos = int(np.searchsorted(ids, game_id))
        return pos if pos < len(ids) and ids[pos] == game_id else -1

    # -- scoring -------------------------------------------------------------------------------------------------

    def recommend(self, history: list[int], k: int) -> Recommended:
        """score(j) = Σ_{i in history} sim(i, j) over unseen j, top-k (ties: lower index); popular fill after.

        Same ranking as `ServingModel.recommend` on a binary history row. The cost follows the history's
        neighbourhood, never the catalogue: a few dict operations when it is small (the common case: a handful of
        games with up to `neighbors` each), numpy on the gathered CSR rows when it is large.
        """
        h = history
        if not h:
            top, scores, because = [], [], []
        elif self.neighbours is not None and sum(self.row_len[i] for i in h) <= PY_MAX_WORK:
            top, scores, because = self._recommend_small(h, k)
        else:
            top, scores, because = self._recommend_numpy(np.asarray(h, np.int64), k)
        n_cf = len(top)
        if n_cf < k:
            fill = self._popular(h, top, k - n_cf)
            return Recommended(top + fill, scores + [0.0] * len(fill), n_cf, because + [[] for _ in fill])
        return Recommended(top, scores, n_cf, because)

    def _recommend_small(self, h: list[int], k: int) -> tuple[list[int], list[float], list[list[int]]]:
        nb = self.neighbours
        assert nb is not None
        if len(h) == 1:
            row = nb[h[0]]
            top = list(islice(row, k))  # the map is in rank order already
            return top, [row[j] for j in top], [[h[0]] for _ in top]
        acc: dict[int, float] = {}
        get = acc.get
        for i in h:
            for j, v in nb[i].items():
                acc[j] = get(j, 0.0) + v
        for i in h:
            acc.pop(i, None)
        ranked = heapq.nsmallest(k, acc.items(), key=_rank) if len(acc) > k else sorted(acc.items(), key=_rank)
        top = [j for j, _ in ranked]
        because = []
        for j in top:
            contrib = sorted((-nb[i].get(j, 0.0), i) for i in h)
            because.append([i for negsim, i in contrib[:BECAUSE] if negsim < 0])
        return top, [v for _, v in ranked], because

    def _recommend_numpy(self, h: np.ndarray, k: int) -> tuple[list[int], list[float], list[list[int]]]:
        """Gather the history's CSR rows (vectorised), sum per candidate, rank, explain."""
        sim = self.model.similarity
        starts = sim.indptr[h]
        lens = sim.indptr[h + 1] - starts
        total = int(lens.sum())
        if not total:
            return [], [], []
        offsets = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(total)
        cols = sim.indices[offsets]
        vals = sim.data[offsets].astype(np.float64)
        src = np.repeat(h, lens)
        pos = np.searchsorted(h, cols)
        unseen = h[np.minimum(pos, h.size - 1)] != cols
        cols, vals, src = cols[unseen], vals[unseen], src[unseen]
        if not cols.size:
            return [], [], []
        cand, inv = np.unique(cols, return_inverse=True)
        score = np.bincount(inv, weights=vals, minlength=cand.size)
        order = np.argsort(-score, kind="stable")[:k]  # cand ascending: ties keep the lower index first
        return cand[order].tolist(), score[order].tolist(), self._because(inv, vals, src, order, cand.size)

    @staticmethod
    def _because(inv: np.ndarray, vals: np.ndarray, src: np.ndarray, order: np.ndarray, n_cand: int) -> list[list[int]]:
        """Per recommended item, the (up to 3) history items with the largest sim(i, j), as item indices."""
        rank = np.full(n_cand, -1, np.int64)
        rank[order] = np.arange(order.size)
        r = rank[inv]
        keep = r >= 0
        r, v, s = r[keep], vals[keep], src[keep]
        o = np.lexsort((s, -v, r))
        r, s = r[o], s[o]
        counts = np.bincount(r, minlength=order.size)
        starts = np.cumsum(counts) - counts
        first = (np.arange(r.size) - starts[r]) < BECAUSE
        r, ids = r[first], s[first]
        bounds = np.searchsorted(r, np.arange(order.size + 1)).tolist()
        ids_list = ids.tolist()
        return [ids_list[bounds[i] : bounds[i + 1]] for i in range(order.size)]

    def _popular(self, history: list[int], taken: list[int], n: int) -> list[int]:
        """The n most popular items that are neither in history nor already taken (a short Python walk)."""
        blocked = set(history)
        blocked.update(taken)
        out: list[int] = []
        for i in self.popular_list:
            if i not in blocked:
                out.append(i)
                if len(out) == n:
                    break
        return out

    def similar(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest neighbours of one item (indices, scores), from its CSR row; may be fewer than k."""
        sim = self.model.similarity
        lo, hi = sim.indptr[item], sim.indptr[item + 1]
        cols = sim.indices[lo:hi]
        vals = sim.data[lo:hi]
        order = np.lexsort((cols, -vals))[:k]
        return cols[order].astype(np.int64), vals[order]

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
        manifest=dict(model.artifact.manifest),
        cards=cards,
        has_metadata=known.astype(bool),
        user_ids=users.astype(np.int64),
        hist_indptr=hist.indptr.astype(np.int64),
        hist_indices=hist.indices.astype(np.int64),
        search_index=search_index,
        popular_list=model.popular_order.tolist(),
        row_len=np.diff(model.similarity.indptr).tolist(),
        neighbours=neighbour_maps(model.similarity) if model.similarity.nnz <= PY_MAX_PAIRS else None,
        fragments=build_fragments(cards, model.version),
        cache_size=cache_size,
    )


def load_state(
    registry: ModelRegistry, tables: TableStore, version: str | None = None, cache_size: int = 0
) -> ServingState:
    """Load the production (or the given) model version and the tables, then warm up with one prediction."""
    version = version or registry.production()
    if version is None:
        raise NotReady(f"the registry has no production {registry.name} model yet (run the Dagster pipeline)")
    model = ServingModel(registry.load(version))
    missing = [t for t in ("game_features", "user_logs") if not tables.exists(t)]
    if missing:
        raise NotReady(f"tables not materialised yet: {', '.join(missing)}")
    state = build_state(model, tables.read("game_features"), tables.read("user_logs"), cache_size)
    first_user = int(state.user_ids[0]) if state.user_ids.size else 0
    state.recommend(state.history(first_user), 10)  # warm-up: first call pays numpy's lazy initialisation
    return state
