"""Request-time filters in the core: the masks built at load, their combination per request, and the scorer's
top-k and popularity fill honouring the allowed mask (equal to ranking everything, then keeping the allowed)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import scipy.sparse as sp

from gamerec_assets.recsys import ItemCF, ModelArtifact
from gamerec_assets.recsys.item_filter import NO_DATE, ItemFilter, ValueRule, allowed_mask, build_masks
from gamerec_assets.recsys.kernels import recommend_history
from gamerec_assets.recsys.served_model import ServingModel

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


def check_filtered_answers(served: ServingModel, histories: list[np.ndarray], seed: int) -> None:
    """With a mask, `recommend_history` is the full ranking (item-CF, then the whole popular fill) restricted to
    the allowed items, cut at k; and `neighbours` a row's allowed neighbours."""
    rng = np.random.default_rng(seed)
    n = served.n_items
    for h in histories:
        full = served.recommend_history(h, n)
        for share in (0.05, 0.3, 0.8):
            allowed = rng.random(n) < share
            keep = [j for j, i in enumerate(full.idx) if allowed[i]]
            for k in (1, 5, 25):
                rec = served.recommend_history(h, k, allowed)
                assert rec.idx == [full.idx[j] for j in keep][:k]  # k whenever k pass, else every passing game
                assert rec.scores == pytest.approx([full.scores[j] for j in keep][:k], rel=1e-6)
                assert rec.n_cf == sum(j < full.n_cf for j in keep[:k])
                assert rec.because == [full.because[j] for j in keep][:k]
        item = int(h[0]) if h.size else 0
        cols, vals = served.neighbours(item, n)
        allowed = rng.random(n) < 0.5
        got, got_vals = served.neighbours(item, 3, allowed)
        assert got.tolist() == cols[allowed[cols]][:3].tolist()
        assert got_vals.tolist() == vals[allowed[cols]][:3].tolist()


def test_item_cf_request_path_filters_inside_its_top_k_and_fill() -> None:
    x = sp.random(200, 40, density=0.15, random_state=3, format="csr")
    x.data[:] = 1
    sim = ItemCF("cosine", 6).fit(x).similarity
    pop = np.asarray(x.sum(axis=0)).ravel()
    served = ServingModel(ModelArtifact(np.arange(40) * 3 + 7, sim, pop, {"version": "v"}))
    check_filtered_answers(served, [x[r].indices.astype(np.int64) for r in range(30)] + [np.zeros(0, np.int64)], 4)


def test_boosts_multiply_every_score_before_ranking_cf_and_fill() -> None:
    """With a weight per item: item-CF picks ranked by sum × weight (ties: lower index), then the fill by
    popularity × weight (ties: popularity order), both under the filter."""
    x = sp.random(200, 40, density=0.15, random_state=5, format="csr")
    x.data[:] = 1
    sim = ItemCF("cosine", 6).fit(x).similarity
    pop = np.asarray(x.sum(axis=0)).ravel()
    served = ServingModel(ModelArtifact(np.arange(40) * 3 + 7, sim, pop, {"version": "v"}))
    rng = np.random.default_rng(6)
    n = served.n_items
    pop_rank = np.empty(n, np.int64)
    pop_rank[served.popular_order] = np.arange(n)
    for row in range(20):
        h = x[row].indices.astype(np.int64)
        full = served.recommend_history(h, n)
        weight = rng.choice([0.5, 1.0, 3.0], n)
        allowed = rng.random(n) < 0.7
        cf = [(i, s) for i, s in zip(full.idx[: full.n_cf], full.scores[: full.n_cf], strict=True) if allowed[i]]
        cf_sorted = sorted(((s * weight[i], i) for i, s in cf), key=lambda t: (-t[0], t[1]))
        rest = [i for i in range(n) if allowed[i] and i not in set(h) and i not in {i for i, _ in cf}]
        fill = sorted(rest, key=lambda i: (-served.popular_score[i] * weight[i], pop_rank[i]))
        for k in (3, 10, 40):
            rec = served.recommend_history(h, k, allowed, weight)
            expected = [i for _, i in cf_sorted][:k]
            expected += fill[: k - len(expected)]
            assert rec.idx == expected
            assert rec.n_cf == min(k, len(cf_sorted))
            assert rec.scores[: rec.n_cf] == pytest.approx([s for s, _ in cf_sorted][:k])
            assert rec.scores[rec.n_cf :] == pytest.approx(
                [served.popular_score[i] * weight[i] for i in expected[rec.n_cf :]]
            )
        plain = served.recommend_history(h, 10, None, np.ones(n))
        assert plain.idx == full.idx[:10]
