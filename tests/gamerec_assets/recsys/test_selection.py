import json
import time
from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp

import gamerec_assets.recsys.selection as selection
from gamerec_assets.recsys import inner_split, select_model, select_model_with_report
from gamerec_assets.recsys.selection import FAMILIES, Trial, default_candidates, trials_frame


def clustered(users: int = 240, items: int = 60, groups: int = 4, seed: int = 0) -> sp.csr_matrix:
    """Users mostly pick items of their own group: co-occurrence models must beat popularity here."""
    rng = np.random.default_rng(seed)
    user_group = rng.integers(groups, size=users)
    item_group = np.arange(items) % groups
    prob = np.where(user_group[:, None] == item_group[None, :], 0.3, 0.02)
    return sp.csr_matrix((rng.random((users, items)) < prob).astype(np.float32))


def test_inner_split_partitions_each_user() -> None:
    x = clustered()
    train, held = inner_split(x, 0.25, seed=3, min_items=4)
    assert (train + held - x).nnz == 0 and train.multiply(held).nnz == 0
    n = np.diff(x.indptr)
    n_held = np.diff(held.indptr)
    expected = np.where(n >= 4, np.maximum(1, np.floor(0.25 * n + 0.5)), 0)
    np.testing.assert_array_equal(n_held, expected)
    again, _ = inner_split(x, 0.25, seed=3, min_items=4)
    other, _ = inner_split(x, 0.25, seed=4, min_items=4)
    assert (again != train).nnz == 0 and (other != train).nnz > 0
    with pytest.raises(ValueError):
        inner_split(x, 1.5)


def test_selects_a_fitted_model_and_logs_every_trial() -> None:
    x = clustered()
    seen: list[tuple[Trial, int]] = []
    result = select_model_with_report(x, time_budget_s=60, on_trial=lambda t, split: seen.append((t, split)))
    assert not result.budget_exhausted and result.elapsed_s < 60
    assert {t.model for t in result.trials} == set(FAMILIES) - {"Hybrid"}  # a Hybrid needs content
    assert len(seen) == sum(t.n_splits for t in result.trials)  # one callback per inner-split evaluation
    assert all(t.n_splits == split + 1 for t, split in seen)  # the callback sees the trial with that split's score
    for t in result.trials:
        assert t.ndcg == pytest.approx(np.mean(t.ndcg_splits)) and t.stage in ("screen", "tune", "confirm")
    winner = max((t for t in result.trials if t.n_splits == 3), key=lambda t: t.ndcg)
    assert result.best == winner.params and result.best["model"] != "Popularity"
    popularity = next(t for t in result.trials if t.model == "Popularity")
    assert winner.ndcg > popularity.ndcg + 0.1
    assert result.model.params == {k: v for k, v in result.best.items()}
    ids, _ = result.model.recommend(x[:5], N=5)  # refitted on the whole matrix and usable
    assert ids.shape == (5, 5) and (ids >= 0).all()
    assert result.model.similarity.shape == (60, 60)


