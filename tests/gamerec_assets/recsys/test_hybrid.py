"""The Hybrid family: collaborative and content similarity blended per pair by n / (n + β)."""

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from gamerec_assets.recsys.content import ItemContent
from gamerec_assets.recsys.models import Hybrid, ServableModel, build_model, pair_weights, servable_similarity
from gamerec_assets.recsys.selection import select_model_with_report
from tests.gamerec_assets.recsys.support import random_matrix

GENRES = ["Racing", "RPG", "Puzzle", "Shooter"]


def content_for(n_items: int, seed: int = 0) -> ItemContent:
    """Items in four genres (item i: genre i % 4), a genre-typical tag and a common random one: content that
    relates the items of a genre."""
    rng = np.random.default_rng(seed)
    features = pl.DataFrame(
        {
            "game_id": np.arange(n_items, dtype=np.int64),
            "name": [f"title {i}" for i in range(n_items)],
            "genres": [[GENRES[i % 4]] for i in range(n_items)],
            "tags": [[f"{GENRES[i % 4]} style", f"tag{rng.integers(3)}"] for i in range(n_items)],
        }
    )
    return ItemContent.of(features, None, np.arange(n_items))


def test_pair_weights_are_n_over_n_plus_beta() -> None:
    np.testing.assert_allclose(pair_weights(np.array([0, 1, 9]), 1.0), [0.0, 0.5, 0.9])
    np.testing.assert_array_equal(pair_weights(np.array([0, 1, 9]), 0.0), [0.0, 1.0, 1.0])


def test_the_blend_is_the_formula() -> None:
    x = random_matrix(items=40)
    x = sp.csr_matrix(x.multiply((np.arange(40) != 7)[None, :]))  # an item nobody played
    content = content_for(40)
    beta, c = 5.0, 0.3
    model = Hybrid(cf={"model": "ItemCF", "neighbors": 15}, beta=beta, content_weight=c, content=content).fit(x)
    cf = servable_similarity(build_model({"model": "ItemCF", "neighbors": 15}).fit(x).similarity, 300).toarray()
    ct = content.similarity.toarray()

    def typical(m: np.ndarray) -> float:
        peaks = np.abs(m).max(axis=1)
        return peaks[peaks > 0].mean()

    w = pair_weights(np.diff(sp.csc_matrix(x).indptr), beta)
    pair = np.minimum(w[:, None], w[None, :])
    expected = pair * cf / typical(cf) + (1 - pair) * c * ct / typical(ct)
    np.testing.assert_allclose(model.similarity.toarray(), expected, rtol=1e-5, atol=1e-7)
    # the unplayed item is placed by content alone, and served like any other
    ids, scores = model.similar_items([7], N=5)
    np.testing.assert_array_equal(ids[0], np.argsort(-ct[7], kind="stable")[:5])
    assert np.all(ids[0] % 4 == 7 % 4) and np.all(scores > 0)  # its genre mates


def test_a_new_item_is_recommended_to_fans_of_its_genre() -> None:
    rng = np.random.default_rng(3)
    users, items = 200, 40
    taste = rng.integers(4, size=users)
    x = sp.csr_matrix(rng.random((users, items)) < np.where(taste[:, None] == np.arange(items) % 4, 0.3, 0.01))
    x = sp.csr_matrix(x.multiply((np.arange(items) != 5)[None, :]), dtype=np.float32)  # a new RPG (genre 1)
    model = build_model({"model": "Hybrid", "cf": {"model": "RP3beta"}, "serving_neighbors": 50}, content_for(items))
    assert isinstance(model, ServableModel)
    ids, _ = model.fit(x).recommend(x, N=items)
    rank = np.argmax(ids == 5, axis=1).astype(float)
    rank[~(ids == 5).any(axis=1)] = items
    assert rank[taste == 1].mean() < rank[taste != 1].mean() - 5
    cf_only = build_model({"model": "RP3beta"}).fit(x).recommend(x, N=items)[0]
    assert not (cf_only == 5).any()  # without content nobody ever gets it


def test_without_content_it_is_its_cf_part() -> None:
    x = random_matrix()
    hybrid = Hybrid(cf={"model": "RP3beta", "neighbors": 20}).fit(x)
    cf = build_model({"model": "RP3beta", "neighbors": 20}).fit(x)
    np.testing.assert_array_equal(hybrid.recommend(x, N=10)[0], cf.recommend(x, N=10)[0])
    assert build_model(hybrid.params).params == hybrid.params  # the content is data, never a param
    with pytest.raises(ValueError, match="item-item CF model"):
        Hybrid(cf={"model": "Popularity"})
    with pytest.raises(ValueError, match="beta"):
        Hybrid(beta=-1.0)


def test_selection_tunes_the_hybrid_only_with_content() -> None:
    rng = np.random.default_rng(0)
    users, items = 240, 48
    taste = rng.integers(4, size=users)
    x = sp.csr_matrix(rng.random((users, items)) < np.where(taste[:, None] == np.arange(items) % 4, 0.25, 0.02))
    x = sp.csr_matrix(x, dtype=np.float32)
    families = ("Popularity", "RP3beta", "ItemCF", "Hybrid")
    without = select_model_with_report(x, time_budget_s=30, families=families, refit=False)
    assert "Hybrid" not in {t.model for t in without.trials}
    result = select_model_with_report(x, time_budget_s=30, families=families, content=content_for(items))
    hybrids = [t for t in result.trials if t.model == "Hybrid"]
    assert hybrids and {t.stage for t in hybrids} <= {"tune", "confirm"}
    # blended with the best CF configuration of the tuning stage (split 0, before any confirmation)
    best_cf = max((t for t in result.trials if t.model in ("RP3beta", "ItemCF")), key=lambda t: t.ndcg_splits[0])
    assert all(t.params["cf"] == best_cf.params for t in hybrids)
    winner = max((t for t in result.trials if t.n_splits == 3), key=lambda t: t.ndcg)
    assert result.best == winner.params
    with pytest.raises(ValueError, match="content describes"):
        select_model_with_report(x, time_budget_s=5, content=content_for(items + 1))
