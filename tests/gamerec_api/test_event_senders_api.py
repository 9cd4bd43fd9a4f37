"""POST /events stores each event's sender in `interaction_events.key_name` (issue #22: the retraining sensor counts
per write key): the write key's name, `answer:<user_id>` for an answer token, `open` without a credential, also for
a request carrying an Idempotency-Key."""

from __future__ import annotations

from gamerec_assets import backends
from gamerec_assets.store.event_store import EventStore
from tests.gamerec_api.support import Home
from tests.gamerec_api.test_event_auth import _play, make_client  # noqa: F401  (make_client: a fixture)
from tests.gamerec_api.test_events import write_key


def _senders(home: Home) -> dict[str, str | None]:
    stored = EventStore(backends.table_store(home.settings)).read()
    return dict(zip(stored["event_id"].to_list(), stored["key_name"].to_list(), strict=True))


def test_each_stored_event_names_its_sender(make_client, fresh_home: Home) -> None:  # noqa: F811
    c = make_client()
    a, b = write_key(fresh_home.settings, "site-a"), write_key(fresh_home.settings, "site-b")
    r = c.post("/events", json={"events": [_play(fresh_home, "a1"), _play(fresh_home, "a2", "u2")]},
               headers={"authorization": f"Bearer {a}"})  # fmt: skip
    assert r.status_code == 202 and r.json()["accepted"] == 2, r.text
    r = c.post("/events", json={"events": [_play(fresh_home, "b1")]},
               headers={"authorization": f"Bearer {b}", "idempotency-key": "req-1"})  # fmt: skip
    assert r.status_code == 202, r.text
    # a retry of a stored event under another key keeps the first sender
    r = c.post("/events", json={"events": [_play(fresh_home, "a1")]}, headers={"authorization": f"Bearer {b}"})
    assert r.status_code == 202 and r.json()["duplicate"] == 1

    answer = c.post("/predict", json={"user_id": "7", "k": 5}).json()
    game = answer["items"][0]["game_id"]
    r = c.post("/events", json={"events": [_play(fresh_home, "t1", "7", game, "click")]},
               headers={"authorization": f"Bearer {answer['event_token']}"})  # fmt: skip
    assert r.status_code == 202 and r.json()["accepted"] == 1, r.text

    demo = make_client({"GAMEREC_EVENTS_OPEN": "true"})
    assert demo.post("/events", json={"events": [_play(fresh_home, "o1")]}).status_code == 202

    assert _senders(fresh_home) == {"a1": "site-a", "a2": "site-a", "b1": "site-b", "t1": "answer:7", "o1": "open"}
