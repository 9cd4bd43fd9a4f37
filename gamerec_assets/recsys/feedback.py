"""Players' feedback as typed events: the types, their checks, and what they weigh.

One vocabulary for the whole loop (issue #26 §5): `EVENT_TYPES` are the types `POST /events` accepts and the
values an interaction file's `type` column takes, `EVENT_WEIGHTS` is the one weight table both are trained with
(`event_pairs`: the file reader and `user_logs`' events use it alike; configurable per run), and `EVENT_MEANINGS`
says what each is (the README's table is generated from these). `POST /events` checks events with `check_event`,
the store keeps them as `Event`s, the API's realtime overlay applies `POSITIVE` and `NEGATIVE` types. Timestamps
are integer microseconds since the Unix epoch (UTC) everywhere below the HTTP layer: one exact, portable type on
SQLite and MariaDB alike.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

# What each type means; the keys, in this order, are the vocabulary (weakest signal first).
EVENT_MEANINGS = {
    "impression": "the game was shown to the player (in a recommendation answer)",
    "click": "the player clicked a recommendation shown to them",
    "view": "the player opened the game's page on their own (browsing, search)",
    "wishlist": "the player put the game on their wishlist",
    "play": "the player played the game; `value`: hours played",
    "purchase": "the player bought the game",
    "like": "the player said they like the game",
    "dislike": "the player said they do not like the game: never shown to them again, the pair leaves training",
}
EVENT_TYPES = tuple(EVENT_MEANINGS)
POSITIVE = frozenset({"play", "purchase", "like"})  # the game joins the user's history at once
NEGATIVE = frozenset({"dislike"})  # the game is never shown to that user again
# Training weight per type (play: 1 + log1p(hours) times its weight, the steam-200k weight). Impressions and clicks
# weigh nothing by default: they measure the recommendations (online evaluation), and training on the clicks the
# model's own answers drew would feed its exposure back into it. A view the player made on their own (0.25) and a
# wishlist (0.5) are weak interest; a like (2) says more than an unplayed purchase (1).
EVENT_WEIGHTS = {
    "impression": 0.0,
    "click": 0.0,
    "view": 0.25,
    "wishlist": 0.5,
    "play": 1.0,
    "purchase": 1.0,
    "like": 2.0,
    "dislike": 0.0,
}
MAX_FUTURE_S = 300.0  # a client clock may run ahead by this much; later timestamps are refused
MAX_ID = 128  # characters of event_id, user_id and request_id: the tables' VARCHAR(128) keys
MAX_GAME_ID = 2**63 - 1
MAX_VALUE = 1e9


class EventRejected(ValueError):
    """One event that cannot be stored; the message says why (the request's other events go on)."""


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    user_id: str
    game_id: int
    type: str
    value: float | None
    timestamp_us: int  # when it happened (the client's time, else the server's receive time)
    received_us: int  # when the server received it
    request_id: str | None = None  # the /predict answer it reacts to, for online evaluation


def now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


def parse_timestamp(text: str, received_us: int) -> int:
    """RFC 3339 (`2026-12-01T12:00:00Z`, `...+02:00`, fractions allowed) to microseconds; refused when it has no
    time zone, is malformed, or lies more than MAX_FUTURE_S after the receive time."""
    raw = text.strip()
    if "T" not in raw.upper() or len(raw) > 40:
        raise EventRejected(f"timestamp {text[:40]!r} is not RFC 3339 (e.g. 2026-12-01T12:00:00Z)")
    try:
        when = datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1:] in "zZ" else raw)
    except ValueError:
        raise EventRejected(f"timestamp {text[:40]!r} is not RFC 3339 (e.g. 2026-12-01T12:00:00Z)") from None
    if when.tzinfo is None:
        raise EventRejected(f"timestamp {text[:40]!r} has no time zone offset (add Z or +HH:MM)")
    us = round(when.timestamp() * 1_000_000)
    if us > received_us + MAX_FUTURE_S * 1_000_000:
        raise EventRejected(f"timestamp {raw} is in the future (more than {MAX_FUTURE_S:g} s after the server's time)")
    if us < 0:
        raise EventRejected(f"timestamp {raw} is before 1970")
    return us


