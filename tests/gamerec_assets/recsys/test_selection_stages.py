"""Each stage of the model search alone (gamerec_assets.recsys.selection): screen, tune, tune_hybrid, confirm,
refit_winner, over one `Search` and its `WorkBudget`."""

import dataclasses
import inspect
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from gamerec_assets.recsys.models import build_model
from gamerec_assets.recsys.selection import (
    CF_FAMILIES,
    FAMILIES,
    MF_FAMILIES,
    REFERENCE_UNITS_PER_S,
    DataShape,
    Search,
    SearchConfig,
    Trial,
    WorkBudget,
    WorkModel,
    checked_matrix,
    confirm,
    default_candidates,
    refit_winner,
    run_selection,
    screen,
    select_model_with_report,
    tune,
    tune_hybrid,
)
from tests.gamerec_assets.recsys.test_hybrid import content_for
from tests.gamerec_assets.recsys.test_selection import clustered


def search_of(x: sp.csr_matrix, seconds: float = 60.0, **config: Any) -> Search:
    content = config.pop("content", None)
    return Search(sp.csr_matrix(x), SearchConfig(**config), WorkBudget(seconds), content=content)


class EvaluationBudget(WorkBudget):
    """A budget of a number of evaluations (whatever they cost): another budget passed through the same stages."""

    def __init__(self, evaluations: int) -> None:
        super().__init__(3600.0)
        self.left = evaluations

    def allows(self, need: float, until: float | None = None) -> bool:
        if self.left <= 0:
            self.exhausted = True
            return False
        self.left -= 1
        return True


def test_the_work_budget_refuses_what_does_not_fit() -> None:
    budget = WorkBudget(10.0)
    unit = REFERENCE_UNITS_PER_S
    assert budget.until(0.5) == 5.0 * unit and budget.total == 10.0 * unit
    assert budget.allows(1.0 * unit) and not budget.exhausted
    assert not budget.allows(1.0 * unit, until=budget.until(0.0))  # a stage's share is spent...
    assert not budget.exhausted  # ...which is not the whole budget
    assert not budget.allows(20.0 * unit) and budget.exhausted
    budget.spend(9.5 * unit)
    assert budget.spent_s == 9.5 and not budget.allows(1.0 * unit) and budget.allows(0.5 * unit)
    late = WorkBudget(10.0, started=time.perf_counter() - 41.0)  # past the wall-clock guard (4 x the budget)
    assert not late.allows(0.0) and late.wall_capped and late.exhausted


def test_the_work_model_follows_the_data_shape() -> None:
    x = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]], dtype=np.float32))
    shape = DataShape.of(x, eval_users=2)
    assert (shape.users, shape.items, shape.active_items, shape.nnz, shape.row_pairs) == (3, 4, 3, 5, 13.0)
    work = WorkModel()
    small = DataShape(10_000, 5_000, 5_000, 100_000, 2e7, 5_000)
    large = replace(small, items=20_000, active_items=20_000)
    for family in ("RP3beta", "TFIDF", "AsymmetricCosine", "BM25", "ItemCF", "EASE"):
        assert 0 < work.fit_ns({"model": family}, small) < work.fit_ns({"model": family}, large), family
    ease, rp3 = work.fit_ns({"model": "EASE"}, large), work.fit_ns({"model": "RP3beta"}, large)
    assert ease > 30 * rp3  # cubic against quadratic: EASE is what a large catalogue cannot afford
    assert 10e9 < work.fit_ns({"model": "EASE"}, replace(small, active_items=5_155)) < 25e9  # steam-200k: ~15 s
    hybrid = {"model": "Hybrid", "cf": {"model": "RP3beta"}}
    assert work.fit_ns(hybrid, small) == work.fit_ns({"model": "RP3beta"}, small) + work.blend_ns(small)
    assert work.score_ns(small) == WorkModel.SCORE_NS * 5_000 * 5_000


def test_screen_scores_each_family_default_on_the_first_split() -> None:
    x = clustered()
    search = search_of(x)
    screened = screen(search)
    assert set(screened) == set(FAMILIES) - {"Hybrid"}
    trials = list(search.trials.values())
    assert [t.params for t in trials] == default_candidates(x)
    for t in trials:
        assert t.stage == "screen" and t.n_splits == 1 and screened[t.model] == t.ndcg_splits[0]
    assert set(search.splits) == {0}  # only the first inner split was drawn
    assert screen(search_of(x, families=("Popularity", "TFIDF"))).keys() == {"Popularity", "TFIDF"}
    nothing = search_of(x, seconds=0.0)
    assert screen(nothing) == {} and nothing.trials == {} and nothing.budget.exhausted


def test_tune_climbs_the_leaders_grid_to_a_local_optimum() -> None:
    search = search_of(clustered(), tune_within=1.0)  # only the screened leader is tuned
    screened = screen(search)
    leader = max(screened, key=lambda f: screened[f])
    tune(search, screened)
    tuned = [t for t in search.trials.values() if t.stage == "tune"]
    assert tuned and {t.model for t in tuned} == {leader} and all(t.n_splits == 1 for t in tuned)
    best = search.best([leader])
    assert best is not None and best.ndcg >= screened[leader]
    base, axes = search.grids[leader]
    by_params = {tuple(sorted((k, repr(v)) for k, v in t.params.items())): t for t in search.trials.values()}
    for axis, grid in axes.items():  # every grid neighbour of the optimum was tried and none is better
        i = grid.index(best.params[axis])
        for j in (i - 1, i + 1):
            if 0 <= j < len(grid):
                neighbour = by_params[tuple(sorted((k, repr(v)) for k, v in {**best.params, axis: grid[j]}.items()))]
                assert neighbour.ndcg <= best.ndcg + 1e-9
    assert best.params.keys() == {**base, **axes}.keys()


