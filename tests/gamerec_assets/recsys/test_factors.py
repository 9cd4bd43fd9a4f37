"""Matrix factorisation families (ALS, BPR): fit, recommend and similar items through the fold-in, the exact
`because` decomposition, the artifact's factor arrays and their validation, serving, and selection."""

from __future__ import annotations

import io
import json

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from gamerec_assets.recsys import ModelArtifact, SimulationParams, build_matrix, build_model, simulate_user_logs
from gamerec_assets.recsys.factors import ALS, BPR, FoldIn, cosine_neighbours
from gamerec_assets.recsys.metrics import ranking_metrics
from gamerec_assets.recsys.model_artifact import ARRAYS, FACTORS_FORMAT, MANIFEST, ArtifactError
from gamerec_assets.recsys.selection import (
    DataShape,
    WorkModel,
    default_candidates,
    inner_split,
    select_model_with_report,
)
from gamerec_assets.recsys.served_model import BECAUSE, ServingModel


def games(n: int = 120) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    genres = ["Action", "RPG", "Puzzle", "Racing", "Strategy", "Indie"]
    return pl.DataFrame(
        {
            "game_id": np.arange(1, n + 1, dtype=np.int64),
            "name": [f"game {i}" for i in range(n)],
            "genres": [[genres[i % 6], genres[(i // 6) % 6]] for i in range(n)],
            "tags": [[f"tag{i % 9}"] for i in range(n)],
            "rating": rng.uniform(2.5, 4.8, n),
            "added": rng.integers(50, 5000, n),
            "playtime": rng.integers(1, 60, n),
            "released": ["2020-01-01"] * n,
        }
    )


@pytest.fixture(scope="module")
def log_matrix() -> sp.csr_matrix:
    """A small simulated play log (taste groups by genre and tag), as the binary users × games matrix."""
    logs = simulate_user_logs(games(), SimulationParams(n_users=800, max_games=25, seed=3))
    x = build_matrix(logs).matrix
    x.data[:] = 1.0
    return x


def split(x: sp.csr_matrix) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    train, held = inner_split(x, 0.2, seed=1)
    return train, held, np.flatnonzero(np.diff(held.indptr) > 0)


@pytest.mark.parametrize(
    "params",
    [
        {"model": "ALS", "factors": 16, "regularization": 5.0, "alpha": 20.0, "iterations": 10},
        {"model": "BPR", "factors": 16, "learning_rate": 0.02, "iterations": 60, "fold_regularization": 5.0},
    ],
)
def test_mf_families_fit_recommend_and_list_similar_items(log_matrix: sp.csr_matrix, params: dict) -> None:
    train, held, users = split(log_matrix)
    model = build_model(params).fit(train)
    assert build_model(model.params).params == model.params  # params round trip, as manifests store them
    ids, scores = model.recommend(train[users], N=10)
    assert ids.shape == (len(users), 10) and scores.dtype == np.float32
    seen = train[users]
    for row in range(len(users)):
        real = ids[row][ids[row] >= 0]
        assert not set(real) & set(seen[row].indices)  # never what the user has
        assert np.all(np.diff(scores[row][ids[row] >= 0]) <= 0) and np.all(scores[row][ids[row] >= 0] > 0)
    popularity = build_model({"model": "Popularity"}).fit(train).recommend(train[users], N=10)[0]
    ndcg = ranking_metrics(ids, held[users], 10)["ndcg"]
    assert ndcg > ranking_metrics(popularity, held[users], 10)["ndcg"]
    # similar items: factor cosine, never the item itself, best first
    similar, values = model.similar_items(np.arange(5), N=6)
    assert not (similar == np.arange(5)[:, None]).any() and np.all(np.diff(values, axis=1) <= 1e-6)
    y = model.fold.item_factors.astype(np.float64)
    unit = y / np.linalg.norm(y, axis=1, keepdims=True)
    np.testing.assert_allclose(values[0, 0], unit[0] @ unit[similar[0, 0]], rtol=1e-5)
    # deterministic for a seed
    again = build_model(params).fit(train)
    np.testing.assert_array_equal(again.fold.item_factors, model.fold.item_factors)


def test_serving_neighbors_sets_the_published_cosine_neighbours(log_matrix: sp.csr_matrix) -> None:
    model = build_model({"model": "ALS", "factors": 8, "iterations": 3, "serving_neighbors": 7}).fit(log_matrix)
    assert isinstance(model, ALS) and model.neighbors == 7
    sim = model.similarity
    assert sim.shape == (log_matrix.shape[1],) * 2 and (np.diff(sim.indptr) <= 7).all()
    ids, values = cosine_neighbours(model.fold.item_factors, np.arange(3), 7)
    for item in range(3):
        row = sim[item]
        assert set(row.indices) == set(ids[item][ids[item] >= 0])
        np.testing.assert_allclose(np.sort(row.data), np.sort(values[item][ids[item] >= 0]), rtol=1e-6)


def test_fold_in_of_a_known_user_reproduces_the_trained_users_top_items(log_matrix: sp.csr_matrix) -> None:
    """The fold-in is ALS's own user step: from the final item factors, a training user's folded-in vector ranks
    (nearly) as the user factors implicit trained do."""
    x = log_matrix
    with threadpool_limits(1, "blas"):
        ref = AlternatingLeastSquares(factors=16, regularization=5.0, alpha=20.0, iterations=15, random_state=0)
        ref.fit(x, show_progress=False)
    fold = FoldIn.of(ref.item_factors, 5.0, 20.0)
    users = np.flatnonzero(np.diff(x.indptr) >= 3)[:200]
    folded, _ = fold.rank(x[users], 10)
    trained = ref.user_factors[users].astype(np.float64) @ fold.factors64.T
    trained[np.repeat(np.arange(len(users)), np.diff(x[users].indptr)), x[users].indices] = -np.inf
    top = np.argsort(-trained, axis=1, kind="stable")[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(folded, top, strict=True)])
    assert overlap >= 0.8, overlap
    # and the batch kernel, one history and implicit's own recalculate_user agree on the vector
    u = int(users[0])
    np.testing.assert_allclose(fold.user_vectors(x[[u]])[0], fold.history_vector(x[u].indices), rtol=1e-9)
    ref_vec = ref.recalculate_user(u, x[[u]])
    np.testing.assert_allclose(fold.history_vector(x[u].indices), ref_vec, rtol=2e-3, atol=2e-4)


def test_because_is_the_exact_decomposition_of_each_score(log_matrix: sp.csr_matrix) -> None:
    model = ALS(factors=12, regularization=5.0, alpha=10.0, iterations=8).fit(log_matrix)
    fold = model.fold
    history = log_matrix[5].indices
    scores = fold.factors64 @ fold.history_vector(history)
    w = fold.contributions(history, np.arange(fold.n_items))
    np.testing.assert_allclose(w.sum(axis=1), scores, rtol=1e-8, atol=1e-10)


def mf_artifact(x: sp.csr_matrix, params: dict | None = None) -> ModelArtifact:
    model = build_model(params or {"model": "ALS", "factors": 12, "iterations": 8, "serving_neighbors": 20}).fit(x)
    n = x.shape[1]
    pop = np.asarray((x > 0).sum(axis=0)).ravel().astype(np.float64)
    return ModelArtifact(np.arange(n) * 2 + 5, model.similarity, pop, {"version": "mf"}, factors=model.fold)


def test_artifact_round_trip_keeps_the_factors_and_validates_them(log_matrix: sp.csr_matrix) -> None:
    artifact = mf_artifact(log_matrix)
    files = artifact.to_files()
    manifest = json.loads(files[MANIFEST])
    assert manifest["format"] == FACTORS_FORMAT and manifest["arrays"]["factors"] == 12
    back = ModelArtifact.from_files(files)
    assert back.factors is not None
    np.testing.assert_array_equal(back.factors.item_factors, artifact.factors.item_factors)
    assert back.factors.item_factors.dtype == np.float32 and back.factors.alpha == artifact.factors.alpha
    np.testing.assert_array_equal(back.factors.gram, artifact.factors.gram)
    assert (back.similarity != artifact.similarity).nnz == 0


def rewritten(files: dict[str, bytes], change: dict[str, np.ndarray]) -> dict[str, bytes]:
    """The artifact's files with some arrays replaced and the checksum updated: corruption a checksum misses."""
    import hashlib

    with np.load(io.BytesIO(files[ARRAYS]), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    buf = io.BytesIO()
    np.savez(buf, **{**arrays, **change})
    manifest = json.loads(files[MANIFEST])
    manifest["files"][ARRAYS] = hashlib.sha256(buf.getvalue()).hexdigest()
    return {**files, ARRAYS: buf.getvalue(), MANIFEST: json.dumps(manifest).encode()}


def test_corrupted_factor_arrays_are_refused_on_load_and_never_written(log_matrix: sp.csr_matrix) -> None:
    artifact = mf_artifact(log_matrix)
    files = artifact.to_files()
    y = artifact.factors.item_factors.copy()
    nan = y.copy()
    nan[3, 2] = np.nan
    gram = artifact.factors.gram
    cases = {
        "item_factors: 1 entry not finite": {"item_factors": nan},
        "item_factors: shape": {"item_factors": y[:-1]},
        "fold_gram: not positive definite": {"fold_gram": -gram},
        "fold_gram: not symmetric": {"fold_gram": gram + np.triu(np.ones_like(gram), 1)},
        "fold_gram: shape": {"fold_gram": gram[:-1, :-1]},
        "fold_alpha": {"fold_alpha": np.array([0.5])},
        "manifest records 12 factors": {"item_factors": y[:, :-1], "fold_gram": gram[:-1, :-1]},
    }
    for message, change in cases.items():
        with pytest.raises(ArtifactError, match=message):
            ModelArtifact.from_files(rewritten(files, change))
    without = rewritten(files, {})
    with np.load(io.BytesIO(without[ARRAYS]), allow_pickle=False) as npz:
        kept = {name: npz[name] for name in npz.files if name != "item_factors"}
    buf = io.BytesIO()
    np.savez(buf, **kept)
    with pytest.raises(ArtifactError, match="missing factor arrays"):
        ModelArtifact.from_files(rewritten({**files, ARRAYS: buf.getvalue()}, {}))
    bad = FoldIn(nan, gram, artifact.factors.alpha)
    with pytest.raises(ArtifactError, match="not finite"):
        ModelArtifact(artifact.item_ids, artifact.similarity, artifact.popularity, {}, factors=bad).to_files()


def test_serving_an_mf_version_request_path_equals_batch_path(log_matrix: sp.csr_matrix) -> None:
    x = log_matrix
    served = ServingModel(ModelArtifact.from_files(mf_artifact(x).to_files()))
    n = 20
    batch = served.recommend(x, n)
    assert batch.from_cf.mean() > 0.5  # MF ranks most of the catalogue for anyone with a history
    for row in range(0, x.shape[0], 7):
        h = x[row].indices
        rec = served.recommend_history(h, n)
        np.testing.assert_array_equal(served.item_ids[rec.idx], batch.game_ids[row])
        np.testing.assert_allclose(rec.scores, batch.scores[row], rtol=1e-5)
        np.testing.assert_array_equal(rec.from_cf, batch.from_cf[row])
        assert not set(rec.idx) & set(h)
        for item, because in zip(rec.idx[: rec.n_cf], rec.because[: rec.n_cf], strict=True):
            assert 1 <= len(because) <= BECAUSE and set(because) <= set(h)
            w = served.fold.contributions(h, np.array([item]))[0]
            expected = [int(h[j]) for j in np.lexsort((np.arange(len(h)), -w)) if w[j] > 0][:BECAUSE]
            assert because == expected  # the largest positive contributions, largest first
    guest = served.recommend_history(np.array([], np.int64), 5)
    assert guest.n_cf == 0 and guest.idx == served.popular_list[:5]  # no history: popularity
    cols, vals = served.neighbours(0, 5)
    ids, scores = served.similar(served.item_ids[:1], 5)
    np.testing.assert_array_equal(served.item_ids[cols], ids[0][ids[0] >= 0])
    np.testing.assert_allclose(vals, scores[0][ids[0] >= 0], rtol=1e-6)
    assert len(cols) == 5 and np.all(vals > 0)


def test_selection_evaluates_mf_families_within_the_work_budget(log_matrix: sp.csr_matrix) -> None:
    x = log_matrix
    candidates = {c["model"]: c for c in default_candidates(x, ("ALS", "BPR"))}
    mean_pop = np.diff(sp.csc_matrix(x).indptr).mean()  # every game is played in this log
    assert candidates["ALS"]["regularization"] == pytest.approx(2 * mean_pop, rel=0.01)
    shape = DataShape.of(x, 500)
    for params in candidates.values():
        assert 0 < WorkModel().fit_ns(params, shape) < 60e9 and WorkModel().score_ns(shape, params) > 0
    result = select_model_with_report(x, time_budget_s=30.0, families=("Popularity", "ALS"), n_splits=2, seed=0)
    assert {t.model for t in result.trials} == {"Popularity", "ALS"} and not result.wall_capped
    assert len([t for t in result.trials if t.model == "ALS"]) > 1  # screened and tuned
    assert result.best["model"] == "ALS" and isinstance(result.model, ALS)
    assert result.work_s <= 30.0
    assert isinstance(build_model({"model": "BPR"}), BPR)