def _text_id(value: object, name: str, required: bool) -> str | None:
    if value is None:
        if required:
            raise EventRejected(f"{name} is missing")
        return None
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str):
        raise EventRejected(f"{name} must be text or an integer")
    if not text or len(text) > MAX_ID:
        raise EventRejected(f"{name} must have 1..{MAX_ID} characters")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise EventRejected(f"{name} is not valid Unicode text") from None
    return text


def check_event(
    *,
    user_id: object,
    game_id: int,
    type: str,
    value: float | None,
    timestamp: str | None,
    event_id: object = None,
    request_id: object = None,
    received_us: int,
) -> Event:
    """One posted event as stored, or EventRejected naming the problem. Without an `event_id` the server gives it
    a fresh one (such an event can never be a duplicate: a client that retries must send its own ids)."""
    if type not in EVENT_TYPES:
        raise EventRejected(f"unknown event type {type!r}; known: {', '.join(EVENT_TYPES)}")
    user = _text_id(user_id, "user_id", True)
    if isinstance(game_id, bool) or not isinstance(game_id, int) or not 0 < game_id <= MAX_GAME_ID:
        raise EventRejected("game_id must be a positive integer")
    if value is not None and not (isinstance(value, int | float) and math.isfinite(value) and abs(value) <= MAX_VALUE):
        raise EventRejected(f"value must be a finite number of at most {MAX_VALUE:g} in size")
    ts = parse_timestamp(timestamp, received_us) if timestamp is not None else received_us
    eid = _text_id(event_id, "event_id", False) or uuid.uuid4().hex
    rid = _text_id(request_id, "request_id", False)
    return Event(eid, user, game_id, type, None if value is None else float(value), ts, received_us, rid)  # type: ignore[arg-type]


def iso(us: int) -> str:
    """Microseconds to RFC 3339 UTC, for metadata and answers."""
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat().replace("+00:00", "Z")


def events_until_seq(manifest: Mapping[str, Any]) -> int:
    """The newest `interaction_events` seq a model version was trained on: its manifest's
    `data.events.until_seq` (0 for versions trained without events, or before events existed). The realtime
    overlay keeps only newer events; the retraining sensor counts the events after it."""
    data = manifest.get("data")
    events = data.get("events") if isinstance(data, Mapping) else None
    seq = events.get("until_seq") if isinstance(events, Mapping) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and seq > 0 else 0


def events_other_source_until(manifest: Mapping[str, Any]) -> int:
    """The newest `interaction_events` seq posted under another data source than the one a model version was
    trained on: its manifest's `data.events.other_source_until_seq` (0: none, or not recorded). Training left those
    events out (`provenance.other_source_until`), and the API's standing dislikes leave them out too."""
    data = manifest.get("data")
    events = data.get("events") if isinstance(data, Mapping) else None
    seq = events.get("other_source_until_seq") if isinstance(events, Mapping) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and seq > 0 else 0


# -- retraining on events: stored events -> per-pair weights -> merged into the base log ------------------------

EVENT_PAIR_SCHEMA = {
    "user_id": pl.Utf8,
    "game_id": pl.Int64,
    "weight": pl.Float64,
    "timestamp_us": pl.Int64,
    "removed": pl.Boolean,
}


