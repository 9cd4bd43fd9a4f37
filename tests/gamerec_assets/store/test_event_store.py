import threading

import pytest

from gamerec_assets.recsys.feedback import Event, check_event, now_us
from gamerec_assets.store.event_store import EVENTS_TABLE, READ_SCHEMA, EventStore
from gamerec_assets.store.table_store import TableStore, TableStoreError


@pytest.fixture(params=["sqlite", "mysql"])
def events(request: pytest.FixtureRequest, tmp_path) -> EventStore:
    if request.param == "sqlite":
        return EventStore(TableStore(f"sqlite:///{tmp_path / 'db' / 'gamerec.db'}"))
    return EventStore(TableStore(request.getfixturevalue("mysql_db")["url"]))


def event(eid: str | None, user: str = "alice", game: int = 3, type: str = "play", value: float | None = 2.0) -> Event:
    return check_event(
        event_id=eid, user_id=user, game_id=game, type=type, value=value, timestamp=None, received_us=now_us()
    )


def test_a_missing_table_reads_as_empty(events: EventStore) -> None:
    assert events.last_seq() == 0
    assert events.count_after(0) == 0
    empty = events.read()
    assert empty.height == 0 and empty.schema == READ_SCHEMA


def test_append_orders_by_seq_and_reads_back_exactly(events: EventStore) -> None:
    sent = [event("e1"), event("e2", "Bob", 5, "like", None), event("e3", "ゲーマー", 7, "dislike", None)]
    result = events.append(sent)
    assert result.accepted == [True, True, True] and result.last_seq == 3
    back = events.read()
    assert back.schema == READ_SCHEMA
    assert back["seq"].to_list() == [1, 2, 3]
    assert back["event_id"].to_list() == ["e1", "e2", "e3"]
    assert back["user_id"].to_list() == ["alice", "Bob", "ゲーマー"]
    assert back["value"].to_list() == [2.0, None, None]
    assert back["timestamp_us"].to_list() == [e.timestamp_us for e in sent]
    assert events.read(after_seq=1, until_seq=2)["event_id"].to_list() == ["e2"]
    assert events.read(after_seq=0, limit=1)["event_id"].to_list() == ["e1"]
    assert events.count_after(1) == 2


def test_a_replayed_batch_changes_nothing(events: EventStore) -> None:
    batch = [event(f"e{i}", game=i + 1) for i in range(5)]
    assert events.append(batch).accepted == [True] * 5
    again = events.append([*batch[:2], event("new"), batch[4]])
    assert again.accepted == [False, False, True, False]
    assert events.read()["event_id"].to_list() == ["e0", "e1", "e2", "e3", "e4", "new"]
    # an id repeated within one request counts once
    assert events.append([event("twice"), event("twice")]).accepted == [True, False]
    assert events.count_after(0) == 7


def test_ids_differing_in_case_are_two_events(events: EventStore) -> None:
    assert events.append([event("Ab"), event("ab")]).accepted == [True, True]


def test_concurrent_appends_of_one_id_store_it_once(events: EventStore) -> None:
    results: list[list[bool]] = []
    batch = [event(f"c{i}", game=i + 1) for i in range(200)]

    def post() -> None:
        results.append(EventStore(events.tables).append(batch).accepted)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert events.count_after(0) == 200
    # every event is accepted by exactly one of the concurrent posts
    assert [sum(r[i] for r in results) for i in range(200)] == [1] * 200


def test_an_unreachable_database_names_the_cause() -> None:
    store = EventStore(TableStore("mysql+pymysql://root@127.0.0.1:1/nothing", connect_timeout=2))
    with pytest.raises(TableStoreError, match=f"{EVENTS_TABLE}.*cannot connect"):
        store.append([event("x")])


def test_standing_dislikes_are_the_pairs_whose_latest_word_is_a_dislike(events: EventStore) -> None:
    events.append(
        [
            event("1", "a", 1, "play"),
            event("2", "a", 1, "dislike"),  # standing: the dislike is the latest
            event("3", "a", 2, "dislike"),
            event("4", "a", 2, "like"),  # not standing: liked again after
            event("5", "b", 1, "dislike"),  # standing for b
            event("6", "b", 3, "click"),  # neither
            event("7", "c", 4, "dislike"),  # after the seq asked for
        ]
    )
    standing = events.standing_dislikes(until_seq=6)
    assert standing.rows() == [("a", 1, 2), ("b", 1, 5)]
    assert events.standing_dislikes(until_seq=7)["user_id"].to_list() == ["a", "b", "c"]
    assert events.standing_dislikes(until_seq=0).height == 0


def test_standing_dislikes_follow_event_time_like_retraining(events: EventStore) -> None:
    """A play stored after a dislike but timestamped before it does not lift the dislike (retraining orders a
    pair's events by their timestamps too)."""
    received = now_us()

    def at(eid: str, type: str, timestamp: str) -> Event:
        return check_event(
            event_id=eid, user_id="a", game_id=1, type=type, value=None, timestamp=timestamp, received_us=received
        )

    events.append([at("d", "dislike", "2026-01-02T00:00:00Z"), at("p", "play", "2026-01-01T00:00:00Z")])
    assert events.standing_dislikes(until_seq=2).rows() == [("a", 1, 1)]


def test_the_event_store_uses_only_public_members_of_the_table_store() -> None:
    """Issue 21: what EventStore needs (errors, cursors, table creation, dialect details) is TableStore's public
    API; a `self.tables._x` or `tables._x` in event_store.py would tie it to TableStore's insides again."""
    import ast
    import inspect

    from gamerec_assets.store import event_store

    def on_tables(node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id == "tables"
        return isinstance(node, ast.Attribute) and node.attr == "tables"

    tree = ast.parse(inspect.getsource(event_store))
    private = sorted(
        {
            f"{ast.unparse(n.value)}.{n.attr} (line {n.lineno})"
            for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and n.attr.startswith("_") and on_tables(n.value)
        }
    )
    assert private == []
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and on_tables(n.value)}
    assert {"errors", "cursor", "create", "key_type", "table_options", "placeholder", "insert_ignore"} <= used
