"""The trust rules of `recsys.event_trust` on small, hand-made logs and events: who counts in training, who is held
back and why, the per-game cap, the sensor's count per source, and the trusted holdout that events cannot move."""

import polars as pl
import pytest

from gamerec_assets.recsys.evaluation import trusted_split
from gamerec_assets.recsys.event_trust import (
    Champion,
    TrustParams,
    assess,
    effective_events,
    training_rows,
    user_standing,
)
from gamerec_assets.recsys.feedback import event_pairs, merge_event_pairs
from gamerec_assets.recsys.split import SplitParams
from gamerec_assets.store.event_store import FRAME_SCHEMA

S = 1_000_000  # a second in microseconds
T0 = 1_796_000_000 * S
PARAMS = TrustParams(min_events=3, burst_window_s=60, burst_new_users=10, game_growth=1.0, game_floor=4)


def events_of(rows: list[tuple[str, int, str, int]]) -> pl.DataFrame:
    """(user, game, type, received second) -> the event store's frame, seq in list order."""
    return pl.DataFrame(
        {
            "seq": list(range(1, len(rows) + 1)),
            "event_id": [f"e{i}" for i in range(len(rows))],
            "user_id": [r[0] for r in rows],
            "game_id": [r[1] for r in rows],
            "type": [r[2] for r in rows],
            "value": [None] * len(rows),
            "timestamp_us": [T0 + r[3] * S for r in rows],
            "received_us": [T0 + r[3] * S for r in rows],
            "request_id": [None] * len(rows),
        },
        schema=FRAME_SCHEMA,
    )


def base_log(users: int = 6, games: tuple[int, ...] = (1, 2, 3, 4)) -> pl.DataFrame:
    """Every base user has every game (so each game's base audience is `users`), except game 9 (one player)."""
    rows = [(str(u), g) for u in range(users) for g in games] + [("0", 9)]
    return pl.DataFrame({"user_id": [r[0] for r in rows], "game_id": [r[1] for r in rows], "weight": 1.0})


