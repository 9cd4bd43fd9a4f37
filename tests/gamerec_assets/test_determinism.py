"""A seed gives the same logs, model and metrics whichever table backend the inputs were read back from.

SQLite returns an unordered SELECT in insertion order, MariaDB in primary-key order; anything seeded (the
simulation's draws, the holdout split's per-row keys) would otherwise depend on that.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from gamerec_api.demo import snapshot_features
from gamerec_assets.recsys import SimulationParams, evaluate_holdout, simulate_user_logs, split_interactions
from gamerec_assets.recsys.matrix import build_matrix, catalogue
from gamerec_assets.recsys.models import build_model
from gamerec_assets.store import TableStore

PARAMS = {"model": "ItemCF", "similarity": "cosine", "neighbors": 100}


@pytest.fixture
def stores(tmp_path, mysql_db: dict) -> dict[str, TableStore]:
    return {"sqlite": TableStore(f"sqlite:///{tmp_path / 'gamerec.db'}"), "mysql": TableStore(mysql_db["url"])}


def fit(features: pl.DataFrame, logs: pl.DataFrame):
    item_ids = catalogue(features, logs)
    model = build_model(PARAMS).fit(build_matrix(logs, item_ids).matrix)
    metrics = evaluate_holdout(split_interactions(logs), item_ids, lambda: build_model(PARAMS), "validation").flat()
    return item_ids, model.similarity, metrics


def test_same_seed_same_logs_model_and_metrics_on_both_backends(stores: dict[str, TableStore]) -> None:
    features = snapshot_features()
    assert not features["game_id"].is_sorted()  # RAWG rank order: the backends would return it differently
    back = {}
    for name, store in stores.items():
        store.write("game_features", features, primary_key=["game_id"])
        back[name] = store.read("game_features")
    assert back["sqlite"].equals(back["mysql"])  # both in primary-key order
    shuffled = back["mysql"].sample(fraction=1.0, shuffle=True, seed=3)

    params = SimulationParams(n_users=300, max_games=8, seed=11)
    logs = {"sqlite": simulate_user_logs(back["sqlite"], params), "mysql": simulate_user_logs(shuffled, params)}
    assert logs["sqlite"].equals(logs["mysql"])
    assert simulate_user_logs(features, params).equals(logs["sqlite"])

    logs_back = {}
    for name, store in stores.items():
        store.write("user_logs", logs[name], primary_key=["user_id", "game_id"])
        logs_back[name] = store.read("user_logs")
    assert logs_back["sqlite"].equals(logs_back["mysql"])

    (ids_a, sim_a, metrics_a), (ids_b, sim_b, metrics_b) = (fit(back[n], logs_back[n]) for n in ("sqlite", "mysql"))
    np.testing.assert_array_equal(ids_a, ids_b)
    assert sim_a.shape == sim_b.shape and sim_a.nnz > 0
    for part in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(sim_a, part), getattr(sim_b, part))
    assert metrics_a == metrics_b and metrics_a["ndcg@10"] > 0
