"""Stage 4, the serving policy: what a list may contain once scored.

Today: never a played or liked game and popularity fill (both asked of the scorer, which skips the history and
fills in the same compiled pass), never a disliked game (`ask` over-asks by the number of dislikes, `apply` drops
them, so k remain). A request's `filter` becomes one allowed-items mask (`allowed`) that the scorer honours
inside its top-k and its popularity fill, so a filtered list still holds k games whenever k pass. Editions and
diversity will each be one more function of this stage.
"""

from __future__ import annotations

import msgspec
import numpy as np

from gamerec_api.schemas import Boost, GameFilter, Source, ValueFilter
from gamerec_api.state import ServingState
from gamerec_assets.recsys.item_filter import ItemFilter, ValueRule, allowed_mask
from gamerec_assets.recsys.served_model import Recommended

ALLOWED_CACHE = 256  # allowed masks kept per state (50,000 games: 50 kB each)
_encode = msgspec.json.encode


def allowed(state: ServingState, f: GameFilter | None) -> np.ndarray | None:
    """The items `f` admits in `state` as a bool mask over its items (the version's precomputed masks combined;
    the last ALLOWED_CACHE distinct filters' masks kept on the state, so never write into one); None when there is
    no filter, so an unfiltered request does no extra work. Not flagged read-only on purpose: numba compiles a
    separate kernel for read-only arrays (5 s on the first filtered request of a fresh install)."""
    if f is None or state.filter_masks is None:
        return None
    key = _encode(f)
    cache = state.allowed_masks
    mask = cache.get(key)
    if mask is None:
        mask = _allowed(state, f)
        if len(cache) >= ALLOWED_CACHE:
            cache.pop(next(iter(cache)), None)
        cache[key] = mask
    return mask


def weights(state: ServingState, boosts: list[Boost]) -> np.ndarray | None:
    """The request's boosts as one multiplier per item (the product of the factors of the boosts each item
    matches), kept in the state's mask cache under the boosts' JSON like a filter's mask (never write into it);
    None without boosts: no extra work."""
    if not boosts or state.filter_masks is None:
        return None
    key = b"boost" + _encode(boosts)
    cache = state.allowed_masks
    w = cache.get(key)
    if w is None:
        w = np.ones(state.filter_masks.n_items, dtype=np.float64)
        for b in boosts:
            mask = allowed(state, b.filter)
            assert mask is not None
            w[mask] *= b.factor
        if len(cache) >= ALLOWED_CACHE:
            cache.pop(next(iter(cache)), None)
        cache[key] = w
    return w


def _allowed(state: ServingState, f: GameFilter) -> np.ndarray:
    assert state.filter_masks is not None
    rules: dict[str, ValueRule] = {}
    for name, rule in (("genres", f.genres), ("tags", f.tags), ("platforms", f.platforms)):
        if isinstance(rule, ValueFilter) and (rule.any or rule.none):
            rules[name] = ValueRule(rule.any, rule.none)
    index = state.model.item_pos
    return allowed_mask(
        state.filter_masks,
        ItemFilter(
            rules=rules,
            released_after=f.released_after,
            released_before=f.released_before,
            only=[i for g in f.only or () if (i := index.get(g, -1)) >= 0],
            only_given=f.only is not None,
            exclude=[i for g in f.exclude if (i := index.get(g, -1)) >= 0],
            new_only=f.new_only,
        ),
    )


def ask(k: int, excluded: list[int]) -> int:
    """How many items to score so that `k` remain after the policy."""
    return k + len(excluded)


def apply(rec: Recommended, excluded: list[int], k: int) -> Recommended:
    """The first k items of `rec` that are not excluded."""
    if not excluded:
        return rec
    drop = set(excluded)
    keep = [j for j, i in enumerate(rec.idx) if i not in drop][:k]
    return Recommended(
        [rec.idx[j] for j in keep],
        [rec.scores[j] for j in keep],
        sum(j < rec.n_cf for j in keep),
        [rec.because[j] for j in keep],
    )


def source_of(has_history: bool, has_liked: bool, n_cf: int) -> Source:
    """`item_cf` (history, plus liked), `basket` (liked only), `popular` (nothing usable, or no item-CF pick)."""
    if n_cf == 0:
        return "popular"
    if has_history:
        return "item_cf"
    return "basket" if has_liked else "popular"
