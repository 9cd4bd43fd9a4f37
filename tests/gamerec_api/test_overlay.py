"""The realtime overlay: events newer than the served model join (or leave) a user's history, within bounds; and
/predict answers from it (in process: the two-server test is test_overlay_servers.py)."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import polars as pl
import pytest
from litestar.testing import TestClient
from prometheus_client import REGISTRY

from gamerec_api.answers import predict_json
from gamerec_api.app import create_app
from gamerec_api.overlay import RealtimeOverlay
from gamerec_api.schemas import PredictRequest, PredictResponse
from gamerec_api.state import ServingState, load_state
from gamerec_assets import backends
from gamerec_assets.recsys.feedback import Event, check_event, now_us
from gamerec_assets.recsys.model_artifact import ModelArtifact
from gamerec_assets.store.event_store import FRAME_SCHEMA, EventStore
from gamerec_assets.store.table_store import TableStore
from tests.gamerec_api.support import ADMIN_TOKEN, Home, wait_ready


def frame(*rows: tuple[int, str, int, str]) -> pl.DataFrame:
    """Events as `EventStore.read` returns them: (seq, user, game, type)."""
    n = len(rows)
    return pl.DataFrame(
        {
            "seq": [r[0] for r in rows],
            "event_id": [f"e{r[0]}" for r in rows],
            "user_id": [r[1] for r in rows],
            "game_id": [r[2] for r in rows],
            "type": [r[3] for r in rows],
            "value": [None] * n,
            "timestamp_us": [0] * n,
            "received_us": [0] * n,
            "request_id": [None] * n,
        },
        schema=FRAME_SCHEMA,
    )


def aligned(until: int = 0, **caps: int) -> RealtimeOverlay:
    overlay = RealtimeOverlay(**caps)
    overlay.align(until)
    return overlay


def evictions(what: str) -> float:
    return REGISTRY.get_sample_value("gamerec_overlay_evictions_total", {"what": what}) or 0.0


# -- the overlay ---------------------------------------------------------------------------------------------------


def test_positive_events_join_the_history_and_a_dislike_removes_the_game() -> None:
    overlay = aligned()
    overlay.apply(frame((1, "ann", 10, "play"), (2, "ann", 11, "purchase"), (3, "ann", 12, "like")))
    assert overlay.users[b"ann"].added == (10, 11, 12) and not overlay.users[b"ann"].excluded
    gen = overlay.users[b"ann"].gen
    overlay.apply(frame((4, "ann", 11, "dislike"), (5, "ann", 20, "dislike"), (6, "bob", 10, "impression")))
    ann = overlay.users[b"ann"]
    assert ann.added == (10, 12) and ann.excluded == {11, 20} and ann.gen != gen
    assert b"bob" not in overlay.users, "impressions and clicks change no history"
    overlay.apply(frame((7, "ann", 20, "play")))  # the latest event of a (user, game) wins
    assert overlay.users[b"ann"].added == (10, 12, 20) and overlay.users[b"ann"].excluded == {11}
    assert overlay.last_seq == 7


def test_only_events_newer_than_the_served_model_are_kept() -> None:
    overlay = aligned(until=5)
    overlay.apply(frame((4, "ann", 10, "play"), (5, "ann", 11, "play"), (6, "ann", 12, "play")))
    assert overlay.users[b"ann"].added == (12,)


def test_caps_evict_the_least_recently_active_user_and_the_oldest_game() -> None:
    users, games = evictions("user"), evictions("game")
    overlay = aligned(max_users=2, max_games=3)
    overlay.apply(frame((1, "a", 1, "play"), (2, "b", 1, "play"), (3, "a", 2, "play"), (4, "c", 1, "play")))
    assert set(overlay.users) == {b"a", b"c"}, "b was the least recently active"
    overlay.apply(frame((5, "a", 3, "play"), (6, "a", 4, "dislike")))
    assert overlay.users[b"a"].added == (2, 3) and overlay.users[b"a"].excluded == {4}
    assert overlay.entries() <= 2 * 3
    assert (evictions("user") - users, evictions("game") - games) == (1, 1)


def test_a_model_swap_prunes_what_the_new_model_covers_and_a_rollback_reads_again(tmp_path: Path) -> None:
    store = EventStore(TableStore(f"sqlite:///{tmp_path / 'gamerec.db'}"))
    received = now_us()
    store.append(
        [
            check_event(user_id=u, game_id=g, type=t, value=None, timestamp=None, received_us=received)
            for u, g, t in [("ann", 10, "play"), ("bob", 10, "play"), ("ann", 11, "play"), ("ann", 12, "dislike")]
        ]
    )
    overlay = RealtimeOverlay(batch=2)
    assert overlay.poll(store) == 0, "nothing is read before the first model is served"
    overlay.align(0)
    assert overlay.poll(store) == 2 and overlay.poll(store) == 2 and overlay.poll(store) == 0  # caught up, 2 a read
    assert overlay.users[b"ann"].added == (10, 11) and overlay.users[b"ann"].excluded == {12}
    overlay.align(2)  # a newer model holds seq 1 and 2
    assert set(overlay.users) == {b"ann"} and overlay.users[b"ann"].added == (11,)
    overlay.align(1)  # rolled back to a model with only seq 1: what it lacks is read again
    assert overlay.last_seq == 1 and overlay.entries() == 0
    ann = overlay.users[b"ann"]
    assert set(overlay.users) == {b"ann"} and (ann.added, ann.excluded) == ((), {12}), "the dislike is held meanwhile"
    while overlay.poll(store):
        pass
    assert set(overlay.users) == {b"ann", b"bob"} and overlay.users[b"ann"].added == (11,)
    assert overlay.users[b"ann"].excluded == {12}


def test_a_read_that_started_before_a_rollback_is_dropped() -> None:
    overlay = aligned(until=5)
    epoch = overlay._epoch
    overlay.align(2)
    overlay.apply(frame((6, "ann", 10, "play")), epoch)
    assert not overlay.users and overlay.last_seq == 2


# -- /predict with the overlay ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def state(home: Home) -> ServingState:
    return load_state(home.registry(), cache_size=1000)


def answer(state: ServingState, overlay: RealtimeOverlay, user: str, k: int = 10) -> PredictResponse:
    body, _ = predict_json(state, msgspec.convert({"user_id": user, "k": k}, PredictRequest), overlay.users)
    return msgspec.json.decode(body, type=PredictResponse)


def ids(res: PredictResponse) -> list[int]:
    return [i.game_id for i in res.items]


def test_a_new_user_with_three_plays_gets_item_cf_and_a_dislike_hides_a_game(state: ServingState, home: Home) -> None:
    overlay = aligned()
    assert answer(state, overlay, "newcomer").source == "popular"
    logs = home.seeded.logs
    plays = logs.filter(logs["user_id"] == logs["user_id"][0])["game_id"].to_list()[:3]
    overlay.apply(frame(*[(n, "newcomer", g, "play") for n, g in enumerate(plays, start=1)]))
    res = answer(state, overlay, "newcomer")  # the popular answer above is cached: the overlay key differs
    assert res.source == "item_cf" and not set(plays) & set(ids(res))
    top = ids(res)[0]
    overlay.apply(frame((10, "newcomer", top, "dislike")))
    res = answer(state, overlay, "newcomer")
    assert top not in ids(res) and len(ids(res)) == 10 and not set(plays) & set(ids(res))
    assert answer(state, overlay, "newcomer") == res, "answered again from the cache"
    overlay.apply(frame((11, "newcomer", 999_999_999, "play")))  # a game the model does not know: kept, not scored
    assert overlay.users[b"newcomer"].added[-1] == 999_999_999 and ids(answer(state, overlay, "newcomer")) == ids(res)


def test_a_known_users_answers_change_and_a_disliked_trained_game_stops_counting(
    state: ServingState, home: Home
) -> None:
    overlay = aligned()
    user = state.user_ids(range(1))[0]
    before = answer(state, overlay, user, k=20)
    new = ids(before)[:2]
    overlay.apply(frame((1, user, new[0], "play"), (2, user, new[1], "like")))
    after = answer(state, overlay, user, k=20)
    assert after.source == "item_cf" and not set(new) & set(ids(after)) and ids(after) != ids(before)
    trained = [state.cards[i].game_id for i in state.history(user.encode())]
    overlay.apply(frame(*[(3 + n, user, g, "dislike") for n, g in enumerate(trained)]))
    res = answer(state, overlay, user, k=20)
    assert not set(trained) & set(ids(res)), "a disliked game of the trained history is never shown"
    assert {j for i in res.items for j in i.because} <= set(new), "and no longer explains a recommendation"


def test_an_unreachable_database_is_retried_while_the_server_keeps_answering(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "GAMEREC_HOME": str(home.path),
        "GAMEREC_MYSQL_URL": "mysql+pymysql://root@127.0.0.1:1/nothing",
        "GAMEREC_EVENTS_POLL": "0.02",
    }
    app = create_app(reload_interval=0, env=env)
    errors = REGISTRY.get_sample_value("gamerec_overlay_tail_errors_total") or 0.0
    with TestClient(app) as c:
        wait_ready(c)
        deadline = time.monotonic() + 10
        while (REGISTRY.get_sample_value("gamerec_overlay_tail_errors_total") or 0.0) < errors + 2:
            assert time.monotonic() < deadline, "the tail did not retry"
            time.sleep(0.02)
        r = c.post("/predict", json={"user_id": 7})
        assert r.status_code == 200 and r.json()["source"] == "item_cf"


def test_the_total_cap_evicts_whole_least_recent_users() -> None:
    overlay = aligned(max_entries=4, max_games=3)
    overlay.apply(frame((1, "a", 1, "play"), (2, "a", 2, "play"), (3, "b", 1, "play"), (4, "b", 2, "play")))
    overlay.apply(frame((5, "b", 3, "play")))
    assert set(overlay.users) == {b"b"} and overlay.entries() == 3
    overlay.align(4)
    assert overlay.users[b"b"].added == (3,) and overlay.entries() == 1


def test_the_history_endpoint_lists_realtime_games_and_leaves_disliked_ones_out(home: Home) -> None:
    app = create_app(home.settings, reload_interval=0, env={})
    with TestClient(app) as c:
        wait_ready(c)
        overlay: RealtimeOverlay = app.state.holder.overlay
        user = "7"
        trained = [g["game_id"] for g in c.get(f"/users/{user}/history").json()["items"]]
        fresh = ids(msgspec.convert(c.post("/predict", json={"user_id": user}).json(), PredictResponse))
        overlay.apply(frame((10**9, user, fresh[0], "play"), (10**9 + 1, user, trained[0], "dislike")))
        body = c.get(f"/users/{user}/history").json()
        assert [g["game_id"] for g in body["items"]] == [*trained[1:], fresh[0]]
        assert body["realtime_game_ids"] == [fresh[0]]
        assert c.get("/users/nobody-yet/history").status_code == 404
        overlay.apply(frame((10**9 + 2, "nobody-yet", fresh[1], "like")))
        assert c.get("/users/nobody-yet/history").json()["realtime_game_ids"] == [fresh[1]]


def test_serving_a_model_trained_on_the_events_empties_the_overlay(
    fresh_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = EventStore(backends.table_store(fresh_home.settings))
    received = now_us()
    games = fresh_home.seeded.logs["game_id"].to_list()[:3]
    result = store.append(
        [
            check_event(user_id="newcomer", game_id=g, type="play", value=None, timestamp=None, received_us=received)
            for g in games
        ]
    )
    app = create_app(fresh_home.settings, reload_interval=0, admin_token=ADMIN_TOKEN, env={}, events_poll=0.02)
    with TestClient(app) as c:
        wait_ready(c)
        overlay: RealtimeOverlay = app.state.holder.overlay
        deadline = time.monotonic() + 10
        while b"newcomer" not in overlay.users:  # the first read takes every event newer than the served model
            assert time.monotonic() < deadline, "the overlay did not read the stored events"
            time.sleep(0.02)
        assert c.post("/predict", json={"user_id": "newcomer"}).json()["source"] == "item_cf"
        registry = fresh_home.registry()
        a = registry.load(fresh_home.seeded.version)
        manifest = {"parameters": {}, "data": {"events": {"until_seq": result.last_seq, "count": 3, "until": None}}}
        newer = registry.publish(ModelArtifact(a.item_ids, a.similarity, a.popularity, manifest, a.serving))
        registry.promote(newer, reason="trained on the events")
        r = c.post("/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert r.status_code == 200 and r.json()["model_version"] == newer
        assert not overlay.users and overlay.floor == result.last_seq, "the new model covers every event"


def test_a_standing_dislike_outlives_the_model_trained_on_it(tmp_path: Path) -> None:
    """A retrain drops a pair whose latest word is a dislike, so the new model may recommend the game again:
    the overlay keeps that dislike up to the model's seq, until a later play of the game."""
    store = EventStore(TableStore(f"sqlite:///{tmp_path / 'gamerec.db'}"))
    received = now_us()
    store.append(
        [
            check_event(user_id=u, game_id=g, type=t, value=None, timestamp=None, received_us=received)
            for u, g, t in [("ann", 10, "play"), ("ann", 10, "dislike"), ("ann", 11, "dislike"), ("ann", 11, "like")]
        ]
    )
    overlay = RealtimeOverlay()
    overlay.align(4)  # a model trained on all four events
    assert overlay.needs_standing()
    overlay.load_standing(store)
    assert not overlay.needs_standing()
    assert overlay.users[b"ann"].excluded == {10} and overlay.users[b"ann"].added == ()
    store.append(
        [check_event(user_id="ann", game_id=10, type="play", value=None, timestamp=None, received_us=received)]
    )
    overlay.poll(store)
    assert overlay.users[b"ann"].excluded == frozenset() and overlay.users[b"ann"].added == (10,)
    overlay.align(5)  # the next model was trained on that play too: nothing stands any more
    overlay.load_standing(store)
    assert b"ann" not in overlay.users


