import numpy as np
import pytest
import scipy.sparse as sp
from implicit.nearest_neighbours import BM25Recommender, TFIDFRecommender

from gamerec_assets.recsys import (
    BM25,
    EASE,
    MODELS,
    TFIDF,
    AsymmetricCosine,
    ItemCF,
    ModelArtifact,
    RP3beta,
    build_model,
)
from gamerec_assets.recsys.itemcf import recommend_from_similarity
from gamerec_assets.recsys.models import ServableModel, dense_topn, rank_unseen
from gamerec_assets.recsys.recommender import Recommender
from gamerec_assets.recsys.served_model import ServingModel
from tests.gamerec_assets.recsys.support import assert_recommends_like_implicit, random_matrix

ZOO = [
    AsymmetricCosine(alpha=0.7, shrink=2.0, neighbors=10),
    TFIDF(neighbors=10),
    BM25(neighbors=10),
    RP3beta(alpha=0.8, beta=0.4, neighbors=10),
    EASE(l2=5.0),
    EASE(l2=5.0, neighbors=8),
]


# every model of the zoo at its defaults, and the served form of a non-negative and of a signed one
CONTRACT = [{"model": name} for name in MODELS] + [
    {"model": "ItemCF", "neighbors": 10, "serving_neighbors": 8},
    {"model": "EASE", "l2": 5.0, "serving_neighbors": 8},
]


