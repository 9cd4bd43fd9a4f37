"""Request-time filters in the core: the masks built at load, their combination per request, and the scorer's
top-k and popularity fill honouring the allowed mask (equal to ranking everything, then keeping the allowed)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import scipy.sparse as sp

from gamerec_assets.recsys.item_filter import NO_DATE, ItemFilter, ValueRule, allowed_mask, build_masks
from gamerec_assets.recsys.kernels import recommend_history

GENRES = [["Action", "RPG"], ["RPG"], ["Puzzle"], [], ["action"], ["Strategy", "Puzzle"]]
TAGS = [["co-op"], [], ["singleplayer"], ["co-op", "singleplayer"], [], []]
PLATFORMS = [["PC"], ["PC", "Xbox"], ["Switch"], ["PC"], ["PlayStation"], []]
RELEASED = ["2015-05-19", "2020-01-01", None, "2019-12-31", "2021-06-01T00:00:00", "not a date"]
POPULARITY = np.array([10.0, 0.0, 3.0, 0.0, 7.0, 1.0])


@pytest.fixture
def masks():  # type: ignore[no-untyped-def]
    return build_masks({"genres": GENRES, "tags": TAGS, "platforms": PLATFORMS}, RELEASED, POPULARITY)


def admitted(masks, f: ItemFilter) -> list[int]:  # type: ignore[no-untyped-def]
    return np.flatnonzero(allowed_mask(masks, f)).tolist()


def test_masks_per_value_case_insensitive_with_release_days(masks) -> None:  # type: ignore[no-untyped-def]
    assert masks.values["genres"]["action"].tolist() == [0, 4]
    assert masks.values["genres"]["puzzle"].tolist() == [2, 5]
    assert masks.values["tags"]["co-op"].tolist() == [0, 3]
    assert masks.values["platforms"]["pc"].tolist() == [0, 1, 3]
    assert masks.released_day[0] == (dt.date(2015, 5, 19) - dt.date(1970, 1, 1)).days
    assert masks.released_day[2] == NO_DATE and masks.released_day[5] == NO_DATE
    assert masks.new.tolist() == [False, True, False, True, False, False]


def test_any_is_or_none_is_and_not_attributes_combine_with_and(masks) -> None:  # type: ignore[no-untyped-def]
    assert admitted(masks, ItemFilter()) == [0, 1, 2, 3, 4, 5]
    assert admitted(masks, ItemFilter(rules={"genres": ValueRule(any=["ACTION", "puzzle"])})) == [0, 2, 4, 5]
    assert admitted(masks, ItemFilter(rules={"genres": ValueRule(none=["rpg"])})) == [2, 3, 4, 5]
    both = {"genres": ValueRule(any=["rpg", "puzzle"], none=["strategy"]), "platforms": ValueRule(any=["pc"])}
    assert admitted(masks, ItemFilter(rules=both)) == [0, 1]
    assert admitted(masks, ItemFilter(rules={"tags": ValueRule(any=["no such tag"])})) == []
    assert admitted(masks, ItemFilter(rules={"tags": ValueRule(none=["no such tag"])})) == [0, 1, 2, 3, 4, 5]


def test_dates_ids_and_new(masks) -> None:  # type: ignore[no-untyped-def]
    after = ItemFilter(released_after=dt.date(2019, 12, 31))
    assert admitted(masks, after) == [1, 4]  # strictly after; no date never passes
    assert admitted(masks, ItemFilter(released_before=dt.date(2020, 1, 1))) == [0, 3]
    assert admitted(masks, ItemFilter(only=[5, 2, 0], only_given=True, exclude=[2])) == [0, 5]
    assert admitted(masks, ItemFilter(only=[], only_given=True)) == []
    assert admitted(masks, ItemFilter(new_only=True)) == [1, 3]


def random_similarity(n: int, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = sp.random(n, n, density=0.3, random_state=rng, format="csr", dtype=np.float64)
    m.setdiag(0)
    m.eliminate_zeros()
    return m


@pytest.mark.parametrize("method", ["dense", "sorted"])
def test_kernel_ranks_only_allowed_items_the_same_as_filtering_a_full_ranking(method: str) -> None:
    n = 60
    sim = random_similarity(n, 1)
    arrays = (sim.indptr.astype(np.int64), sim.indices.astype(np.int64), sim.data)
    rng = np.random.default_rng(2)
    for _ in range(20):
        h = np.sort(rng.choice(n, size=4, replace=False)).astype(np.int64)
        allowed = rng.random(n) < 0.3
        full, full_scores, full_because = recommend_history(arrays, h, n, 3, method)
        keep = allowed[full]
        ids, scores, because = recommend_history(arrays, h, 5, 3, method, allowed=allowed)
        assert ids.tolist() == full[keep][:5].tolist()
        assert scores.tolist() == full_scores[keep][:5].tolist()
        assert because.tolist() == full_because[keep][:5].tolist()
        plain = recommend_history(arrays, h, 5, 3, method)
        assert plain[0].tolist() == full[:5].tolist()  # no mask: unchanged