def test_dislikes_posted_under_another_source_do_not_stand(tmp_path: Path) -> None:
    """A model that left the events up to seq 2 out (posted under another source: its manifest's
    `data.events.other_source_until_seq`) does not hold their dislikes against its own players."""
    store = EventStore(TableStore(f"sqlite:///{tmp_path / 'gamerec.db'}"))
    received = now_us()
    store.append(
        [
            check_event(user_id=u, game_id=g, type="dislike", value=None, timestamp=None, received_us=received)
            for u, g in [("7", 10), ("7", 11), ("ann", 12)]  # the demo's player 7, then a player of the new source
        ]
    )
    overlay = RealtimeOverlay()
    overlay.align(3)
    overlay.load_standing(store)
    assert overlay.users[b"7"].excluded == {10, 11}
    overlay.align(3, other_source_until=2)  # the same seq, another boundary: read again
    assert overlay.needs_standing()
    overlay.load_standing(store)
    assert b"7" not in overlay.users and overlay.users[b"ann"].excluded == {12}


# -- dislikes outlive eviction -------------------------------------------------------------------------------------


def test_a_flood_of_other_users_plays_never_evicts_a_dislike() -> None:
    """Small caps, then 205 batches of plays by 50 other users each: user 7 is evicted, not its dislike."""
    overlay = aligned(max_users=20, max_games=3, max_entries=40)
    overlay.apply(frame((1, "7", 100, "play"), (2, "7", 200, "dislike")))
    seq = 2
    for b in range(205):
        rows = [(seq + i + 1, f"flood-{b}-{i}", 300 + i, "play") for i in range(50)]
        overlay.apply(frame(*rows))
        seq += 50
    assert len(overlay._games) <= 20 and overlay.entries() <= 40
    assert overlay.users[b"7"].excluded == {200} and overlay.users[b"7"].added == ()
    assert overlay.dislikes() == 1
    overlay.apply(frame(*[(seq + i, "7", 400 + i, "play") for i in range(1, 6)]))  # past max_games: 3 kept
    assert overlay.users[b"7"].added == (403, 404, 405) and overlay.users[b"7"].excluded == {200}
    overlay.apply(frame((seq + 10, "7", 200, "like")))  # a later like of the game lifts the dislike
    assert overlay.users[b"7"].excluded == frozenset() and overlay.dislikes() == 0