def merged(base: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    return merge_event_pairs(base, event_pairs(events))[0]


def verdicts(logs: pl.DataFrame) -> dict[tuple[str, int], str | None]:
    return {(r["user_id"], r["game_id"]): r["held_back"] for r in logs.iter_rows(named=True)}


def test_base_users_count_and_new_users_wait_until_proven() -> None:
    rows = [("0", 2, "like", 0)]  # a base user: established
    rows += [("fresh", g, "play", 100 * g) for g in (1, 2)]  # 2 events < 3
    rows += [("steady", g, "play", 300 * g) for g in (1, 2, 3)]  # 3 events, spread out
    events = events_of(rows)
    base = base_log()
    last_seq = len(rows)

    before, report = assess(merged(base, events), events, Champion(until_seq=0), PARAMS)
    v = verdicts(before)
    assert v[("0", 2)] is None and all(v[("0", g)] is None for g in (1, 3, 4, 9))
    assert {v[("fresh", g)] for g in (1, 2)} == {"new_user"}  # too few events
    assert {v[("steady", g)] for g in (1, 2, 3)} == {"new_user"}  # arrived after the (absent) champion's data
    assert report.held_back_pairs == {"new_user": 5} and report.held_back_events == {"new_user": 5}
    assert report.held_back_users == {"new_user": 2} and report.trusted_event_users == 0
    assert training_rows(before).height == base.height  # only the base rows train

    # once a production model saw them, the user with enough events counts; the one with two still waits
    after, report = assess(merged(base, events), events, Champion(until_seq=last_seq), PARAMS)
    v = verdicts(after)
    assert {v[("steady", g)] for g in (1, 2, 3)} == {None} and {v[("fresh", g)] for g in (1, 2)} == {"new_user"}
    assert report.trusted_event_users == 1
    assert after.filter(pl.col("user_id") == "steady")["trusted"].all()


def test_a_burst_of_new_users_is_held_back_for_good() -> None:
    # 12 made-up users in 20 seconds (>= 10 in one window), each with 3 events, long before the champion's data
    burst = [(f"bot{i}", g, "like", 1_000 + i) for i in range(12) for g in (9, 1, 2)]
    # 12 real newcomers, one every 2 minutes: never 10 in a window
    calm = [(f"fan{i}", g, "play", 5_000 + 120 * i) for i in range(12) for g in (1, 2, 3)]
    events = events_of(burst + calm)
    logs, report = assess(merged(base_log(), events), events, Champion(until_seq=10**9), PARAMS)
    v = verdicts(logs)
    assert {v[(f"bot{i}", g)] for i in range(12) for g in (9, 1, 2)} == {"burst"}
    assert report.held_back_users["burst"] == 12 and report.held_back_events["burst"] == 36
    assert report.burst_windows == 12  # users first seen in a burst window
    # the calm ones are proven (3 events, older than the champion); the cap allows 6 per game (6 base users)
    assert all(v[(f"fan{i}", g)] is None for i in range(6) for g in (1, 2, 3))


def test_a_burst_straddling_a_window_boundary_is_still_a_burst() -> None:
    # 5 users in the last 5 s of one minute and 5 in the first 5 s of the next: the half-offset grid sees 10
    starts = [55, 56, 57, 58, 59, 60, 61, 62, 63, 64]
    events = events_of([(f"bot{i}", 1, "like", s) for i, s in enumerate(starts)])
    standing = user_standing(events, pl.Series([], dtype=pl.Utf8), 0, PARAMS)
    assert standing["burst"].all() and set(standing["reason"]) == {"burst"}


def test_the_per_game_cap_keeps_the_oldest_users_and_grows_with_the_audience() -> None:
    # 9 proven users outside the base all play game 9, which one base user has: the cap is max(4, 1 × 1) = 4
    rows = [(f"late{i}", g, "play", 200 * i + g) for i in range(9) for g in (9, 1, 2)]
    events = events_of(rows)
    logs, report = assess(merged(base_log(), events), events, Champion(until_seq=10**9), PARAMS)
    v = verdicts(logs)
    assert [i for i in range(9) if v[(f"late{i}", 9)] is None] == [0, 1, 2, 3]  # the first four to arrive
    assert {v[(f"late{i}", 9)] for i in range(4, 9)} == {"game_cap"}
    assert report.held_back_pairs == {"game_cap": 5 + 3 + 3}  # games 1, 2: 6 base users -> 6 allowed of 9
    capped = report.capped_games
    assert capped is not None and capped.filter(pl.col("game_id") == 9)["allowed"].to_list() == [4]
    # the production model's audience of game 9 was 8: now 8 of them count
    audience = pl.DataFrame({"game_id": [9], "users": [8.0]})
    logs, _ = assess(merged(base_log(), events), events, Champion(10**9, audience), PARAMS)
    assert sum(verdicts(logs)[(f"late{i}", 9)] is None for i in range(9)) == 8


def test_base_users_ids_do_not_lift_the_cap() -> None:
    # events in the name of 6 base users (ids anyone can type before write keys) add game 9 (one base player):
    # never new nor a burst, but their new pairs are capped like anyone's; their base pairs stay untouched
    events = events_of([(str(u), 9, "like", u) for u in range(1, 6)] + [("2", 1, "like", 9)])
    params = TrustParams(game_floor=2, game_growth=1.0)
    logs, report = assess(merged(base_log(), events), events, Champion(), params)
    v = verdicts(logs)
    assert [u for u in range(1, 6) if v[(str(u), 9)] is None] == [1, 2]  # the first two to arrive
    assert report.held_back_pairs == {"game_cap": 3} and v[("2", 1)] is None
    assert report.trusted_event_users == 0  # none outside the base source


def test_rules_off_trust_every_row() -> None:
    events = events_of([("bot", 9, "like", 0)])
    logs, report = assess(merged(base_log(), events), events, Champion(), TrustParams(enabled=False))
    assert logs["trusted"].all() and logs["held_back"].null_count() == logs.height
    assert report.held_back_pairs == {}


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="burst_window_s"):
        TrustParams(burst_window_s=0)
    with pytest.raises(ValueError, match="min_events"):
        TrustParams(min_events=0)


