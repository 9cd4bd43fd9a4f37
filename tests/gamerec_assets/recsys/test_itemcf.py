import numpy as np
import pytest
import scipy.sparse as sp
from implicit.nearest_neighbours import CosineRecommender

from gamerec_assets.recsys import ItemCF, Popularity
from tests.gamerec_assets.recsys.support import assert_recommends_like_implicit, random_matrix


@pytest.mark.parametrize("neighbors", [5, 20, 100])
def test_cosine_recommendations_equal_implicit(neighbors: int) -> None:
    assert_recommends_like_implicit(
        ItemCF("cosine", neighbors), CosineRecommender(K=neighbors, num_threads=1), random_matrix()
    )


def test_jaccard_matches_brute_force() -> None:
    x = random_matrix(60, 15, 0.3)
    b = (x.toarray() > 0).astype(float)
    inter = b.T @ b
    n = b.sum(axis=0)
    expected = inter / (n[:, None] + n[None, :] - inter)
    np.fill_diagonal(expected, 0)
    sim = ItemCF("jaccard", neighbors=100).fit(x).similarity.toarray()
    np.testing.assert_allclose(sim, expected, rtol=1e-6)


def test_similarity_is_bounded_sparse_and_has_no_self_similarity() -> None:
    for kind in ("cosine", "jaccard"):
        sim = ItemCF(kind, neighbors=6).fit(random_matrix()).similarity
        assert np.all(np.isfinite(sim.data))
        assert sim.data.min() >= 0 and sim.data.max() <= 1
        assert np.all(sim.diagonal() == 0)
        assert np.diff(sim.indptr).max() <= 5  # neighbours counts the item itself, as implicit's K


def test_recommend_excludes_seen_and_scores_by_sum_of_similarities() -> None:
    x = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 1], [1, 1, 1, 0]], dtype=float))
    model = ItemCF("cosine", neighbors=10).fit(x)
    ids, scores = model.recommend(x[[0]], N=4)
    sim = model.similarity.toarray()
    expected = sim[0] + sim[1]
    assert set(ids[0][ids[0] >= 0]) == {2, 3}
    assert ids[0][0] == int(np.argmax(np.where([0, 0, 1, 1], expected, -1)))
    np.testing.assert_allclose(scores[0][:2], sorted(expected[[2, 3]], reverse=True), rtol=1e-6)
    assert ids[0][2] == -1 and ids[0][3] == -1  # only two unseen items exist: padded


def test_ties_break_to_the_lower_index() -> None:
    x = sp.csr_matrix(np.array([[1, 1, 1, 1]], dtype=float))
    model = ItemCF("cosine", neighbors=4).fit(sp.vstack([x, x]).tocsr())
    ids, _ = model.recommend(sp.csr_matrix(np.array([[0, 1, 0, 0]], dtype=float)), N=3)
    assert ids[0].tolist() == [0, 2, 3]
    sim_ids, _ = model.similar_items([3], N=3)
    assert sim_ids[0].tolist() == [0, 1, 2]


def test_similar_items_and_errors() -> None:
    model = ItemCF("jaccard", neighbors=5).fit(random_matrix())
    ids, scores = model.similar_items([0, 1], N=4)
    assert ids.shape == (2, 4) and 0 not in ids[0] and 1 not in ids[1]
    assert np.all(np.diff(scores, axis=1) <= 0)
    with pytest.raises(IndexError):
        model.similar_items([999])
    with pytest.raises(RuntimeError):
        ItemCF().recommend(random_matrix())
    with pytest.raises(ValueError):
        ItemCF("euclid")  # type: ignore[arg-type]


def test_popularity_baseline_excludes_seen() -> None:
    x = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0], [0, 0, 0, 1]], dtype=float))
    ids, scores = Popularity().fit(x).recommend(x, N=2)
    assert ids[0].tolist() == [2, 3]
    assert ids[3].tolist() == [0, 2]
    assert scores[3].tolist() == [3.0, 2.0]


def test_popularity_similar_items_are_the_most_popular_other_items() -> None:
    x = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0], [0, 0, 0, 1]], dtype=float))
    model = Popularity().fit(x)
    ids, scores = model.similar_items([0, 2, 3], N=2)
    assert ids.tolist() == [[2, 1], [0, 1], [0, 2]]  # play counts 3, 1, 2, 1; ties to the lower index
    assert scores.tolist() == [[2.0, 1.0], [3.0, 1.0], [3.0, 2.0]]
    with pytest.raises(IndexError):
        model.similar_items([4])
