"""Stored events to training pairs, and their merge into the base log: the weighting rule of `recsys.feedback`."""

import math

import polars as pl
import pytest

from gamerec_assets.recsys.evaluation import source_change
from gamerec_assets.recsys.feedback import (
    EVENT_WEIGHTS,
    check_event_weights,
    event_pairs,
    events_until_seq,
    merge_event_pairs,
)
from gamerec_assets.recsys.provenance import OTHER_SOURCE_COLUMN, other_source_until, provenance
from gamerec_assets.store.event_store import FRAME_SCHEMA


def frame(rows: list[tuple[str, int, str, float | None, int]]) -> pl.DataFrame:
    """(user, game, type, value, timestamp_us) rows, seq in row order."""
    return pl.DataFrame(
        {
            "seq": list(range(1, len(rows) + 1)),
            "event_id": [f"e{i}" for i in range(len(rows))],
            "user_id": [r[0] for r in rows],
            "game_id": [r[1] for r in rows],
            "type": [r[2] for r in rows],
            "value": [r[3] for r in rows],
            "timestamp_us": [r[4] for r in rows],
            "received_us": [r[4] for r in rows],
            "request_id": [None] * len(rows),
        },
        schema=FRAME_SCHEMA,
    )


def by_pair(pairs: pl.DataFrame) -> dict[tuple[str, int], dict]:
    return {(r["user_id"], r["game_id"]): r for r in pairs.iter_rows(named=True)}


def test_weights_by_type_hours_and_the_newest_weighted_time() -> None:
    events = frame(
        [
            ("u", 1, "play", 2.0, 10),
            ("u", 1, "play", 3.0, 20),  # hours are summed: 1 + log1p(5)
            ("u", 1, "impression", None, 99),  # weighs nothing: not the pair's time
            ("u", 2, "purchase", None, 5),
            ("u", 2, "like", None, 7),  # the largest type weight wins
            ("u", 3, "play", None, 1),  # play without hours: 1
            ("v", 1, "click", None, 3),  # weight 0
        ]
    )
    pairs = by_pair(event_pairs(events))
    assert math.isclose(pairs[("u", 1)]["weight"], 1 + math.log1p(5.0))
    assert pairs[("u", 1)]["timestamp_us"] == 20
    assert pairs[("u", 2)]["weight"] == EVENT_WEIGHTS["like"] and pairs[("u", 2)]["timestamp_us"] == 7
    assert pairs[("u", 3)]["weight"] == 1.0
    assert pairs[("v", 1)]["weight"] == 0.0 and pairs[("v", 1)]["timestamp_us"] is None
    assert not any(p["removed"] for p in pairs.values())


