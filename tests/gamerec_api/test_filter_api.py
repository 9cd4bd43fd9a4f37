"""The request-time `filter` of POST /predict and GET /games/{id}/similar, through the API on the seeded home:
every item passes, the top-k is taken among passing games (k whenever k pass, fewer only when fewer pass), the
popularity fill is the most popular passing games, unknown attributes are a 400 naming the known ones."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from litestar.testing import TestClient

from gamerec_api import answers
from gamerec_api.answers import policy
from gamerec_api.schemas import Boost, GameFilter, PredictRequest, ValueFilter
from gamerec_api.state import ServingState, load_state
from gamerec_assets.recsys import training
from gamerec_assets.recsys.model_artifact import GameCard
from gamerec_assets.recsys.served_model import ServingModel
from tests.gamerec_api.support import Home
from tests.gamerec_api.test_mf_serving import ALS_PARAMS
from tests.gamerec_assets.recsys.test_item_filter import check_filtered_answers

USER = 7


@pytest.fixture(scope="module")
def state(home: Home) -> ServingState:
    return load_state(home.registry())


@pytest.fixture(scope="module")
def stored(state: ServingState) -> dict[int, GameCard]:
    """The version's stored cards (with tags and platforms) by game id."""
    return {c.game_id: c for c in state.users.cards}


def played(home: Home, user_id: int) -> set[int]:
    logs = home.seeded.logs
    return set(logs.filter(logs["user_id"] == user_id)["game_id"].to_list())


def predict(client: TestClient, **body: object) -> dict:  # type: ignore[type-arg]
    r = client.post("/predict", json={"user_id": USER, **body})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def ids(body: dict) -> list[int]:  # type: ignore[type-arg]
    return [i["game_id"] for i in body["items"]]


def test_genres_any_and_none(client: TestClient, home: Home, stored: dict[int, GameCard]) -> None:
    body = predict(client, k=10, filter={"genres": {"any": ["rpg", "Strategy"]}})
    assert len(body["items"]) == 10
    assert all({"RPG", "Strategy"} & set(i["genres"]) for i in body["items"])
    assert not set(ids(body)) & played(home, USER)
    body = predict(client, k=10, filter={"genres": {"none": ["Action"]}, "platforms": {"any": ["PC"]}})
    assert len(body["items"]) == 10
    assert all("Action" not in i["genres"] and "PC" in stored[i["game_id"]].platforms for i in body["items"])
    body = predict(client, k=10, filter={"genres": {"any": ["Shooter"]}})
    assert body["source"] == "item_cf" and all("Shooter" in i["genres"] for i in body["items"])
    body = predict(client, k=10, filter={"tags": {"any": ["Co-op"]}})
    assert len(body["items"]) == 10 and all("Co-op" in stored[g].tags for g in ids(body))


def test_many_admitted_gives_k_of_the_unfiltered_ranking_that_pass(client: TestClient) -> None:
    full = predict(client, k=100)  # unfiltered first: its cached answer must not answer the filtered request
    passing = [i for i in full["items"] if "Shooter" in i["genres"]]
    body = predict(client, k=20, filter={"genres": {"any": ["Shooter"]}})
    assert len(body["items"]) == 20 and all("Shooter" in i["genres"] for i in body["items"])
    cf = [i for i in body["items"] if i["source"] == "item_cf"]
    assert [(i["game_id"], i["score"]) for i in cf] == [(i["game_id"], i["score"]) for i in passing[: len(cf)]]


def test_exclude_and_only(client: TestClient, home: Home) -> None:
    top = ids(predict(client, k=10))
    body = predict(client, k=10, filter={"exclude": top[:3]})
    assert len(body["items"]) == 10 and not set(top[:3]) & set(ids(body))
    assert ids(body)[:7] == top[3:]
    wanted = [*top[5:8], *sorted(played(home, USER))[:2], 999_999_999]  # two played and an unknown game
    body = predict(client, k=10, filter={"only": wanted})
    assert sorted(ids(body)) == sorted(top[5:8])  # fewer than k pass: exactly those, never a played game
    assert predict(client, k=10, filter={"only": []})["items"] == []


def test_released_after_and_before(client: TestClient, stored: dict[int, GameCard]) -> None:
    body = predict(client, k=15, filter={"released_after": "2018-01-01", "released_before": "2021-01-01"})
    assert len(body["items"]) == 15
    for g in ids(body):
        released = stored[g].released
        assert released is not None and dt.date(2018, 1, 1) < dt.date.fromisoformat(released[:10]) < dt.date(2021, 1, 1)