def test_a_dislike_past_max_games_and_a_dislike_a_new_model_covers_stay() -> None:
    overlay = aligned(max_games=2)
    overlay.apply(frame((1, "ann", 10, "dislike"), (2, "ann", 11, "play"), (3, "ann", 12, "play")))
    assert overlay.users[b"ann"].added == (11, 12) and overlay.users[b"ann"].excluded == {10}
    overlay.apply(frame((4, "bob", 20, "dislike")))
    overlay.align(4)  # a model trained on all of it (its standing dislikes are not read yet)
    assert overlay.users[b"ann"].added == () and overlay.users[b"ann"].excluded == {10}
    assert overlay.users[b"bob"].excluded == {20} and overlay.entries() == 0


def test_only_a_flood_of_dislikes_past_max_standing_evicts_dislikes_least_recent_users_first() -> None:
    before = evictions("dislike")
    overlay = aligned(max_users=2, max_games=2, max_entries=4, max_standing=3)
    overlay.apply(frame((1, "7", 1, "dislike"), (2, "8", 1, "dislike"), (3, "8", 2, "dislike")))
    overlay.apply(frame(*[(10 + i, f"p{i}", 1, "play") for i in range(100)]))  # plays: no dislike goes
    assert overlay.dislikes() == 3 and overlay.users[b"7"].excluded == {1}
    overlay.apply(frame((200, "9", 5, "dislike"), (201, "p98", 1, "play"), (202, "p99", 1, "play")))
    assert b"7" not in overlay.users and overlay.users[b"8"].excluded == {1, 2} and overlay.dislikes() == 3
    assert evictions("dislike") - before == 1


def test_a_flood_does_not_bring_a_disliked_game_back_to_the_top(state: ServingState, tmp_path: Path) -> None:
    """The issue's replay: user 7 dislikes its #1, then 205 requests of other users' plays pass through the
    table; the game stays out of user 7's answers."""
    store = EventStore(TableStore(f"sqlite:///{tmp_path / 'gamerec.db'}"))
    overlay = RealtimeOverlay(max_users=100, max_entries=1000)
    overlay.align(0)
    top = ids(answer(state, overlay, "7"))[0]
    received = now_us()

    def event(user: str, game: int, kind: str) -> Event:
        return check_event(user_id=user, game_id=game, type=kind, value=None, timestamp=None, received_us=received)

    store.append([event("7", top, "dislike")])
    games = state.cards
    for r in range(205):
        store.append([event(f"flood-{r}-{i}", games[i % len(games)].game_id, "play") for i in range(20)])
    while overlay.poll(store):
        pass
    assert len(overlay._games) <= 100 and b"7" not in overlay._games, "user 7 was evicted by the flood"
    assert top not in ids(answer(state, overlay, "7", k=50))