def test_the_sensor_counts_at_most_a_share_per_source() -> None:
    one_burst = events_of([(f"bot{i}", 9, "like", i % 5) for i in range(1_000)])
    counted = effective_events(one_burst, min_events=1_000, min_sources=5, window_s=60)
    assert counted == {"events": 1_000, "effective": 200, "sources": 1, "per_source_cap": 200, "users": 1_000}
    spread = events_of([(f"fan{i}", 1, "play", 30 * i) for i in range(1_000)])  # 2 a minute for 8 hours
    assert effective_events(spread, 1_000, 5, 60)["effective"] == 1_000
    # once the events carry their write key, the key is the source: one key is one source, however spread out
    keyed = spread.with_columns(pl.lit("partner-a").alias("key_name"))
    assert effective_events(keyed, 1_000, 5, 60)["sources"] == 1
    assert effective_events(events_of([]), 1_000, 5, 60)["effective"] == 0


def test_a_sender_column_with_gaps_counts_keyed_events_by_key_and_the_rest_by_window() -> None:
    # 10 events a minute apart: 6 sent by one key, 4 stored without a sender (older rows)
    spread = events_of([(f"fan{i}", 1, "play", 60 * i) for i in range(10)])
    keys = ["partner-a"] * 6 + [None] * 4
    keyed = spread.with_columns(pl.Series("key_name", keys, dtype=pl.Utf8))
    assert effective_events(keyed, 10, 5, 60) == {
        "events": 10, "effective": 6, "sources": 5, "per_source_cap": 2, "users": 10
    }  # fmt: skip
    # a key named like a window is still a key, not that window
    window = spread.with_columns(pl.lit("window-0").alias("key_name"))
    assert effective_events(window, 10, 5, 60)["sources"] == 1


def test_the_trust_report_counts_events_and_held_back_events_per_sender() -> None:
    burst = [(f"bot{i}", g, "like", 1_000 + i) for i in range(12) for g in (9, 1)]  # held back: a burst
    calm = [("0", 3, "play", 5_000), ("0", 5, "play", 6_000)]  # a base user's new games: within the cap
    events = events_of(burst + calm).with_columns(
        pl.Series("key_name", ["bot-key"] * len(burst) + ["site-a", None], dtype=pl.Utf8)
    )
    _, report = assess(merged(base_log(), events), events, Champion(), PARAMS)
    window = (T0 + 6_000 * S) // (60 * S)
    assert report.events_by_source == {
        "key:bot-key": {"events": 24, "held_back": 24},
        "key:site-a": {"events": 1, "held_back": 0},
        f"window-{window}": {"events": 1, "held_back": 0},
    }
    assert report.metadata()["trust_events_by_source"] == report.events_by_source
    # without a sender column every event counts by its arrival window: the burst's (12 s) is one
    _, plain = assess(merged(base_log(), events), events.drop("key_name"), Champion(), PARAMS)
    burst_window = (T0 + 1_000 * S) // (60 * S)
    assert next(iter(plain.events_by_source.items())) == (f"window-{burst_window}", {"events": 24, "held_back": 24})
    assert [v["events"] for v in plain.events_by_source.values()] == [24, 1, 1]


def test_events_cannot_move_the_trusted_holdout() -> None:
    base = base_log(users=40, games=(1, 2, 3, 4, 5, 6))
    clean = trusted_split(merged(base, events_of([])), SplitParams())
    # made-up users whose ids sort before every base user, liking a game; and base users with new pairs
    rows = [(f"!{i}", g, "like", i) for i in range(50) for g in (9, 1, 2)] + [("3", 7, "like", 99)]
    events = events_of(rows)
    logs, _ = assess(merged(base, events), events, Champion(), PARAMS)
    poisoned = trusted_split(logs, SplitParams())
    held = pl.col("fold") != "train"
    key = ["user_id", "game_id", "fold"]
    assert poisoned.filter(held).select(key).sort(key).equals(clean.filter(held).select(key).sort(key))
    assert poisoned.filter(pl.col("user_id").str.starts_with("!")).height == 0  # held back: not used at all
    assert poisoned.filter((pl.col("user_id") == "3") & (pl.col("game_id") == 7))["fold"].to_list() == ["train"]
    # without trust columns (older tables) the protocol is the plain split of every row
    assert trusted_split(base, SplitParams()).equals(clean.select(trusted_split(base, SplitParams()).columns))