def test_popular_fill_is_the_most_popular_passing_games(
    client: TestClient, home: Home, state: ServingState, stored: dict[int, GameCard]
) -> None:
    r = client.post("/predict", json={"user_id": "nobody-filtered", "k": 8, "filter": {"genres": {"any": ["Puzzle"]}}})
    body = r.json()
    assert r.status_code == 200 and body["source"] == "popular"
    model = state.model
    expected = [int(model.item_ids[i]) for i in model.popular_order if "Puzzle" in state.users.cards[i].genres][:8]
    assert ids(body) == expected

    # a player whose neighbourhood runs out under the filter: item-CF picks, then the most popular passing games
    k = 40
    body = predict(client, k=k, filter={"genres": {"any": ["Shooter"]}})
    assert body["source"] == "item_cf" and len(body["items"]) == k
    sources = [i["source"] for i in body["items"]]
    n_cf = sources.count("item_cf")
    assert 0 < n_cf < k and sources == ["item_cf"] * n_cf + ["popular"] * (k - n_cf)
    seen = played(home, USER) | set(ids(body)[:n_cf])
    passing = [
        g for i in model.popular_order if (g := int(model.item_ids[i])) not in seen and "Shooter" in stored[g].genres
    ]
    assert ids(body)[n_cf:] == passing[: k - n_cf]


def test_unknown_attribute_is_a_400_naming_the_known_ones(client: TestClient) -> None:
    r = client.post("/predict", json={"user_id": USER, "filter": {"genre": {"any": ["RPG"]}}})
    assert r.status_code == 400
    extra = r.json()["extra"][0]
    assert extra["key"] == "filter" and "`genre`" in extra["message"]
    for known in ("genres", "tags", "platforms", "released_after", "released_before", "exclude", "only", "new_only"):
        assert known in extra["message"]
    r = client.post("/predict", json={"user_id": USER, "filter": {"genres": {"all": ["RPG"]}}})
    assert r.status_code == 400 and "known: any, none" in r.json()["extra"][0]["message"]
    r = client.post("/predict", json={"user_id": USER, "filter": {"released_after": "2020-13-45"}})
    assert r.status_code == 400 and r.json()["extra"][0]["key"] == "filter.released_after"


def test_similar_with_a_filter(client: TestClient, state: ServingState, stored: dict[int, GameCard]) -> None:
    game = int(state.model.item_ids[state.model.popular_order[0]])
    full = client.get(f"/games/{game}/similar", params={"k": 100}).json()["items"]
    f = {"genres": {"none": ["Action"]}}
    r = client.get(f"/games/{game}/similar", params={"k": 5, "filter": json.dumps(f)})
    assert r.status_code == 200, r.text
    expected = [i["game_id"] for i in full if "Action" not in i["genres"]][:5]
    assert expected and [i["game_id"] for i in r.json()["items"]] == expected
    r = client.get(f"/games/{game}/similar", params={"filter": json.dumps({"platform": {"any": ["PC"]}})})
    assert r.status_code == 400 and "known: genres, tags, platforms" in r.json()["extra"][0]["message"]
    assert client.get(f"/games/{game}/similar", params={"filter": "{"}).status_code == 400


def test_an_mf_version_filters_inside_its_fold_in_ranking(home: Home) -> None:
    """The fold-in path (an ALS version) honours the mask as the item-CF kernel does (`check_filtered_answers`)."""
    artifact, _ = training.fit_artifact(home.seeded.logs, home.seeded.features, {**ALS_PARAMS, "serving_neighbors": 50})
    served = ServingModel(artifact)
    assert served.fold is not None
    histories = [np.sort(served.index_of(sorted(played(home, u)))) for u in (2, 7, 11, 40)]
    check_filtered_answers(served, histories, 5)
    for h in histories:  # boosts: every fold-in score × its weight, then ranked (full.scores are float32)
        full = served.recommend_history(h, served.n_items)
        score_of = dict(zip(full.idx[: full.n_cf], full.scores[: full.n_cf], strict=True))
        weight = np.where(np.arange(served.n_items) % 3 == 0, 4.0, 1.0)
        rec = served.recommend_history(h, 10, None, weight)
        assert rec.n_cf == min(10, full.n_cf)
        assert rec.scores[: rec.n_cf] == pytest.approx([score_of[i] * weight[i] for i in rec.idx[: rec.n_cf]], rel=1e-5)
        best = sorted((s * weight[i] for i, s in score_of.items()), reverse=True)[:10]
        assert rec.scores[: rec.n_cf] == pytest.approx(best[: rec.n_cf], rel=1e-5)


def test_filtered_answers_are_not_cached(home: Home) -> None:
    state = load_state(home.registry(), cache_size=100)
    answer = answers.predict_json(state, PredictRequest(user_id=USER, k=5))
    assert len(state.answers) == 1
    f = GameFilter(genres=ValueFilter(none=["Shooter"]))
    filtered = answers.predict_json(state, PredictRequest(user_id=USER, k=5, filter=f))
    assert len(state.answers) == 1 and filtered != answer
    assert answers.predict_json(state, PredictRequest(user_id=USER, k=5, filter=f)) == filtered