@pytest.mark.parametrize("params", CONTRACT, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_every_model_keeps_the_recommender_contract(params: dict) -> None:
    x = random_matrix()
    n_users, n_items = x.shape
    model = build_model(params)
    assert isinstance(model, Recommender)
    assert isinstance(model, ServableModel) == ("serving_neighbors" in params)
    rebuilt = build_model(model.params)
    assert type(rebuilt) is type(model) and rebuilt.params == model.params
    for unfitted in (lambda: model.recommend(x, N=3), lambda: model.similar_items([0], N=3)):
        with pytest.raises(RuntimeError, match="not fitted"):
            unfitted()

    assert model.fit(x) is model
    ids, scores = model.recommend(x, N=12)
    assert ids.shape == scores.shape == (n_users, 12) and ids.dtype == np.int64 and scores.dtype == np.float32
    pad = ids < 0
    assert np.all(ids[pad] == -1) and np.all(scores[pad] == 0)
    assert np.all(np.diff(pad.astype(int), axis=1) >= 0)  # padding only after the real items
    assert np.all(np.diff(scores, axis=1) <= 0)
    rows = np.broadcast_to(np.arange(n_users)[:, None], ids.shape)
    assert not np.any(x.toarray()[rows[~pad], ids[~pad]] > 0)  # never a seen item
    assert all(len(set(r[r >= 0])) == int((r >= 0).sum()) for r in ids)
    assert (~pad).mean() > 0.9

    items = np.arange(n_items)
    sim_ids, sim_scores = model.similar_items(items, N=5)
    assert sim_ids.shape == sim_scores.shape == (n_items, 5) and sim_ids.dtype == np.int64
    assert not np.any(sim_ids == items[:, None])  # never the item itself
    sim_pad = sim_ids < 0
    assert np.all(sim_ids[sim_pad] == -1) and np.all(sim_scores[sim_pad] == 0)
    assert np.all(np.diff(sim_pad.astype(int), axis=1) >= 0) and np.all(np.diff(sim_scores, axis=1) <= 0)
    assert (~sim_pad).any()
    for out_of_range in ([n_items], [-1], [0, n_items + 5]):
        with pytest.raises(IndexError):
            model.similar_items(out_of_range)

    again_ids, again_scores = rebuilt.fit(x).recommend(x, N=12)
    np.testing.assert_array_equal(ids, again_ids)
    np.testing.assert_array_equal(scores, again_scores)


def test_only_item_item_models_can_be_served() -> None:
    with pytest.raises(ValueError, match="serving_neighbors"):
        build_model({"model": "Popularity", "serving_neighbors": 8})


def binary(m: sp.csr_matrix) -> np.ndarray:
    return (m.toarray() > 0).astype(np.float64)


def dense_rank(scores: np.ndarray, seen: np.ndarray, n: int) -> np.ndarray:
    """Reference ranking: positive unseen scores, descending, ties to the lower index, padded with -1."""
    s = np.where((seen > 0) | (scores <= 0), -np.inf, scores)
    order = np.lexsort((np.broadcast_to(np.arange(s.shape[1]), s.shape), -s), axis=1)[:, :n]
    return np.where(np.isfinite(np.take_along_axis(s, order, axis=1)), order, -1)


@pytest.mark.parametrize("model", ZOO, ids=lambda m: str(m.params))
def test_shape_exclusion_padding_and_determinism(model) -> None:
    x = random_matrix()
    ids, scores = model.fit(x).recommend(x, N=12)
    assert ids.shape == scores.shape == (300, 12) and ids.dtype == np.int64 and scores.dtype == np.float32
    rows = np.broadcast_to(np.arange(300)[:, None], ids.shape)
    real = ids >= 0
    assert not np.any(x.toarray()[rows[real], ids[real]] > 0)  # seen items never come back
    assert np.all(scores[real] > 0) and np.all(scores[~real] == 0)
    assert np.all(np.diff(scores, axis=1) <= 0)  # descending, padding (score 0) at the end
    assert np.all(np.diff(real.astype(int), axis=1) <= 0)
    assert real.mean() > 0.9
    again = build_model(model.params).fit(x).recommend(x, N=12)
    np.testing.assert_array_equal(ids, again[0])
    np.testing.assert_array_equal(scores, again[1])


@pytest.mark.parametrize("model", ZOO, ids=lambda m: str(m.params))
def test_params_registry_and_build_model_round_trip(model) -> None:
    assert model.params["model"] in MODELS
    assert build_model(model.params).params == model.params
    assert build_model({**model.params, "serving_neighbors": 7}).params == {**model.params, "serving_neighbors": 7}
    with pytest.raises(RuntimeError):
        build_model(model.params).recommend(random_matrix(), N=3)
    with pytest.raises(ValueError):
        build_model({"model": "Nope"})


@pytest.mark.parametrize("model", ZOO, ids=lambda m: str(m.params))
def test_recommend_equals_dense_scoring_and_the_serving_path(model) -> None:
    """score = user_items @ similarity; on every row with N positive candidates the serving code agrees."""
    x = random_matrix()
    ids, scores = model.fit(x).recommend(x, N=10)
    sim = model.similarity
    assert sp.issparse(sim) and sim.shape == (80, 80) and np.all(sim.diagonal() == 0)
    dense_scores = x.toarray() @ sim.toarray()
    np.testing.assert_array_equal(ids, dense_rank(dense_scores, x.toarray(), 10))
    serve_ids, serve_scores = recommend_from_similarity(sim, x, 10)
    full = (ids >= 0).all(axis=1)
    assert full.mean() > 0.9
    np.testing.assert_array_equal(ids[full], serve_ids[full])
    np.testing.assert_allclose(scores[full], serve_scores[full], rtol=1e-5)


@pytest.mark.parametrize("neighbors", [5, 20, 100])
def test_tfidf_and_bm25_recommendations_equal_implicit(neighbors: int) -> None:
    x = random_matrix()
    for ours, ref in [
        (TFIDF(neighbors), TFIDFRecommender(K=neighbors, num_threads=1)),
        (BM25(neighbors, k1=1.2, b=0.75), BM25Recommender(K=neighbors, K1=1.2, B=0.75, num_threads=1)),
    ]:
        assert_recommends_like_implicit(ours, ref, x)


def test_asymmetric_cosine_matches_the_formula_and_cosine() -> None:
    x = random_matrix(60, 15, 0.3)
    b = binary(x)
    inter, n = b.T @ b, b.sum(axis=0)
    alpha, shrink = 0.8, 3.0
    expected = inter / (n[:, None] ** alpha * n[None, :] ** (1 - alpha) + shrink)
    np.fill_diagonal(expected, 0)
    sim = AsymmetricCosine(alpha, shrink, neighbors=100).fit(x).similarity.toarray()
    np.testing.assert_allclose(sim, expected, rtol=1e-6)
    assert not np.allclose(sim, sim.T)  # α != 0.5 is asymmetric
    cosine = AsymmetricCosine(0.5, 0.0, neighbors=100).fit(x).similarity.toarray()
    np.testing.assert_allclose(cosine, ItemCF("cosine", 100).fit(sp.csr_matrix(b)).similarity.toarray(), rtol=1e-5)


def test_rp3beta_matches_the_dense_formula_with_top_k() -> None:
    x = random_matrix(80, 20, 0.25)
    xd, b = x.toarray(), binary(x)
    alpha, beta, k = 0.7, 0.4, 6
    p_ui = xd / xd.sum(axis=1, keepdims=True).clip(min=1e-12)
    p_iu = b.T / b.sum(axis=0)[:, None].clip(min=1e-12)
    w = (p_iu**alpha) @ (p_ui**alpha) / b.sum(axis=0)[None, :] ** beta
    np.fill_diagonal(w, 0)
    full = RP3beta(alpha, beta, neighbors=100).fit(x).similarity.toarray()
    np.testing.assert_allclose(full, w, rtol=1e-5)
    top = RP3beta(alpha, beta, neighbors=k).fit(x).similarity.toarray()
    kth = -np.sort(-w, axis=1)[:, k - 1 : k]
    np.testing.assert_allclose(top, np.where(w >= kth, w, 0.0), rtol=1e-5)


def test_ease_matches_the_closed_form_and_has_negative_weights() -> None:
    x = random_matrix(120, 25, 0.2)
    xd, lam = x.toarray(), 7.0
    p = np.linalg.inv(xd.T @ xd + lam * np.eye(25))
    expected = np.eye(25) - p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0)
    model = EASE(l2=lam).fit(x)
    np.testing.assert_allclose(model.weights, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.similarity.toarray(), expected, rtol=1e-4, atol=1e-6)
    assert model.similarity.data.min() < 0
    # items nobody touched: all-zero rows and columns (the solve skips them)
    x_gap = sp.csr_matrix(np.hstack([xd, np.zeros((120, 2))]))
    gap = EASE(l2=lam).fit(x_gap)
    np.testing.assert_allclose(gap.weights[:25, :25], expected, rtol=1e-4, atol=1e-6)
    assert not gap.weights[25:].any() and not gap.weights[:, 25:].any()
    with pytest.raises(ValueError, match="max_items"):
        EASE(max_items=10).fit(x)


