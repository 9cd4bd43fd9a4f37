"""The item cold-start protocol: every interaction of a random 10 % of the played items held out, the rest fit,
the held-out games ranked for the users who had them (Recall@20, NDCG@20), against popularity and random."""

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from gamerec_api.demo import snapshot_features
from gamerec_assets.recsys import SimulationParams, simulate_user_logs
from gamerec_assets.recsys.evaluation import ColdStart, ColdStartSplit, cold_start_candidates, content_only
from tests.gamerec_assets.recsys.support import random_matrix


@pytest.fixture(scope="module")
def games() -> pl.DataFrame:
    return snapshot_features()


def test_the_split_holds_out_every_interaction_of_a_tenth_of_the_played_items() -> None:
    x = random_matrix(items=80)
    x = sp.csr_matrix(x.multiply((np.arange(80) % 9 != 0)[None, :]), dtype=np.float32)  # some items nobody played
    split = ColdStartSplit.of(x, 0.1, seed=3)
    played = np.flatnonzero(np.diff(sp.csc_matrix(x).indptr) > 0)
    assert len(split.cold) == round(0.1 * len(played)) and np.isin(split.cold, played).all()
    assert (split.history + split.truth - x).nnz == 0 and split.history.multiply(split.truth).nnz == 0
    assert np.diff(sp.csc_matrix(split.history).indptr)[split.cold].sum() == 0  # no trace left in the fit
    assert set(np.unique(split.truth.indices)) == set(split.cold)
    users = split.users
    assert (np.diff(split.truth.indptr)[users] > 0).all() and (np.diff(split.history.indptr)[users] > 0).all()
    assert not np.array_equal(ColdStartSplit.of(x, 0.1, seed=4).cold, split.cold)
    with pytest.raises(ValueError, match="fraction"):
        ColdStartSplit.of(x, 0.0)


def test_content_places_new_games_and_popularity_cannot(games: pl.DataFrame) -> None:
    logs = simulate_user_logs(games, SimulationParams(n_users=1_000, seed=0))
    cold = ColdStart.of(logs, games)
    manifest = {"parameters": {"model": "Hybrid", "cf": {"model": "RP3beta"}, "serving_neighbors": 300}}
    candidates = cold_start_candidates(manifest)
    assert candidates["content"] == content_only(300)
    result = cold.compare({**candidates, "cf only": {"model": "RP3beta", "serving_neighbors": 300}})
    m = result.metrics
    assert set(m) == {"published", "content", "cf only", "popularity", "random"}
    assert result.items == len(cold.split.cold) and result.users == len(cold.split.users) > 100
    assert m["popularity"] == {k: 0.0 for k in m["popularity"]}  # no plays to go on: it places no new game
    assert m["cf only"]["ndcg@20"] == 0.0 and m["cf only"]["recall@20_all"] == 0.0
    for name in ("published", "content"):
        assert m[name]["ndcg@20"] > 1.5 * m["random"]["ndcg@20"] + 0.05
        assert m[name]["recall@20"] > 1.5 * m["random"]["recall@20"] + 0.05
        assert m[name]["recall@20_all"] > m["random"]["recall@20_all"]
    # among every game, how often a new one makes the list depends on the content weight (0.1 here, 1 for content)
    assert m["content"]["recall@20_all"] > 5 * m["random"]["recall@20_all"]
    frame = result.frame()
    assert frame["model"].to_list() == list(m) and frame.columns[1:] == list(m["random"])
    again = ColdStart.of(logs, games).compare(candidates)
    assert again.metrics == {k: v for k, v in m.items() if k != "cf only"}  # seeded: the same figures