def test_tune_keeps_to_its_share_and_skips_families_far_behind() -> None:
    search = search_of(clustered(), tune_share=0.0)
    tune(search, screen(search))
    assert all(t.stage == "screen" for t in search.trials.values()) and not search.budget.exhausted
    search = search_of(clustered(), tune_within=0.0)  # every family with a grid is tuned
    tune(search, screen(search))
    assert {t.model for t in search.trials.values() if t.stage == "tune"} == {*CF_FAMILIES, *MF_FAMILIES}
    tune(search, {})  # nothing screened: nothing to tune


def test_tune_hybrid_blends_the_best_cf_configuration_only_with_content() -> None:
    x = clustered(240, 48, seed=3)
    plain = search_of(x)
    screened = screen(plain)
    assert tune_hybrid(plain, screened) == screened and "Hybrid" not in {t.model for t in plain.trials.values()}
    search = search_of(x, content=content_for(48))
    screened = screen(search)
    tune(search, screened)
    best_cf = search.best(list(CF_FAMILIES))
    assert best_cf is not None and search.best_fit is not None  # the best CF fit is kept for the Hybrid's CF part
    found = tune_hybrid(search, screened)
    hybrids = [t for t in search.trials.values() if t.model == "Hybrid"]
    assert hybrids and all(t.params["cf"] == best_cf.params and t.stage == "tune" for t in hybrids)
    assert found == {**screened, "Hybrid": max(t.ndcg for t in hybrids)}
    assert search.best_fit is None  # released once the Hybrid is tuned


def test_confirm_adds_splits_to_the_leaders_in_ranking_order() -> None:
    seen: list[tuple[str, int]] = []
    search = search_of(clustered(), confirm_top=2, n_splits=3)
    search.on_trial = lambda trial, split: seen.append((trial.model, split))
    screened = screen(search)
    first, second = sorted(screened, key=lambda f: -screened[f])[:2]
    seen.clear()
    confirm(search, screened)
    assert seen == [(first, 1), (second, 1), (first, 2), (second, 2)]  # split by split, leader first
    assert {t.model: t.n_splits for t in search.trials.values()} == {
        f: 3 if f in (first, second) else 1 for f in screened
    }
    assert set(search.splits) == {0, 1, 2}
    short = search_of(clustered(), confirm_top=2, n_splits=3)
    screened = screen(short)
    short.budget = EvaluationBudget(3)  # the same stage under another budget: it stops at the first refusal
    confirm(short, screened)
    assert sorted(t.n_splits for t in short.trials.values() if t.n_splits > 1) == [2, 3]
    assert short.best() is not None and short.best().model == first and short.budget.exhausted


def test_refit_winner_fits_the_best_params_on_the_whole_matrix() -> None:
    x = clustered()
    search = search_of(x, n_splits=2)
    confirm(search, screen(search))
    best, model = refit_winner(search)
    winner = search.best()
    assert winner is not None and winner.n_splits == 2 and best == winner.params
    expected, _ = build_model(best).fit(x).recommend(x[:10], N=5)
    ids, _ = model.recommend(x[:10], N=5)
    np.testing.assert_array_equal(ids, expected)
    assert refit_winner(replace_config(search, refit=False)) == (best, None)
    empty = search_of(x, seconds=0.0)
    best, model = refit_winner(empty)
    assert best == {"model": "Popularity"} and model.params == {"model": "Popularity"}


def replace_config(search: Search, **changes: Any) -> Search:
    search.config = replace(search.config, **changes)
    return search


def test_run_selection_is_the_stages_in_order_and_matches_the_keywords() -> None:
    """`select_model_with_report`'s keywords are `SearchConfig`'s fields with the same defaults, and both paths
    choose the same."""
    keywords = inspect.signature(select_model_with_report).parameters
    for field in dataclasses.fields(SearchConfig):
        assert keywords[field.name].default == field.default, field.name
    assert set(keywords) - {f.name for f in dataclasses.fields(SearchConfig)} == {
        "user_items",
        "time_budget_s",
        "on_trial",
        "content",
    }
    x = clustered(200, 40, seed=8)
    config = SearchConfig(n_splits=2, families=("Popularity", "TFIDF", "BM25"), seed=4)
    staged = run_selection(x, WorkBudget(60), config)
    keyworded = select_model_with_report(x, time_budget_s=60, n_splits=2, families=config.families, seed=4)

    def shape(trials: list[Trial]) -> list[Trial]:
        return [replace(t, seconds=0.0) for t in trials]

    assert shape(staged.trials) == shape(keyworded.trials) and staged.best == keyworded.best
    assert staged.protocol == keyworded.protocol == config.protocol() and staged.time_budget_s == 60
    assert {t.stage for t in staged.trials} == {"screen", "tune"}  # confirmed trials keep the stage they began in
    assert max(t.n_splits for t in staged.trials) == 2


def test_checked_matrix_refuses_bad_input() -> None:
    x = sp.csr_matrix(([1.0, 1.0], ([0, 0], [1, 1])), shape=(2, 3))
    assert checked_matrix(x, FAMILIES).nnz == 1  # duplicates summed
    with pytest.raises(ValueError, match="no interactions"):
        checked_matrix(sp.csr_matrix((2, 3)), FAMILIES)
    with pytest.raises(ValueError, match="unknown families"):
        checked_matrix(x, ("SVD",))
    with pytest.raises(ValueError, match="content describes"):
        checked_matrix(x, FAMILIES, content_for(4))