def check_event_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """EVENT_WEIGHTS with `weights` on top; unknown types and negative or non-finite weights are refused."""
    unknown = sorted(set(weights) - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"event_weights: unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
    bad = {t: w for t, w in weights.items() if not (math.isfinite(w) and w >= 0)}
    if bad:
        raise ValueError(f"event_weights must be finite and >= 0, got {bad}")
    return {**EVENT_WEIGHTS, **{t: float(w) for t, w in weights.items()}}


def event_pairs(events: pl.DataFrame, weights: Mapping[str, float] = EVENT_WEIGHTS) -> pl.DataFrame:
    """Stored events (the event store's frame) to one row per (user_id, game_id): EVENT_PAIR_SCHEMA.

    - `weight`: the largest weight of the pair's event types; play weighs `weights["play"] * (1 + log1p(total
      hours))`, its values summed (no value: 0 hours), the interaction file's rule.
    - `timestamp_us`: the newest time of the events that gave the pair weight (null when none did).
    - `removed`: the newest dislike is newer (by timestamp, then seq) than the pair's newest positive event, or the
      pair has a dislike and no positive event: the pair leaves the training log, the base log's pair too.
    """
    table = check_event_weights(weights)
    if events.height == 0:
        return pl.DataFrame(schema=EVENT_PAIR_SCHEMA)
    order = events.sort("timestamp_us", "seq").with_row_index("_at")
    fixed = pl.col("type").replace_strict(table, return_dtype=pl.Float64)
    is_play = pl.col("type") == "play"
    hours = pl.when(is_play).then(pl.col("value").fill_null(0.0).clip(lower_bound=0.0)).otherwise(0.0)
    pairs = (
        order.with_columns(
            pl.when(is_play).then(0.0).otherwise(fixed).alias("_fixed"),
            pl.when(fixed > 0).then(pl.col("timestamp_us")).alias("_weighted_at"),
        )
        .group_by("user_id", "game_id")
        .agg(
            pl.col("_fixed").max(),
            hours.sum().alias("_hours"),
            is_play.any().alias("_played"),
            pl.col("_weighted_at").max().alias("timestamp_us"),
            pl.col("_at").filter(pl.col("type").is_in(list(POSITIVE))).max().alias("_positive"),
            pl.col("_at").filter(pl.col("type").is_in(list(NEGATIVE))).max().alias("_negative"),
        )
        .with_columns(
            pl.max_horizontal(
                "_fixed",
                pl.when("_played").then(table["play"] * (1.0 + pl.col("_hours").log1p())).otherwise(0.0),
            ).alias("weight"),
            (
                pl.col("_negative").is_not_null()
                & (pl.col("_positive").is_null() | (pl.col("_negative") > pl.col("_positive")))
            ).alias("removed"),
        )
    )
    return pairs.select(list(EVENT_PAIR_SCHEMA)).cast(EVENT_PAIR_SCHEMA).sort("user_id", "game_id")  # type: ignore[arg-type]


@dataclass(frozen=True)
class MergeReport:
    added: int  # pairs the base log did not have
    changed: int  # base pairs whose weight the events raised
    removed: int  # base pairs a newer dislike removed

    def metadata(self) -> dict[str, int]:
        return {
            "event_pairs_added": self.added,
            "event_pairs_changed": self.changed,
            "event_pairs_removed": self.removed,
        }


def merge_event_pairs(base: pl.DataFrame, pairs: pl.DataFrame) -> tuple[pl.DataFrame, MergeReport]:
    """The base log (user_id, game_id, weight, ...) with the event pairs merged in: a pair's weight is the larger of
    the two, removed pairs leave, event pairs of weight 0 add nothing (an impression never erases a play). The
    base columns are kept (null for pairs only the events have), `timestamp_us` is added (null for base-only
    pairs) and `in_base` (the pair is in the base log: what `event_trust` and the trusted holdout build on). Rows
    come back sorted by user_id, game_id."""
    keys = ["user_id", "game_id"]
    base = base.with_columns(pl.col("user_id").cast(pl.Utf8), pl.col("game_id").cast(pl.Int64))
    base = base.drop(c for c in ("timestamp_us", "in_base") if c in base.columns)
    ev = pairs.select(*keys, pl.col("weight").alias("_ev_weight"), "timestamp_us", "removed")
    joined = base.with_columns(pl.lit(True).alias("_in_base")).join(ev, on=keys, how="full", coalesce=True)
    in_base = pl.col("_in_base").fill_null(False)
    removed = pl.col("removed").fill_null(False)
    weighted = pl.col("_ev_weight").fill_null(0.0) > 0
    keep = ~removed & (in_base | weighted)
    stats = joined.select(
        (~in_base & ~removed & weighted).sum().alias("added"),
        (in_base & ~removed & (pl.col("_ev_weight").fill_null(0.0) > pl.col("weight"))).sum().alias("changed"),
        (in_base & removed).sum().alias("removed"),
    ).row(0)
    merged = (
        joined.filter(keep)
        .with_columns(
            pl.max_horizontal(pl.col("weight"), pl.col("_ev_weight")).alias("weight"), in_base.alias("in_base")
        )
        .drop("_in_base", "_ev_weight", "removed")
        .select(*base.columns, "timestamp_us", "in_base")
        .sort(keys)
    )
    return merged, MergeReport(*(int(v) for v in stats))
