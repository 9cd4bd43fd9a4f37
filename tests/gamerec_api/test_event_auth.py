"""Authenticated ingestion (issue 22, item 1): write keys (hashed, revocable, named in the metrics), answer-scoped
event tokens, per-key and per-user rate limits, and the open setting for local demos."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient

from gamerec_api.answer_tokens import _DOMAIN, AnswerTokens, BadToken, _unb64
from gamerec_api.app import create_app
from gamerec_api.schemas import PredictResponse
from gamerec_assets import backends, cli
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store.event_store import EventStore
from gamerec_assets.store.write_keys import WriteKeys, digest
from tests.gamerec_api.support import Home, free_port, wait_ready
from tests.gamerec_api.test_events import _metric, write_key


@pytest.fixture
def make_client(fresh_home: Home) -> Iterator:
    """A TestClient factory on the private home, with settings from `env`."""
    opened: list[TestClient] = []

    def make(env: dict[str, str] | None = None) -> TestClient:
        c = TestClient(create_app(fresh_home.settings, reload_interval=0, env=env or {}, events_poll=0))
        c.__enter__()
        opened.append(c)
        wait_ready(c)
        return c

    yield make
    for c in opened:
        c.__exit__(None, None, None)


def _stored(home: Home) -> list[str]:
    return EventStore(backends.table_store(home.settings)).read()["event_id"].to_list()


def _play(home: Home, event_id: str, user: str = "u1", game: int | None = None, type: str = "play") -> dict:
    game = int(home.seeded.features["game_id"][0]) if game is None else game
    return {"event_id": event_id, "user_id": user, "game_id": game, "type": type}


def test_no_credential_is_a_401_that_says_how_to_get_one(make_client, fresh_home: Home) -> None:
    c = make_client()
    r = c.post("/events", json={"events": [_play(fresh_home, "a")]})
    assert r.status_code == 401, r.text
    assert "gamerec keys create NAME" in r.json()["detail"] and "event_token" in r.json()["detail"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    # checked before the body is read: a broken body without a credential is a 401 too, not a 400
    assert c.post("/events", content=b"{", headers={"content-type": "application/json"}).status_code == 401
    for header in ("Bearer grk_not-a-key", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer a.b.c.d.e"):
        r = c.post("/events", json={"events": [_play(fresh_home, "a")]}, headers={"authorization": header})
        assert r.status_code == 401, (header, r.text)
        assert "gamerec keys create NAME" in r.json()["detail"]
    assert _stored(fresh_home) == []


def test_keys_are_stored_hashed_and_a_revoked_key_is_a_401(
    make_client, fresh_home: Home, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GAMEREC_HOME", str(fresh_home.path))
    monkeypatch.delenv("GAMEREC_MYSQL_URL", raising=False)
    assert cli.main(["keys", "create", "site-a"]) == 0
    key = capsys.readouterr().out.strip()
    assert re.fullmatch(r"grk_[A-Za-z0-9_-]{43}", key)
    assert cli.main(["keys", "create", "site-a"]) == cli.EXIT_ERROR  # names are unique
    assert "exists" in capsys.readouterr().err
    assert key.encode() not in (fresh_home.path / "gamerec.db").read_bytes(), "only the key's hash is stored"
    tables = backends.table_store(fresh_home.settings)
    assert WriteKeys(tables).active() == {digest(key): "site-a"}

    c = make_client({"GAMEREC_WRITE_KEYS_TTL": "0.3"})
    auth = {"authorization": f"Bearer {key}"}
    assert c.post("/events", json={"events": [_play(fresh_home, "before")]}, headers=auth).status_code == 202
    assert cli.main(["keys", "revoke", "site-a"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert cli.main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "site-a" in listing and "revoked" in listing and key not in listing
    time.sleep(0.4)  # GAMEREC_WRITE_KEYS_TTL: every worker re-reads the keys at least this often
    r = c.post("/events", json={"events": [_play(fresh_home, "after")]}, headers=auth)
    assert r.status_code == 401 and "unknown or revoked write key" in r.json()["detail"], r.text
    assert cli.main(["keys", "revoke", "nobody"]) == cli.EXIT_ERROR
    assert _stored(fresh_home) == ["before"]
    tables.engine.dispose()


def test_a_new_key_works_at_once_and_each_key_is_counted(make_client, fresh_home: Home) -> None:
    c = make_client()  # default TTL (5 s): a key the worker has not seen makes it re-read the table
    a, b = write_key(fresh_home.settings, "key-a"), write_key(fresh_home.settings, "key-b")
    before = {k: _metric(c, "gamerec_events_by_key_total", key=k, result="accepted") for k in ("key-a", "key-b")}
    r = c.post(
        "/events",
        json={"events": [_play(fresh_home, f"a{i}") for i in range(3)]},
        headers={"authorization": f"Bearer {a}"},
    )
    assert r.status_code == 202 and r.json()["accepted"] == 3
    r = c.post(
        "/events",
        json={"events": [_play(fresh_home, f"b{i}") for i in range(2)]},
        headers={"authorization": f"Bearer {b}"},
    )
    assert r.status_code == 202
    assert _metric(c, "gamerec_events_by_key_total", key="key-a", result="accepted") == before["key-a"] + 3
    assert _metric(c, "gamerec_events_by_key_total", key="key-b", result="accepted") == before["key-b"] + 2
    assert _metric(c, "gamerec_events_total", type="play", result="accepted") >= 5  # the old series still count


def test_rate_limits_are_429_with_retry_after_and_store_nothing(make_client, fresh_home: Home) -> None:
    c = make_client({"GAMEREC_EVENTS_USER_RATE": "0.5", "GAMEREC_EVENTS_USER_BURST": "5",
                     "GAMEREC_EVENTS_KEY_RATE": "1", "GAMEREC_EVENTS_KEY_BURST": "1000"})  # fmt: skip
    c.headers["authorization"] = f"Bearer {write_key(fresh_home.settings)}"
    assert c.post("/events", json={"events": [_play(fresh_home, f"u{i}") for i in range(5)]}).status_code == 202
    r = c.post("/events", json={"events": [_play(fresh_home, "u-over")]})
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) == 2  # one event at 0.5/s
    assert "nothing of this request was stored" in r.json()["detail"]
    r = c.post("/events", json={"events": [_play(fresh_home, f"too-many-{i}", user="u9") for i in range(6)]})
    assert r.status_code == 429 and "at most 5 events of one user" in r.json()["detail"]
    # the key's bucket: 995 more events (of other users) empty it; the next request waits for its refill
    other = [_play(fresh_home, f"k{i}", user=f"user-{i}") for i in range(995)]
    assert c.post("/events", json={"events": other}).status_code == 202
    r = c.post("/events", json={"events": [_play(fresh_home, "k-over", user="fresh-user")]})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert "'test-site' may post 1 events/s" in r.json()["detail"]
    stored = _stored(fresh_home)
    assert len(stored) == 1000 and "u-over" not in stored and "k-over" not in stored


def test_an_answer_token_allows_its_answers_events_only(make_client, fresh_home: Home) -> None:
    c = make_client()
    answer = c.post("/predict", json={"user_id": "7", "k": 5}).json()
    strict = msgspec.json.decode(msgspec.json.encode(answer), type=PredictResponse, strict=True)
    assert strict.request_id and strict.event_token
    again = c.post("/predict", json={"user_id": "7", "k": 5}).json()  # the cached answer gets its own id
    assert again["request_id"] != answer["request_id"] and again["items"] == answer["items"]
    games = [i["game_id"] for i in answer["items"]]
    other = next(int(g) for g in fresh_home.seeded.features["game_id"] if int(g) not in games)
    token = {"authorization": f"Bearer {answer['event_token']}"}

    ok = [_play(fresh_home, "t-click", "7", games[0], "click"), _play(fresh_home, "t-play", "7", games[1])]
    r = c.post("/events", json={"events": ok}, headers=token)
    assert r.status_code == 202 and r.json()["accepted"] == 2, r.text
    stored = EventStore(backends.table_store(fresh_home.settings)).read()
    assert set(stored["request_id"].to_list()) == {answer["request_id"]}, "the events name the answer"

    refused = [
        ([_play(fresh_home, "x1", "7", other, "click")], f"game {other} is not in answer"),
        ([_play(fresh_home, "x2", "8", games[0], "click")], "is for user '7', not '8'"),
        ([_play(fresh_home, "x3", "7", games[0], "like")], "not 'like'"),
        ([{**_play(fresh_home, "x4", "7", games[0], "click"), "request_id": "someone-else"}], "not the token's"),
        ([_play(fresh_home, "x5", "7", games[0], "click"), _play(fresh_home, "x6", "7", other, "play")], "events[1]"),
    ]
    for events, why in refused:
        r = c.post("/events", json={"events": events}, headers=token)
        assert r.status_code == 403 and why in r.json()["detail"], (why, r.text)
    forged = answer["event_token"].replace(f".{games[0]}_", f".{other}_")
    r = c.post(
        "/events",
        json={"events": [_play(fresh_home, "f", "7", other, "click")]},
        headers={"authorization": f"Bearer {forged}"},
    )
    assert r.status_code == 401 and "bad signature" in r.json()["detail"]
    assert sorted(_stored(fresh_home)) == ["t-click", "t-play"]


def test_similar_and_batch_answers_carry_tokens(make_client, fresh_home: Home) -> None:
    c = make_client()
    game = int(fresh_home.seeded.features["game_id"][0])
    similar = c.get(f"/games/{game}/similar", params={"k": 3, "user_id": "guest-1"}).json()
    near = similar["items"][0]["game_id"]
    events = [_play(fresh_home, "s1", "guest-1", game, "click"), _play(fresh_home, "s2", "guest-1", near, "impression")]
    r = c.post("/events", json={"events": events}, headers={"authorization": f"Bearer {similar['event_token']}"})
    assert r.status_code == 202 and r.json()["accepted"] == 2, r.text
    anonymous = c.get(f"/games/{game}/similar", params={"k": 3}).json()
    r = c.post("/events", json={"events": [_play(fresh_home, "s3", "guest-1", game, "click")]},
               headers={"authorization": f"Bearer {anonymous['event_token']}"})  # fmt: skip
    assert r.status_code == 403 and "without a user_id" in r.json()["detail"]
    batch = c.get("/users/7/recommendations").json()
    first = batch["items"][0]["game_id"]
    r = c.post("/events", json={"events": [_play(fresh_home, "b1", "7", first)]},
               headers={"authorization": f"Bearer {batch['event_token']}"})  # fmt: skip
    assert r.status_code == 202, r.text


def test_tokens_expire_and_every_worker_of_a_home_shares_the_secret(tmp_path: Path) -> None:
    one, two = AnswerTokens(None, tmp_path, 60), AnswerTokens(None, tmp_path, 60)
    rid, token = one.issue(b'"7"', b"3498_3328")
    claims = two.check(token.decode())  # another worker: the same GAMEREC_HOME/event_secret
    assert (claims.request_id, claims.user_id, claims.games) == (rid.decode(), "7", frozenset({3498, 3328}))
    assert (tmp_path / "event_secret").stat().st_mode & 0o777 == 0o600
    signed = token.decode().rsplit(".", 1)
    assert _unb64(signed[1]) == hmac.digest(one.secret(), _DOMAIN + signed[0].encode(), hashlib.sha256), "HMAC"
    with pytest.raises(BadToken, match="expired"):
        two.check(token.decode(), now=claims.expires + 1)
    with pytest.raises(BadToken, match="bad signature"):
        AnswerTokens("another-secret-of-at-least-32-chars!!", tmp_path, 60).check(token.decode())


def test_open_ingestion_is_an_explicit_setting(make_client, fresh_home: Home) -> None:
    c = make_client({"GAMEREC_EVENTS_OPEN": "true"})
    before = _metric(c, "gamerec_events_by_key_total", key="open", result="accepted")
    assert c.post("/events", json={"events": [_play(fresh_home, "o1")]}).status_code == 202
    assert _metric(c, "gamerec_events_by_key_total", key="open", result="accepted") == before + 1


def test_write_keys_that_cannot_be_read_are_a_503_not_a_401(tmp_path: Path) -> None:
    settings = StorageSettings.from_env(
        {
            "GAMEREC_HOME": str(tmp_path),
            "GAMEREC_MYSQL_URL": f"mysql+pymysql://root@127.0.0.1:{free_port()}/nowhere",
            "GAMEREC_DB_CONNECT_TIMEOUT": "2",
        }
    )
    with TestClient(create_app(settings, reload_interval=0, env={})) as c:
        r = c.post("/events", json={"events": []}, headers={"authorization": "Bearer grk_some-key"})
    assert r.status_code == 503 and "write keys cannot be read" in r.json()["detail"], r.text
    assert "127.0.0.1" not in r.text, "hosts stay in the server log"
