"""`EventStore.summary`: the one GROUP BY the `interaction_events` observation and the retraining sensor run, on SQLite
and MariaDB."""

import pytest

from gamerec_assets.recsys.feedback import check_event
from gamerec_assets.resources.storage import TablesResource


@pytest.fixture(params=["sqlite", "mysql"])
def tables(request: pytest.FixtureRequest, tmp_path) -> TablesResource:
    if request.param == "sqlite":
        return TablesResource(url=f"sqlite:///{tmp_path / 'gamerec.db'}")
    return TablesResource(url=request.getfixturevalue("mysql_db")["url"])


def test_counts_by_type_newest_seq_and_time_in_a_seq_range(tables: TablesResource) -> None:
    store = tables.events()
    assert store.summary() == {"count": 0, "by_type": {}, "until_seq": 0, "newest_us": None}  # no table yet
    types = ["play", "like", "play", "dislike", "click"]
    events = [
        check_event(user_id="u", game_id=i + 1, type=t, value=None, timestamp=None, received_us=1_000 + i)
        for i, t in enumerate(types)
    ]
    last = store.append(events).last_seq
    everything = store.summary()
    assert everything == {
        "count": 5,
        "by_type": {"click": 1, "dislike": 1, "like": 1, "play": 2},
        "until_seq": last,
        "newest_us": 1_004,
    }
    middle = store.summary(after_seq=last - 4, until_seq=last - 2)  # the 2nd and 3rd events
    assert middle == {"count": 2, "by_type": {"like": 1, "play": 1}, "until_seq": last - 2, "newest_us": 1_002}
    assert store.summary(after_seq=last)["count"] == 0
