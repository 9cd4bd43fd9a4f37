"""Training and holdout scoring as core procedures: no Dagster, the same figures the assets publish."""

import json

import numpy as np
import polars as pl
import pytest

from gamerec_assets.recsys import build_matrix, build_model, evaluate_holdout
from gamerec_assets.recsys.content import ItemContent
from gamerec_assets.recsys.evaluation import POPULARITY, Holdout, champion_score, report_candidates
from gamerec_assets.recsys.matrix import catalogue, item_popularity
from gamerec_assets.recsys.selection import Trial
from gamerec_assets.recsys.split import SplitParams
from gamerec_assets.recsys.training import TrainingParams, fit_artifact, strongest_pairs, train

MANIFEST_KEYS = {"parameters", "weights", "split", "training_data", "metrics", "selection", "data", "holdout", "trust"}


def games(n: int = 60) -> pl.DataFrame:
    return pl.DataFrame({"game_id": np.arange(1, n + 1, dtype=np.int64), "name": [f"game {i}" for i in range(n)]})


def logs(users: int = 200, n_games: int = 50, groups: int = 4, seed: int = 0) -> pl.DataFrame:
    """Users mostly play games of their own group (a co-occurrence signal); games above n_games are never played,
    and game 999 is played but not in the catalogue."""
    rng = np.random.default_rng(seed)
    user_group = rng.integers(groups, size=users)
    prob = np.where(user_group[:, None] == (np.arange(n_games) % groups)[None, :], 0.3, 0.02)
    u, g = np.nonzero(rng.random((users, n_games)) < prob)
    frame = pl.DataFrame({"user_id": u.astype(np.int64) + 1, "game_id": g.astype(np.int64) + 1})
    return pl.concat([frame, pl.DataFrame({"user_id": [1], "game_id": [999]})])


@pytest.fixture(scope="module")
def selected() -> tuple[object, list[tuple[Trial, int]]]:
    seen: list[tuple[Trial, int]] = []
    result = train(logs(), games(), TrainingParams(time_budget_s=20.0), lambda t, split: seen.append((t, split)))
    return result, seen


def test_train_validates_what_it_publishes(selected) -> None:
    result, seen = selected
    assert result.selection is not None and not result.selection.budget_exhausted
    assert result.params == {**result.selection.best, "serving_neighbors": 300}
    holdout = Holdout.of(logs(), games(), SplitParams(seed=42))
    assert result.validation == holdout.score(result.params)
    assert result.baseline == holdout.score(POPULARITY)
    assert result.validation.flat()["ndcg@10"] > result.baseline.flat()["ndcg@10"]
    assert len(seen) == sum(t.n_splits for t in result.selection.trials)  # one callback per inner evaluation
    assert result.scores() == {
        "validation_ndcg@10": result.validation.flat()["ndcg@10"],
        "validation_ndcg@10_popularity": result.baseline.flat()["ndcg@10"],
    }


def test_selection_never_sees_the_validation_fold(selected) -> None:
    """Every interaction selection was given is a train-fold one (it gets the train matrix of the holdout)."""
    result, _ = selected
    history, truth = Holdout.of(logs(), games(), SplitParams(seed=42)).folds("validation")
    assert history.matrix.multiply(truth.matrix).nnz == 0 and truth.matrix.nnz > 0
    assert result.selection.protocol["metric"] == "ndcg@10"


def test_the_artifact_is_the_params_fit_on_every_interaction(selected) -> None:
    result, _ = selected
    item_ids = catalogue(games(), logs())
    full = build_matrix(logs(), item_ids)
    content = ItemContent.of(games(), logs(), item_ids)  # a Hybrid blends in the catalogue's attributes
    expected = build_model(result.params, content).fit(full.matrix).similarity
    artifact = result.artifact
    np.testing.assert_array_equal(artifact.item_ids, item_ids)
    assert 999 in artifact.item_ids and len(artifact.item_ids) == 61  # the catalogue plus what was played
    assert (artifact.similarity != expected).nnz == 0
    np.testing.assert_array_equal(artifact.popularity, item_popularity(full.matrix))
    assert artifact.popularity.sum() == logs().height


def test_manifest_keeps_its_stored_shape(selected) -> None:
    result, _ = selected
    manifest = json.loads(json.dumps(result.artifact.manifest))  # what a stored version reads back
    assert set(manifest) == MANIFEST_KEYS
    assert manifest["parameters"] == result.params
    assert manifest["split"] == {"test_fraction": 0.2, "validation_fraction": 0.2, "min_history": 3, "seed": 42}
    assert set(manifest["training_data"]) == {"fingerprint", "users", "items", "interactions"}
    assert set(manifest["holdout"]) == {"protocol", "fingerprint", "validation_pairs", "validation_users"}
    assert manifest["trust"]["held_back"] == {}  # logs without events: every row trains
    assert set(manifest["data"]) == {"catalog", "interactions", "catalog_version", "interactions_version", "events"}
    assert manifest["data"]["events"] == {"until_seq": 0, "count": 0, "until": None}  # logs without events
    assert set(manifest["data"]["interactions_version"]) == {"fingerprint", "rows", "users", "games"}
    assert manifest["training_data"]["interactions"] == logs().height
    assert manifest["metrics"] == {
        "validation": result.validation.flat(),
        "validation_popularity": result.baseline.flat(),
    }
    assert manifest["weights"] in ("similarity", "signed")
    selection = manifest["selection"]
    assert set(selection) == {"best", "trials", "elapsed_s", "budget_exhausted", "protocol", "work_s", "wall_capped"}
    for record in selection["trials"]:
        assert set(record) == {"model", "params", "ndcg@10_splits", "seconds", "stage", "ndcg@10", "ndcg@10_std"} | {
            "n_splits"
        }
    assert [Trial.from_dict(t) for t in selection["trials"]] == result.selection.trials
    summary = result.summary()
    assert summary["training_fingerprint"] == manifest["training_data"]["fingerprint"]
    assert summary["selection_seconds"] == selection["elapsed_s"] and summary["items"] == 61


