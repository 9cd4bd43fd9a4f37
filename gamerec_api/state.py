"""Everything a request needs, loaded once and never mutated: the model, the game cards and the user histories.

A reload builds a whole new `ServingState` off the event loop and the holder swaps one reference, so a request
that read `holder.state` keeps a consistent model / metadata / history triple for its whole life.

The request path uses numpy on a handful of CSR rows (the user's history rows of the similarity matrix), never
polars, pandas or the database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from gamerec_api.schemas import GameCard
from gamerec_assets.recsys.serving import ServingModel
from gamerec_assets.store.registry import ModelRegistry
from gamerec_assets.store.tables import TableStore

MODEL_NAME = "item_similarity"
BECAUSE = 3


class NotReady(RuntimeError):
    """There is nothing to serve yet (no production model, or its tables are missing)."""


@dataclass(frozen=True)
class Recommended:
    """One ranked list: model item indices, scores, whether item-CF made each, and per item the `because` indices."""

    idx: np.ndarray
    scores: np.ndarray
    from_cf: np.ndarray
    because: list[list[int]]


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
    loaded_at: float = field(default_factory=time.time)

    # -- lookups -------------------------------------------------------------------------------------------------

    def history(self, user_id: int) -> np.ndarray:
        """Sorted model item indices the user played (empty for unknown users)."""
        pos = int(np.searchsorted(self.user_ids, user_id))
        if pos < len(self.user_ids) and self.user_ids[pos] == user_id:
            return self.hist_indices[self.hist_indptr[pos] : self.hist_indptr[pos + 1]]
        return self.hist_indices[:0]

    def item_index(self, game_id: int) -> int:
        """Model item index of a game id, -1 when the model does not know it."""
        ids = self.model.item_ids
        pos = int(np.searchsorted(ids, game_id))
        return pos if pos < len(ids) and ids[pos] == game_id else -1

    # -- scoring -------------------------------------------------------------------------------------------------

    def recommend(self, history: np.ndarray, k: int) -> Recommended:
        """score(j) = Σ_{i in history} sim(i, j) over unseen j, top-k (ties: lower index); popular fill after.

        Same ranking as `ServingModel.recommend` on a binary history row, computed on the history's rows of the
        CSR matrix only (a few hundred entries), so the cost does not grow with the catalogue.
        """
        sim = self.model.similarity
        h = history
        top = np.empty(0, np.int64)
        top_scores = np.empty(0, np.float32)
        because: list[list[int]] = []
        if h.size:
            starts = sim.indptr[h]
            lens = sim.indptr[h + 1] - starts
            total = int(lens.sum())
            if total:
                offsets = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(total)
                cols = sim.indices[offsets]
                vals = sim.data[offsets]
                src = np.repeat(h, lens)
                pos = np.searchsorted(h, cols)
                seen = h[np.minimum(pos, h.size - 1)] == cols
                unseen = ~seen
                cols, vals, src = cols[unseen], vals[unseen], src[unseen]
                if cols.size:
                    cand, inv = np.unique(cols, return_inverse=True)
                    score = np.bincount(inv, weights=vals, minlength=cand.size).astype(np.float32)
                    # stable sort on -score keeps the lower item index first among equal scores
                    order = np.argsort(-score, kind="stable")[:k]
                    top = cand[order]
                    top_scores = score[order]
                    because = self._because(inv, vals, src, order, cand.size)
        n_cf = top.size
        idx, scores = top, top_scores
        if n_cf < k:
            fill = self._popular(h, top, k - n_cf)
            idx = np.concatenate([top, fill])
            scores = np.concatenate([top_scores, np.zeros(fill.size, np.float32)])
            because = because + [[] for _ in range(fill.size)]
        from_cf = np.arange(idx.size) < n_cf
        return Recommended(idx, scores, from_cf, because)

    def _because(self, inv: np.ndarray, vals: np.ndarray, src: np.ndarray, order: np.ndarray,
                 n_cand: int) -> list[list[int]]:
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
        within = np.arange(r.size) - starts[r]
        first = within < BECAUSE
        r, ids = r[first], s[first]
        bounds = np.searchsorted(r, np.arange(order.size + 1))
        ids_list = ids.tolist()
        return [ids_list[bounds[i] : bounds[i + 1]] for i in range(order.size)]

    def _popular(self, history: np.ndarray, taken: np.ndarray, n: int) -> np.ndarray:
        """The n most popular items that are neither in history nor already taken."""
        cand = self.model.popular_order[: n + history.size + taken.size]
        blocked = np.concatenate([history, taken])
        return cand[~np.isin(cand, blocked)][:n]

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


def build_state(model: ServingModel, features: pl.DataFrame, user_logs: pl.DataFrame) -> ServingState:
    """Precompute cards, the search index and the users × items history CSR (vectorised) for one model."""
    frame = _card_frame(features, model.item_ids)
    known = frame["known"].fill_null(False).to_numpy()
    names = [
        n if k else f"Game {g}" for n, k, g in zip(frame["name"].to_list(), known, frame["game_id"].to_list(), strict=True)
    ]
    cards = tuple(
        GameCard(game_id=g, name=n, slug=s or "", genres=list(gs or []), rating=float(r or 0.0), released=d,
                 background_image=b or "")
        for g, n, s, gs, r, d, b in zip(
            frame["game_id"].to_list(), names, frame["slug"].to_list(), frame["genres"].to_list(),
            frame["rating"].to_list(), frame["released"].to_list(), frame["background_image"].to_list(), strict=True,
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
    )


def load_state(registry: ModelRegistry, tables: TableStore, version: str | None = None) -> ServingState:
    """Load the production (or the given) model version and the tables, then warm up with one prediction."""
    version = version or registry.production()
    if version is None:
        raise NotReady(f"the registry has no production {registry.name} model yet (run the Dagster pipeline)")
    model = ServingModel(registry.load(version))
    missing = [t for t in ("game_features", "user_logs") if not tables.exists(t)]
    if missing:
        raise NotReady(f"tables not materialised yet: {', '.join(missing)}")
    state = build_state(model, tables.read("game_features"), tables.read("user_logs"))
    first_user = int(state.user_ids[0]) if state.user_ids.size else 0
    state.recommend(state.history(first_user), 10)  # warm-up: first call pays numpy's lazy initialisation
    return state