def test_uses_only_the_matrix_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fit and every scored item comes from inner splits of the given matrix; the caller's held-out part
    (never passed) cannot influence anything, and the whole run is reproducible."""
    full = clustered(300, 60, seed=5)
    given, never_passed = inner_split(full, 0.2, seed=42, min_items=5)
    splits: list[tuple[sp.csr_matrix, sp.csr_matrix]] = []
    fits: list[sp.csr_matrix] = []
    scored: list[sp.csr_matrix] = []
    real_split, real_build, real_metrics = selection.inner_split, selection.build_model, selection.ranking_metrics

    def recording_split(*args, **kwargs):
        splits.append(real_split(*args, **kwargs))
        return splits[-1]

    def recording_build(params, content=None):
        model = real_build(params, content)
        real_fit = model.fit

        def fit(m):
            fits.append(sp.csr_matrix(m))
            return real_fit(m)

        model.fit = fit
        return model

    def recording_metrics(ids, relevant, k):
        scored.append(sp.csr_matrix(relevant))
        return real_metrics(ids, relevant, k)

    monkeypatch.setattr(selection, "inner_split", recording_split)
    monkeypatch.setattr(selection, "build_model", recording_build)
    monkeypatch.setattr(selection, "ranking_metrics", recording_metrics)
    result = select_model_with_report(given, time_budget_s=60)
    assert len(splits) == 3 and len(fits) == len(scored) + 1  # one fit per evaluation, plus the final refit
    for train, held in splits:
        assert (train + held != given).nnz == 0 and train.multiply(held).nnz == 0
    trains = [train for train, _ in splits]
    helds = [held[np.flatnonzero(np.diff(held.indptr))] for _, held in splits]
    for fitted in fits[:-1]:
        assert any(fitted.shape == t.shape and (fitted != t).nnz == 0 for t in trains)
    assert (fits[-1] != given).nnz == 0  # the refit sees exactly the given matrix
    for relevant in scored:
        assert any(relevant.shape == h.shape and (relevant != h).nnz == 0 for h in helds)
    assert given.multiply(never_passed).nnz == 0  # so nothing above can contain a never-passed interaction
    monkeypatch.undo()
    again = select_model_with_report(given, time_budget_s=60)
    assert [replace(t, seconds=0.0) for t in result.trials] == [replace(t, seconds=0.0) for t in again.trials]
    assert result.best == again.best


@pytest.mark.parametrize("budget", [0.0, 1.0])
def test_respects_the_work_budget(budget: float) -> None:
    x = clustered(2000, 400, groups=8, seed=2)
    started = time.perf_counter()
    result = select_model_with_report(x, time_budget_s=budget)
    wall = time.perf_counter() - started
    assert result.budget_exhausted and not result.wall_capped
    assert result.work_s <= budget and result.elapsed_s <= wall
    ids, _ = result.model.recommend(x[:3], N=4)  # still a fitted model
    assert ids.shape == (3, 4)
    if budget == 0.0:
        assert result.trials == [] and result.best == {"model": "Popularity"}


def test_select_model_attaches_the_report_and_checks_inputs() -> None:
    x = clustered(120, 30, seed=1)
    model = select_model(x, time_budget_s=30, families=("Popularity", "TFIDF"), n_splits=2)
    assert model.params["model"] in ("Popularity", "TFIDF")
    assert {t.model for t in model.selection_report} == {"Popularity", "TFIDF"}
    assert [c["model"] for c in default_candidates(x, ("EASE",), ease_max_items=10)] == []  # catalogue too large
    with pytest.raises(ValueError):
        select_model(x, families=("SVD",))
    with pytest.raises(ValueError):
        select_model(sp.csr_matrix((3, 3)))


def test_trial_keeps_the_stored_shape_of_the_manifest() -> None:
    """Stored versions hold trials as these dicts; the evaluation report reads them back."""
    trial = Trial("EASE", {"model": "EASE", "l2": 8.0, "max_items": 15000}, (0.25, 0.35), 1.5, "confirm")
    record = trial.to_dict()
    assert record == {
        "model": "EASE",
        "params": {"model": "EASE", "l2": 8.0, "max_items": 15000},
        "ndcg@10_splits": [0.25, 0.35],
        "seconds": 1.5,
        "stage": "confirm",
        "ndcg@10": pytest.approx(0.3),
        "ndcg@10_std": pytest.approx(np.std([0.25, 0.35], ddof=1)),
        "n_splits": 2,
    }
    assert Trial.from_dict(json.loads(json.dumps(record))) == trial
    assert Trial("Popularity", {"model": "Popularity"}, (0.1,)).ndcg_std == 0.0


def test_trials_frame_is_best_first_without_fixed_params() -> None:
    trials = [
        Trial("TFIDF", {"model": "TFIDF", "neighbors": 50}, (0.2,), 0.5),
        Trial("EASE", {"model": "EASE", "l2": 8.0, "max_items": 15000}, (0.3, 0.4), 2.0, "confirm"),
    ]
    frame = trials_frame(trials)
    assert frame.columns == ["model", "ndcg@10", "ndcg@10_std", "splits", "seconds", "stage", "params"]
    assert frame["model"].to_list() == ["EASE", "TFIDF"]
    assert [json.loads(p) for p in frame["params"]] == [{"l2": 8.0}, {"neighbors": 50}]
    assert trials_frame([]).height == 0
    result = selection.SelectionResult(None, {"model": "EASE"}, trials, 1.0, 2.0, 0.0, False)
    lines = result.table().splitlines()
    assert len(lines) == 3 and lines[1].startswith("EASE") and lines[1].endswith('{"l2": 8.0}')


def _hog(stop: float) -> None:
    """Burn a core until `stop` (perf_counter): another tenant of the machine."""
    n = 0
    while time.perf_counter() < stop:
        n += 1


def test_the_same_choice_on_a_quiet_and_on_a_loaded_machine() -> None:
    """The budget counts estimated work, so CPU hogs slow the search down without changing what it tries or picks
    (a wall-clock budget chose differently on a loaded machine: issue #24)."""
    import multiprocessing

    x = clustered(3000, 500, groups=10, seed=5)
    quiet = select_model_with_report(x, time_budget_s=2.0, seed=3)
    context = multiprocessing.get_context("spawn")
    hogs = [context.Process(target=_hog, args=(time.perf_counter() + 600,), daemon=True) for _ in range(3)]
    for hog in hogs:
        hog.start()
    try:
        loaded = select_model_with_report(x, time_budget_s=2.0, seed=3)
    finally:
        for hog in hogs:
            hog.terminate()
    assert quiet.budget_exhausted and loaded.budget_exhausted  # the budget, not the grid, ended both searches
    assert not quiet.wall_capped and not loaded.wall_capped
    assert loaded.best == quiet.best and loaded.work_s == quiet.work_s
    assert [(t.model, t.params, t.ndcg_splits) for t in loaded.trials] == [
        (t.model, t.params, t.ndcg_splits) for t in quiet.trials
    ]