def test_ease_top_k_keeps_each_rows_largest_weights() -> None:
    x = random_matrix(120, 25, 0.2)
    dense = EASE(l2=7.0).fit(x).weights
    top = EASE(l2=7.0, neighbors=4).fit(x).similarity
    assert np.diff(top.indptr).max() == 4
    np.testing.assert_allclose(np.sort(top.toarray(), axis=1)[:, -4:], np.sort(dense, axis=1)[:, -4:], rtol=1e-6)


def test_serving_an_ease_artifact_unchanged() -> None:
    x = random_matrix(200, 40, 0.15)
    model = EASE(l2=5.0).fit(x)
    item_ids = np.arange(40) * 10 + 1000
    pop = np.asarray((x > 0).sum(axis=0)).ravel().astype(float)
    served = ServingModel(ModelArtifact.from_files(ModelArtifact(item_ids, model.similarity, pop, {}).to_files()))
    rec = served.recommend(x, 10)
    ids, _ = model.recommend(x, N=10)
    full = (ids >= 0).all(axis=1)
    assert full.mean() > 0.9
    np.testing.assert_array_equal(rec.game_ids[full], item_ids[ids[full]])


def test_similar_items_positive_only_and_errors() -> None:
    x = random_matrix()
    for model in (EASE(l2=5.0).fit(x), RP3beta(neighbors=10).fit(x)):
        ids, scores = model.similar_items([0, 1], N=4)
        assert ids.shape == (2, 4) and 0 not in ids[0] and 1 not in ids[1]
        assert np.all(scores[ids >= 0] > 0) and np.all(np.diff(scores, axis=1) <= 0)
        sim = model.similarity.toarray()
        assert ids[0, 0] == int(np.argmax(sim[0]))
        with pytest.raises(IndexError):
            model.similar_items([999])


def test_dense_topn_ties_go_to_the_lower_index() -> None:
    scores = np.array([[1.0, 2.0, 2.0, -np.inf, 2.0], [-np.inf, -np.inf, 0.5, -np.inf, -np.inf]])
    ids, top = dense_topn(scores, 3)
    assert ids.tolist() == [[1, 2, 4], [2, -1, -1]]
    assert top.tolist() == [[2.0, 2.0, 2.0], [0.5, 0.0, 0.0]]
    x = sp.csr_matrix(np.array([[0, 1, 0, 0]], dtype=float))
    sim = sp.csr_matrix(np.ones((4, 4)) - np.eye(4))
    assert rank_unseen(sim, x, 3)[0].tolist() == [[0, 2, 3]]