def test_fixed_strategy_skips_selection() -> None:
    params = TrainingParams(strategy="fixed", similarity="jaccard", neighbors=20, serving_neighbors=10)
    result = train(logs(), games(), params)
    assert result.selection is None and result.artifact.manifest["selection"] == {}
    assert result.params == {"model": "ItemCF", "similarity": "jaccard", "neighbors": 20, "serving_neighbors": 10}
    assert "selection_seconds" not in result.summary()
    assert np.diff(result.artifact.similarity.indptr).max() <= 10
    pairs = strongest_pairs(result.artifact, games(), 5)
    assert pairs.height == 5 and pairs["weight"].to_list() == sorted(pairs["weight"].to_list(), reverse=True)


def test_holdout_scores_like_evaluate_holdout() -> None:
    data, features = logs(seed=3), games()
    holdout = Holdout.of(data, features, SplitParams(seed=7))
    params = {"model": "ItemCF", "similarity": "cosine", "neighbors": 30}
    for target in ("validation", "test"):
        expected = evaluate_holdout(holdout.split, holdout.item_ids, lambda: build_model(params), target)
        assert holdout.score(params, target) == expected
        assert holdout.score(params, target) == expected  # the cached fold matrices give the same figures
    history, truth = holdout.folds("test")
    validation = holdout.folds("validation")[1]
    assert (history.matrix.multiply(validation.matrix) != validation.matrix).nnz == 0  # test history has validation
    assert history.matrix.multiply(truth.matrix).nnz == 0
    assert set(holdout.score(POPULARITY, "test", (10,)).metrics) == {10}
    again = Holdout.of_manifest(data, features, {"split": {"seed": 7}})
    assert again.split.equals(holdout.split) and again.params == SplitParams(seed=7)


def test_champion_score_reuses_the_recorded_figure_only_on_the_same_data(selected) -> None:
    result, _ = selected
    manifest = result.artifact.manifest
    champion = {**manifest, "metrics": {"validation": {"ndcg@10": 0.123}}}
    assert champion_score(champion, manifest, logs(), games()) == (0.123, "recorded (same training data)")
    moved = {**manifest, "split": {**manifest["split"], "seed": 1}}
    score, how = champion_score(champion, moved, logs(), games())
    assert how == "re-evaluated on the new data"
    holdout = Holdout.of(logs(), games(), SplitParams(seed=1))
    assert score == holdout.score(manifest["parameters"], "validation", (10,)).flat()["ndcg@10"]
    # other training data (players' events) on the same trusted validation fold: each model's own recorded figure,
    # never the champion refit on the challenger's (possibly poisoned) data
    more = {**manifest, "training_data": {**manifest["training_data"], "fingerprint": "other"}}
    assert champion_score(champion, more, logs(), games()) == (0.123, "recorded (same trusted holdout)")
    elsewhere = {**more, "holdout": {**manifest["holdout"], "fingerprint": "another fold"}}
    assert champion_score(champion, elsewhere, logs(), games())[1] == "re-evaluated on the new data"


def test_report_candidates_are_each_familys_best_served_alike() -> None:
    trials = [
        Trial("EASE", {"model": "EASE", "l2": 1.0}, (0.30,)),
        Trial("EASE", {"model": "EASE", "l2": 2.0}, (0.20, 0.22)),  # more splits wins over a higher mean
        Trial("TFIDF", {"model": "TFIDF", "neighbors": 50}, (0.25,)),
    ]
    published = {"model": "TFIDF", "neighbors": 50, "serving_neighbors": 300}
    manifest = {"parameters": published, "selection": {"trials": [t.to_dict() for t in trials]}}
    assert report_candidates(manifest) == {
        "published": published,
        "EASE": {"model": "EASE", "l2": 2.0, "serving_neighbors": 300},
    }
    assert report_candidates({"parameters": published}) == {"published": published}


def test_fit_artifact_describes_the_matrix_alone() -> None:
    params = {"model": "ItemCF", "similarity": "cosine", "neighbors": 100}
    artifact, seconds = fit_artifact(logs(), games(), params)
    assert set(artifact.manifest) == {"parameters", "weights", "training_data"} and seconds >= 0
    assert artifact.manifest["parameters"] == params and artifact.manifest["weights"] == "similarity"