def test_a_repeated_filter_reuses_its_mask(home: Home) -> None:
    state = load_state(home.registry())
    f = GameFilter(genres=ValueFilter(any=["RPG"]), exclude=[3498])
    mask = policy.allowed(state, f)
    assert mask is not None and mask.dtype == np.bool_ and mask.flags.writeable  # read-only: another numba kernel
    assert policy.allowed(state, GameFilter(genres=ValueFilter(any=["RPG"]), exclude=[3498])) is mask
    other = policy.allowed(state, GameFilter(genres=ValueFilter(any=["RPG"])))
    assert other is not mask and other is not None and int(other.sum()) >= int(mask.sum())
    assert policy.allowed(state, None) is None
    for i in range(policy.ALLOWED_CACHE + 5):  # bounded: the oldest masks go
        policy.allowed(state, GameFilter(exclude=[10_000_000 + i]))
    assert len(state.allowed_masks) == policy.ALLOWED_CACHE
    assert policy.allowed(state, f) is not mask  # evicted, computed again


def test_a_catalogue_files_tags_filter_its_answers(file_home: Home) -> None:
    """Own data (a catalogue file with genres and tags, no platforms): tags reach the cards and filter answers;
    a platform any-of admits nothing there."""
    state = load_state(file_home.registry())
    stored = {c.game_id: c for c in state.users.cards}
    assert any(c.tags for c in stored.values()) and not any(c.platforms for c in stored.values())
    user = state.user_ids(range(1))[0]
    body = json.loads(
        answers.predict_json(
            state, PredictRequest(user_id=user, k=10, filter=GameFilter(tags=ValueFilter(any=["co-op"])))
        )[0]
    )
    assert len(body["items"]) == 10 and all(
        "co-op" in {t.lower() for t in stored[i["game_id"]].tags} for i in body["items"]
    )
    f = GameFilter(platforms=ValueFilter(any=["PC"]))
    assert json.loads(answers.predict_json(state, PredictRequest(user_id=user, k=10, filter=f))[0])["items"] == []


def test_boosts_reorder_item_cf_and_the_fill(client: TestClient, state: ServingState) -> None:
    full = predict(client, k=100)
    cf = [i for i in full["items"] if i["source"] == "item_cf"]
    boost = [{"filter": {"genres": {"any": ["Adventure"]}}, "factor": 100.0}]
    body = predict(client, k=len(cf), boost=boost)
    assert all(i["source"] == "item_cf" for i in body["items"])
    boosted = sorted(
        ((i["score"] * (100.0 if "Adventure" in i["genres"] else 1.0), i["game_id"]) for i in cf),
        key=lambda t: -t[0],
    )
    assert ids(body) == [g for _, g in boosted] and "Adventure" in body["items"][0]["genres"]
    assert [i["score"] for i in body["items"]] == pytest.approx([s for s, _ in boosted], rel=1e-5)
    # a guest: the popularity fill is ordered by boosted popularity
    guest = {"user_id": "nobody-boosted", "k": 5, "boost": [{"filter": {"genres": {"any": ["Puzzle"]}}, "factor": 1e2}]}
    got = client.post("/predict", json=guest).json()
    model = state.model
    puzzle = [i for i in model.popular_order if "Puzzle" in state.users.cards[i].genres]
    by_boost = sorted(range(model.n_items), key=lambda i: -model.popular_score[i] * (100 if i in set(puzzle) else 1))
    assert ids(got) == [int(model.item_ids[i]) for i in by_boost[:5]]
    assert ids(got)[0] == int(model.item_ids[puzzle[0]])


def test_bad_boosts_are_a_400(client: TestClient) -> None:
    for boost, words in (
        ([{"filter": {}, "factor": 0}], "Expected `float` >= 0.001"),
        ([{"filter": {}, "factor": 2, "weight": 1}], "known: filter, factor"),
        ([{"filter": {"genre": {}}, "factor": 2}], "known: genres, tags"),
    ):
        r = client.post("/predict", json={"user_id": USER, "boost": boost})
        assert r.status_code == 400 and words in r.json()["extra"][0]["message"], r.text


def test_boosted_answers_are_not_cached(home: Home) -> None:
    state = load_state(home.registry(), cache_size=100)
    boost = [Boost(filter=GameFilter(genres=ValueFilter(any=["Adventure"])), factor=100.0)]
    answers.predict_json(state, PredictRequest(user_id=USER, k=5, boost=boost))
    assert not state.answers


def test_repeated_boosts_reuse_their_weights(home: Home) -> None:
    state = load_state(home.registry())
    boost = [Boost(filter=GameFilter(genres=ValueFilter(any=["RPG"])), factor=2.0)]
    w = policy.weights(state, boost)
    assert w is not None and policy.weights(state, list(boost)) is w and policy.weights(state, []) is None
    rpg = np.array(["RPG" in c.genres for c in state.users.cards])
    assert (w[rpg] == 2.0).all() and (w[~rpg] == 1.0).all()
    both = policy.weights(state, [*boost, Boost(filter=GameFilter(genres=ValueFilter(any=["Action"])), factor=0.5)])
    action = np.array(["Action" in c.genres for c in state.users.cards])
    assert both is not None and np.allclose(both, np.where(rpg, 2.0, 1.0) * np.where(action, 0.5, 1.0))