def test_configured_weights_apply_and_bad_ones_are_refused() -> None:
    events = frame([("u", 1, "play", 1.0, 1), ("u", 2, "click", None, 2)])
    pairs = by_pair(event_pairs(events, {"play": 2.0, "click": 0.5}))
    assert math.isclose(pairs[("u", 1)]["weight"], 2.0 * (1 + math.log1p(1.0)))
    assert pairs[("u", 2)]["weight"] == 0.5
    with pytest.raises(ValueError, match="unknown event types"):
        check_event_weights({"share": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        check_event_weights({"like": -1.0})


def test_a_dislike_newer_than_the_latest_positive_removes_the_pair() -> None:
    events = frame(
        [
            ("u", 1, "play", 1.0, 10),
            ("u", 1, "dislike", None, 20),  # newer: removed
            ("u", 2, "dislike", None, 10),
            ("u", 2, "like", None, 20),  # liked again afterwards: kept
            ("u", 3, "dislike", None, 5),  # only a dislike: removed (from the base log too)
            ("u", 4, "like", None, 30),
            ("u", 4, "dislike", None, 30),  # same time: the later seq wins
        ]
    )
    pairs = by_pair(event_pairs(events))
    assert pairs[("u", 1)]["removed"] and pairs[("u", 3)]["removed"] and pairs[("u", 4)]["removed"]
    assert not pairs[("u", 2)]["removed"] and pairs[("u", 2)]["weight"] == EVENT_WEIGHTS["like"]


def test_merge_takes_the_larger_weight_adds_removes_and_keeps_base_columns() -> None:
    base = pl.DataFrame(
        {
            "user_id": ["u", "u", "u", "w"],
            "game_id": [1, 2, 3, 9],
            "weight": [3.0, 1.0, 1.0, 1.5],
            "title": [None, None, None, "x"],
        }
    )
    events = frame(
        [
            ("u", 1, "like", None, 1),  # 2 < 3: unchanged
            ("u", 2, "like", None, 2),  # 2 > 1: changed
            ("u", 3, "dislike", None, 3),  # removed from the base
            ("u", 4, "impression", None, 4),  # weight 0: adds nothing
            ("w", 9, "impression", None, 5),  # weight 0: never erases the base pair
            ("new", 5, "play", 4.0, 6),  # a new user: added
        ]
    )
    merged, report = merge_event_pairs(base, event_pairs(events))
    assert (report.added, report.changed, report.removed) == (1, 1, 1)
    assert merged.columns == ["user_id", "game_id", "weight", "title", "timestamp_us", "in_base"]
    rows = by_pair(merged)
    assert set(rows) == {("u", 1), ("u", 2), ("w", 9), ("new", 5)}
    assert rows[("u", 1)]["weight"] == 3.0 and rows[("u", 2)]["weight"] == 2.0
    assert rows[("w", 9)]["title"] == "x" and rows[("w", 9)]["timestamp_us"] is None
    assert math.isclose(rows[("new", 5)]["weight"], 1 + math.log1p(4.0)) and rows[("new", 5)]["timestamp_us"] == 6
    assert merged.select("user_id", "game_id").is_unique().all()
    assert [p for p, r in rows.items() if not r["in_base"]] == [("new", 5)]  # what only events brought


def test_no_events_leave_the_base_as_it_was() -> None:
    base = pl.DataFrame({"user_id": ["a", "b"], "game_id": [2, 1], "weight": [1.0, 2.0]})
    merged, report = merge_event_pairs(base, event_pairs(pl.DataFrame(schema=FRAME_SCHEMA)))
    assert (report.added, report.changed, report.removed) == (0, 0, 0)
    assert merged.drop("timestamp_us", "in_base").equals(base.sort("user_id", "game_id"))
    assert merged["in_base"].all()
    assert merged["timestamp_us"].null_count() == 2


def test_the_manifest_records_the_events_and_new_events_are_no_change_of_source() -> None:
    features = pl.DataFrame({"game_id": [1, 2]})
    logs = pl.DataFrame({"user_id": ["a"], "game_id": [1], "weight": [1.0], "source": ["simulated"]})
    old = {"data": provenance(logs, features)}
    assert old["data"]["events"] == {"until_seq": 0, "count": 0, "until": None} and events_until_seq(old) == 0
    with_events = logs.with_columns(
        pl.lit(41, pl.Int64).alias("events_seq"),
        pl.lit(12, pl.Int64).alias("events_count"),
        pl.lit(1_796_000_000_000_000, pl.Int64).alias("events_until_us"),
    )
    new = {"data": provenance(with_events, features)}
    assert new["data"]["events"] == {"until_seq": 41, "count": 12, "until": "2026-11-30T00:53:20Z"}
    assert events_until_seq(new) == 41
    assert new["data"]["interactions"] == "simulated" and source_change(old, new) is None


def test_events_posted_under_another_source_are_left_out_and_the_boundary_carries_on() -> None:
    features = pl.DataFrame({"game_id": [1, 2]})
    logs = pl.DataFrame(
        {"user_id": ["a"], "game_id": [1], "weight": [1.0], "catalog": ["file:c.csv"], "source": ["file:i.csv"]}
    )
    demo = {"data": {"catalog": "rawg", "interactions": "simulated", "events": {"until_seq": 5}}}
    mine = {"data": {"catalog": "file:c.csv", "interactions": "file:i.csv"}}
    assert other_source_until(None, None, 30) == (0, "no production model: every event counts")
    seq, why = other_source_until(demo, source_change(demo, mine), 30)  # every stored event: the demo's
    assert seq == 30 and "catalog rawg -> file:c.csv" in why and "interactions simulated -> file:i.csv" in why
    # a model on the new source records the boundary, and the next run reads it back from its manifest
    first = {"data": provenance(logs.with_columns(pl.lit(30, pl.Int64).alias(OTHER_SOURCE_COLUMN)), features)}
    assert first["data"]["events"]["other_source_until_seq"] == 30 and source_change(first, mine) is None
    assert other_source_until(first, None, 45)[0] == 30
    assert other_source_until({"data": provenance(logs, features)}, None, 45)[0] == 0  # no boundary recorded
    assert other_source_until(first, None, 10)[0] == 0  # a boundary past the table's end (a new table) is ignored
