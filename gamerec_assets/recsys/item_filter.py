"""Request-time filters over a version's catalogue: precomputed masks, combined per request into one allowed mask.

At load, every attribute value (a genre, a tag, a platform; matched case-insensitively) gets the sorted indices of
the version's items that carry it (the sparse form of its mask: a catalogue of 50,000 games with thousands of tags
would spend hundreds of MB on dense masks, most of them nearly empty), and each item its release day (days since
1970-01-01, `NO_DATE` when unknown). A request's filter is then a handful of vectorised ORs / AND NOTs over
those, never a walk over the cards, and the scorer takes the result as `allowed` so its top-k only ever considers
allowed items (a filtered answer still returns k games whenever k pass).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

ATTRIBUTES = ("genres", "tags", "platforms")  # the list attributes a filter may name (any-of / none-of)
NO_DATE = np.iinfo(np.int32).min  # release day of a game without a known date: never passes a date bound
_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class ValueRule:
    """any-of (at least one value, when given) and none-of (no value) of one list attribute."""

    any: Sequence[str] = ()
    none: Sequence[str] = ()


@dataclass(frozen=True)
class ItemFilter:
    """One request's filter in plain types (the API converts its schema into this). `only`/`exclude`: model item
    indices (unknown games already dropped, so an `only` of unknown games only admits nothing); `only_given`: an
    `only` list was sent (an empty one admits nothing). `new_only`: games nobody played in the model's data."""

    rules: dict[str, ValueRule] = field(default_factory=dict)
    released_after: dt.date | None = None
    released_before: dt.date | None = None
    only: Sequence[int] = ()
    only_given: bool = False
    exclude: Sequence[int] = ()
    new_only: bool = False


@dataclass(frozen=True, eq=False)
class CatalogueMasks:
    """Per attribute, value (lower case) -> the items carrying it (int64 indices); release days; which items nobody
    played."""

    n_items: int
    values: dict[str, dict[str, np.ndarray]]
    released_day: np.ndarray  # int32, NO_DATE when unknown
    new: np.ndarray  # bool


def _day(text: str | None) -> int:
    if not text:
        return int(NO_DATE)
    try:
        return (dt.date.fromisoformat(text[:10]) - _EPOCH).days
    except ValueError:
        return int(NO_DATE)


def build_masks(
    attributes: dict[str, Sequence[Sequence[str]]], released: Sequence[str | None], popularity: np.ndarray
) -> CatalogueMasks:
    """The masks of one version, once at load: `attributes` maps each of ATTRIBUTES to one value list per item
    (item order); `released` the items' ISO dates; `popularity` their plays (0: a new game)."""
    n = len(released)
    values: dict[str, dict[str, np.ndarray]] = {}
    for name in ATTRIBUTES:
        per_item = attributes.get(name, ())
        codes: dict[str, int] = {}  # value -> its code, in order of first appearance
        code = np.fromiter((codes.setdefault(v.lower(), len(codes)) for vs in per_item for v in vs), np.int64)
        rows = np.repeat(np.arange(len(per_item), dtype=np.int64), [len(vs) for vs in per_item])
        order = np.argsort(code, kind="stable")  # stable: each value's items stay in item order
        items = rows[order]
        bounds = np.searchsorted(code[order], np.arange(len(codes) + 1))
        values[name] = {v: np.unique(items[bounds[c] : bounds[c + 1]]) for v, c in codes.items()}
    days = np.fromiter((_day(r) for r in released), np.int32, n)
    return CatalogueMasks(n, values, days, np.asarray(popularity) <= 0)


def allowed_mask(masks: CatalogueMasks, f: ItemFilter) -> np.ndarray:
    """The items the filter admits: every given condition holds (AND), any-of is an OR of its values' masks,
    none-of an AND NOT; an unknown value matches no game."""
    ok = np.ones(masks.n_items, dtype=bool)
    for name, rule in f.rules.items():
        table = masks.values[name]
        if rule.any:
            hit = np.zeros(masks.n_items, dtype=bool)
            for v in rule.any:
                items = table.get(v.lower())
                if items is not None:
                    hit[items] = True
            ok &= hit
        for v in rule.none:
            items = table.get(v.lower())
            if items is not None:
                ok[items] = False
    days = masks.released_day
    if f.released_after is not None:
        ok &= (days != NO_DATE) & (days > (f.released_after - _EPOCH).days)
    if f.released_before is not None:
        ok &= (days != NO_DATE) & (days < (f.released_before - _EPOCH).days)
    if f.only_given:
        only = np.zeros(masks.n_items, dtype=bool)
        only[np.asarray(f.only, dtype=np.int64)] = True
        ok &= only
    if len(f.exclude):
        ok[np.asarray(f.exclude, dtype=np.int64)] = False
    if f.new_only:
        ok &= masks.new
    return ok
