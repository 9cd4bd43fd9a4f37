"""A matrix-factorisation version served like every model: published to a seeded home, hot-swapped in for the
item-item version, answering /predict (a known user, a guest's basket, a history the realtime overlay changed) and
/games/{id}/similar from its fold-in and factor cosine, then rolled back."""

from __future__ import annotations

import numpy as np
import pytest
from litestar.testing import TestClient

from gamerec_api.app import create_app
from gamerec_api.state import load_state
from gamerec_assets.recsys import training
from gamerec_assets.recsys.model_artifact import FACTORS_FORMAT
from gamerec_assets.recsys.served_model import ServingModel
from tests.gamerec_api.support import ADMIN_TOKEN, Home, wait_ready
from tests.gamerec_api.test_overlay import aligned, answer, frame, ids

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ALS_PARAMS = {"model": "ALS", "factors": 16, "regularization": 5.0, "alpha": 20.0, "iterations": 10}


def publish_mf_model(home: Home) -> str:
    """An ALS version fitted on the home's own players (the same users as the seeded item-item version)."""
    params = {**ALS_PARAMS, "serving_neighbors": 50}
    artifact, _ = training.fit_artifact(home.seeded.logs, home.seeded.features, params)
    return home.registry().publish(artifact)


def played(home: Home, user_id: int) -> list[int]:
    logs = home.seeded.logs
    return sorted(set(logs.filter(logs["user_id"] == user_id)["game_id"].to_list()))


def test_hot_swap_to_an_mf_version_serves_it_and_rolls_back(fresh_home: Home) -> None:
    v1 = fresh_home.seeded.version
    registry = fresh_home.registry()
    v2 = publish_mf_model(fresh_home)
    loaded = registry.load(v2)
    assert loaded.manifest["format"] == FACTORS_FORMAT and loaded.factors is not None
    mf = ServingModel(loaded)
    app = create_app(fresh_home.settings, reload_interval=0, admin_token=ADMIN_TOKEN, env={})
    with TestClient(app) as c:
        wait_ready(c)
        user = 7
        history = played(fresh_home, user)
        before = c.post("/predict", json={"user_id": user, "k": 10}).json()
        assert before["model_version"] == v1

        registry.promote(v2)
        assert c.post("/admin/reload", headers=AUTH).json()["model_version"] == v2
        body = c.post("/predict", json={"user_id": user, "k": 10}).json()
        assert body["model_version"] == v2 and body["source"] == "item_cf"
        ids = [i["game_id"] for i in body["items"]]
        assert len(ids) == 10 and not set(ids) & set(history)
        expected = mf.recommend_history(np.sort(mf.index_of(history)), 10)
        assert ids == mf.item_ids[expected.idx].tolist()
        cf = [i for i in body["items"] if i["source"] == "item_cf"]
        assert len(cf) == expected.n_cf > 0
        assert [i["score"] for i in cf] == pytest.approx(expected.scores[: expected.n_cf], rel=1e-5)
        for item, because in zip(cf, expected.because, strict=False):
            assert item["because"] == mf.item_ids[because].tolist() and set(item["because"]) <= set(history)
            assert 1 <= len(item["because"]) <= 3
        assert ids != [i["game_id"] for i in before["items"]]  # another model answers

        liked = [3328, 4200, 3498]
        basket = c.post("/predict", json={"user_id": 10**9, "k": 12, "liked_game_ids": liked}).json()
        assert basket["model_version"] == v2 and basket["source"] == "basket"
        assert len(basket["items"]) == 12 and not {i["game_id"] for i in basket["items"]} & set(liked)
        basket_cf = [i for i in basket["items"] if i["source"] == "item_cf"]
        assert basket_cf and all(i["because"] and set(i["because"]) <= set(liked) for i in basket_cf)

        game = 3498
        similar = c.get(f"/games/{game}/similar", params={"k": 5}).json()
        assert similar["model_version"] == v2
        sim_ids, sim_scores = mf.similar([game], 5)
        assert [i["game_id"] for i in similar["items"]] == [int(i) for i in sim_ids[0] if i >= 0]
        assert [i["score"] for i in similar["items"]] == pytest.approx(sim_scores[0][sim_ids[0] >= 0], rel=1e-5)
        assert game not in [i["game_id"] for i in similar["items"]] and len(similar["items"]) == 5

        registry.rollback()
        assert c.post("/admin/reload", headers=AUTH).json()["model_version"] == v1
        back = c.post("/predict", json={"user_id": user, "k": 10}).json()
        assert back["model_version"] == v1
        assert [i["game_id"] for i in back["items"]] == [i["game_id"] for i in before["items"]]


def test_the_realtime_overlay_reshapes_an_mf_versions_answers(fresh_home: Home) -> None:
    """A known player's events join the history the MF version folds in: new plays change the answer and explain
    it; once every trained game is disliked, only the new plays explain the recommendations."""
    v2 = publish_mf_model(fresh_home)
    state = load_state(fresh_home.registry(), version=v2, cache_size=1000)
    assert state.model.fold is not None
    overlay = aligned()
    user = state.user_ids(range(1))[0]
    before = answer(state, overlay, user, k=20)
    new = ids(before)[:2]
    overlay.apply(frame((1, user, new[0], "play"), (2, user, new[1], "like")))
    after = answer(state, overlay, user, k=20)
    assert after.model_version == v2 and after.source == "item_cf"
    assert not set(new) & set(ids(after)) and ids(after) != ids(before)
    trained = [state.cards[i].game_id for i in state.history(user.encode())]
    overlay.apply(frame(*[(3 + n, user, g, "dislike") for n, g in enumerate(trained)]))
    res = answer(state, overlay, user, k=20)
    assert not set(trained) & set(ids(res))
    because = {j for i in res.items for j in i.because}
    assert because and because <= set(new), "only the realtime plays are left to explain the answer"
    newcomer = aligned()
    newcomer.apply(frame((1, "newcomer", new[0], "play")))
    guest = answer(state, newcomer, "newcomer", k=5)
    assert guest.source == "item_cf" and all(i.because == [new[0]] for i in guest.items if i.source == "item_cf")
