import pytest

from gamerec_assets.recsys.feedback import EventRejected, check_event, iso, now_us, parse_timestamp

NOW = parse_timestamp("2026-12-01T12:00:00Z", 2**62)


def test_rfc3339_forms_agree() -> None:
    assert parse_timestamp("2026-12-01T13:00:00+01:00", NOW) == NOW
    assert parse_timestamp("2026-12-01t12:00:00.5z", NOW) == NOW + 500_000
    assert iso(NOW) == "2026-12-01T12:00:00Z"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2026-12-01", "not RFC 3339"),
        ("yesterday", "not RFC 3339"),
        ("2026-12-01T12:00:00", "no time zone"),
        ("2026-13-01T12:00:00Z", "not RFC 3339"),
        ("2026-12-01T12:06:00Z", "in the future"),
    ],
)
def test_bad_timestamps_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(EventRejected, match=why):
        parse_timestamp(text, NOW)


def test_a_small_clock_skew_is_allowed() -> None:
    assert parse_timestamp("2026-12-01T12:04:00Z", NOW) == NOW + 240_000_000


def test_check_event_defaults_and_refusals() -> None:
    received = now_us()
    e = check_event(user_id=7, game_id=3, type="play", value=1, timestamp=None, received_us=received)
    assert e.user_id == "7" and e.timestamp_us == received and e.value == 1.0 and len(e.event_id) == 32
    other = check_event(user_id=7, game_id=3, type="play", value=None, timestamp=None, received_us=received)
    assert other.event_id != e.event_id
    for kwargs, why in [
        ({"type": "rate"}, "unknown event type"),
        ({"game_id": 0}, "positive integer"),
        ({"game_id": True}, "positive integer"),
        ({"user_id": ""}, "1..128"),
        ({"user_id": "x" * 129}, "1..128"),
        ({"user_id": "\ud800"}, "Unicode"),
        ({"value": float("nan")}, "finite"),
        ({"event_id": "y" * 200}, "event_id"),
    ]:
        args = {"user_id": "u", "game_id": 1, "type": "like", "value": None, "timestamp": None} | kwargs
        with pytest.raises(EventRejected, match=why):
            check_event(**args, received_us=received)  # type: ignore[arg-type]


def test_events_until_seq_reads_only_a_positive_integer() -> None:
    from gamerec_assets.recsys.feedback import events_until_seq

    assert events_until_seq({"data": {"events": {"until_seq": 42}}}) == 42
    for manifest in (
        {},
        {"data": None},
        {"data": {"events": {"until_seq": "42"}}},
        {"data": {"events": {"until_seq": True}}},
    ):
        assert events_until_seq(manifest) == 0
