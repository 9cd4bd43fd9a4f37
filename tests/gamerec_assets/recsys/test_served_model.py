import numpy as np
import scipy.sparse as sp

from gamerec_assets.recsys import EASE, ItemCF, ModelArtifact, build_model
from gamerec_assets.recsys.models import ServableModel, servable_similarity
from gamerec_assets.recsys.served_model import ServingModel


def matrix(seed: int = 0) -> sp.csr_matrix:
    m = sp.random(200, 40, density=0.15, random_state=seed, format="csr")
    m.data[:] = 1
    return m


def test_servable_similarity_keeps_largest_magnitudes_and_scales() -> None:
    w = sp.csr_matrix(np.array([[5.0, -4.0, 1.0, 0.5], [2.0, 0.0, -8.0, 1.0], [0, 0, 0, 0], [1, 1, 1, 3]]))
    out = servable_similarity(w, 2).toarray()
    assert np.all(np.diag(out) == 0)
    assert (np.count_nonzero(out, axis=1) <= 2).all()
    np.testing.assert_allclose(out[0], [0, -4 / 8, 1 / 8, 0])  # diagonal dropped first, then top-2 by |w|
    np.testing.assert_allclose(out[1], [2 / 8, 0, -1, 0])
    assert np.abs(out).max() == 1.0


def test_servable_model_ranks_like_its_artifact_is_served() -> None:
    x = matrix()
    model = build_model({"model": "EASE", "l2": 10.0, "serving_neighbors": 15}).fit(x)
    assert isinstance(model, ServableModel) and model.params["serving_neighbors"] == 15
    ids, _ = model.recommend(x[:50], N=5)
    served = ServingModel(ModelArtifact(np.arange(40) + 100, model.similarity, np.ones(40), {"version": "v"}))
    recs = served.recommend(x[:50], 5, fill_popular=False)
    np.testing.assert_array_equal(np.where(ids >= 0, ids + 100, -1), recs.game_ids)


def test_cosine_ranking_is_unchanged_by_serving_transform() -> None:
    x = matrix(1)
    plain = ItemCF("cosine", 10).fit(x)
    served = build_model({**plain.params, "serving_neighbors": 10}).fit(x)
    np.testing.assert_array_equal(plain.recommend(x, 10)[0], served.recommend(x, 10)[0])
    assert served.similarity.data.min() >= 0 and served.similarity.data.max() == 1.0
    assert EASE is not None


def test_request_path_answers_as_the_batch_path() -> None:
    """One history (recommend_history) and one item (neighbours) rank as the batch methods do, fill included."""
    x = matrix(2)
    sim = ItemCF("cosine", 6).fit(x).similarity
    pop = np.asarray(x.sum(axis=0)).ravel()
    served = ServingModel(ModelArtifact(np.arange(40) * 3 + 7, sim, pop, {"version": "v"}))
    batch = served.recommend(x, 25)
    for row in range(x.shape[0]):
        rec = served.recommend_history(x[row].indices, 25)
        np.testing.assert_array_equal(served.item_ids[rec.idx], batch.game_ids[row])
        np.testing.assert_allclose(rec.scores, batch.scores[row], rtol=1e-5)
        np.testing.assert_array_equal(rec.from_cf, batch.from_cf[row])
        assert all(set(b) <= set(x[row].indices) for b in rec.because)
        assert rec.because[rec.n_cf :] == [[]] * (25 - rec.n_cf)
    ids, scores = served.similar(served.item_ids, 4)
    for item in range(40):
        cols, vals = served.neighbours(item, 4)
        real = ids[item] >= 0
        np.testing.assert_array_equal(served.item_ids[cols], ids[item][real])
        np.testing.assert_array_equal(vals, scores[item][real])
        assert served.item_index(int(served.item_ids[item])) == item
    assert served.item_index(-5) == -1


def test_neighbours_shown_to_people_are_only_positive() -> None:
    """A signed (EASE) model keeps negative weights for ranking, but "similar to X" never lists them."""
    import scipy.sparse as sp

    weights = sp.csr_matrix(
        np.array([[0, 0.8, -0.5, 0.2], [0.8, 0, 0.1, -0.9], [-0.5, 0.1, 0, 0.3], [0.2, -0.9, 0.3, 0]])
    )
    served = ServingModel(ModelArtifact(np.arange(4) + 10, weights, np.ones(4), {"version": "v"}))
    cols, vals = served.neighbours(0, 10)
    assert cols.tolist() == [1, 3] and (vals > 0).all()
    cols, vals = served.neighbours(1, 10)
    assert cols.tolist() == [0, 2] and np.allclose(vals, [0.8, 0.1])


def test_popular_fill_scores_are_plays_relative_to_the_most_played() -> None:
    """A fill item's score is popularity / max popularity, in (0, 1], in the batch path, the request path and the
    batch table alike (never a bare 0.0, which read as "no relevance at all")."""
    from gamerec_assets.recsys.served_model import batch_frame

    pop = np.array([0, 8, 2, 4, 1, 0], np.float64)
    weights = sp.csr_matrix(np.zeros((6, 6)))  # no neighbours: every list is popularity fill
    served = ServingModel(ModelArtifact(np.arange(6) + 10, weights, pop, {"version": "v"}))
    np.testing.assert_allclose(served.popular_score, [0, 1, 0.25, 0.5, 0.125, 0])
    rec = served.recommend_history([3], 3)
    assert (rec.idx, rec.scores, rec.n_cf) == ([1, 2, 4], [1.0, 0.25, 0.125], 0)
    batch = served.recommend(sp.csr_matrix(np.array([[0, 0, 0, 1.0, 0, 0]])), 3)
    assert batch.game_ids.tolist() == [[11, 12, 14]] and not batch.from_cf.any()
    np.testing.assert_allclose(batch.scores, [[1.0, 0.25, 0.125]])
    table = batch_frame(served, np.array(["u"]), np.array([0]), np.array([13]), 3)
    assert table["score"].to_list() == [1.0, 0.25, 0.125] and set(table["source"]) == {"popular"}
