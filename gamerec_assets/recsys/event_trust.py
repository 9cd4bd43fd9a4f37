"""How far training trusts players' events: the rules that keep made-up users and bursts from steering the model.

`POST /events` lets a site (and, before write keys, anyone) add users and what they did. Six requests of 3,000
made-up users, each liking one obscure game and playing GTA V, made that game #2 of the popular list and #1 similar
to GTA V. `user_logs` therefore marks every row `trusted` (it counts in training: the item-item fit, the popularity
list, the holdouts) or holds it back (`held_back` says why); a held-back row still stays in its user's own served
history (the player is never shown a game they have), it only never teaches the model anything about other players.

The rules, in order (the first that matches names the reason):

1. **Base users are established.** A user of the configured base source (simulated, steam or file) is never new nor
   part of a burst; events change their history as before (their new games are subject to the per-game cap).
2. `burst`: a user outside the base source whose **first event arrived in a burst** (a window of `burst_window_s`
   seconds of server receive time, on two grids offset by half a window, in which at least `burst_new_users` users
   were seen for the first time) is held back, whatever came later: a burst never becomes trusted by waiting.
   Receive times are the server's clock (the client's `timestamp` can be set to anything); events of one request
   share one receive time.
3. `new_user`: a user outside the base source is held back until **proven**: at least `min_events` events, and the
   first of them at or before the production model's data (`until_seq` of the champion's manifest), so a newcomer
   counts from the first refresh after a model that already saw them was promoted. No production model: every
   user outside the base source is new.
4. `game_cap`: per game, the pairs events added (not in the base log: proven users outside the base source, and
   base users' new games too, since an id alone proves nothing before write keys) count for at most
   `max(game_floor, game_growth × established)`, where `established` is the game's trusted audience in the
   production model (its popularity array; without one, the base source's users of the game). The users who
   arrived first keep their say (first event seq, then user id); the rest are held back. A game's trusted audience
   can so grow by at most `game_growth` times (at least `game_floor` users) per promoted model, however many
   accounts speak for it.

Held back, not down-weighted: a row's weight does not bound its influence in every family of the model zoo (Jaccard
and RP3beta binarise or normalise a user's row), leaving it out does. Everything is stateless and recomputed from the
events table and the production model at every refresh, in vectorised polars.

`sources` / `effective_events` are the retraining sensor's side of the same idea: events are counted per source,
at most `min_events / min_sources` per source, so a burst from a few sources cannot request a refresh. A source is the
event's sender as the events table records it (`key_name`: a write key's name, `answer:<user_id>` for a browser's
answer token, `open`); an event without one (stored before senders were recorded, or appended without one) counts by
its arrival window (the burst windows above) instead. The trust report also counts the events per source
(`trust_events_by_source`: the busiest senders first), so an operator sees which key a held-back burst came from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from gamerec_assets.recsys.feedback import events_until_seq

TRUST_REASONS = ("burst", "new_user", "game_cap")
SOURCE_COLUMNS = ("key_name", "source")  # the events table's sender column, once ingestion records one


@dataclass(frozen=True)
class TrustParams:
    """The thresholds of the module's rules (settings: GAMEREC_TRUST_*, GAMEREC_EVENTS_BURST_*)."""

    min_events: int = 5  # events a user outside the base source needs before training counts them
    burst_window_s: float = 60.0  # arrival windows (server receive time) for bursts and the sensor's sources
    burst_new_users: int = 50  # users first seen in one window that make the window a burst
    game_growth: float = 1.0  # per game, proven users outside the base count for at most this × its audience
    game_floor: int = 10  # ... and at least this many users
    enabled: bool = True  # False: every row is trusted (the behaviour before these rules; for experiments)

    def __post_init__(self) -> None:
        if self.min_events < 1 or self.burst_new_users < 2 or self.game_floor < 0:
            raise ValueError("min_events >= 1, burst_new_users >= 2 and game_floor >= 0 are required")
        if not (self.burst_window_s > 0 and math.isfinite(self.burst_window_s)):
            raise ValueError(f"burst_window_s must be a positive number, got {self.burst_window_s}")
        if not (self.game_growth >= 0 and math.isfinite(self.game_growth)):
            raise ValueError(f"game_growth must be a finite number >= 0, got {self.game_growth}")


@dataclass(frozen=True)
class Champion:
    """What the production model was trained on: its events' `until_seq`, and its trusted audience per game
    (`game_id`, `users`: the artifact's popularity), or None without a production model."""

    until_seq: int = 0
    audience: pl.DataFrame | None = None


@dataclass(frozen=True)
class TrustReport:
    """What the rules held back, and why: for `user_logs`' metadata and the model manifest."""

    held_back_pairs: dict[str, int] = field(default_factory=dict)
    held_back_events: dict[str, int] = field(default_factory=dict)
    held_back_users: dict[str, int] = field(default_factory=dict)
    trusted_event_users: int = 0  # users outside the base source whose events count
    burst_windows: int = 0
    capped_games: pl.DataFrame | None = None  # game_id, allowed, held_back (the most held back first)
    params: dict[str, Any] = field(default_factory=dict)
    # the busiest sources (`sources`): {source: {"events": n, "held_back": events of held-back pairs}}
    events_by_source: dict[str, dict[str, int]] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {
            "trust_held_back_pairs": sum(self.held_back_pairs.values()),
            "trust_held_back_events": sum(self.held_back_events.values()),
            "trust_held_back_pairs_by_reason": self.held_back_pairs,
            "trust_held_back_events_by_reason": self.held_back_events,
            "trust_held_back_users_by_reason": self.held_back_users,
            "trust_trusted_event_users": self.trusted_event_users,
            "trust_burst_windows": self.burst_windows,
            "trust_rules": self.params,
            "trust_events_by_source": self.events_by_source,
        }


def _windows(received_us: pl.Expr, window_s: float, offset: float) -> pl.Expr:
    width = int(window_s * 1_000_000)
    return ((received_us + int(offset * width)) // width).alias("_w")


def user_standing(events: pl.DataFrame, base_users: pl.Series, until_seq: int, params: TrustParams) -> pl.DataFrame:
    """Per user with events: user_id, outside (not a base user), first_seq, events, burst, reason (`burst`,
    `new_user`, or null: counts, subject to the per-game cap). Only users outside the base source get a reason;
    bursts are counted over their first appearances."""
    schema = {
        "user_id": pl.Utf8,
        "outside": pl.Boolean,
        "first_seq": pl.Int64,
        "events": pl.UInt32,
        "burst": pl.Boolean,
        "reason": pl.Utf8,
    }
    if events.height == 0:
        return pl.DataFrame(schema=schema)
    users = (
        events.sort("seq")
        .group_by("user_id")
        .agg(pl.col("seq").first().alias("first_seq"), pl.col("received_us").first().alias("_first_us"), pl.len())
        .rename({"len": "events"})
        .with_columns((~pl.col("user_id").is_in(base_users.cast(pl.Utf8).implode())).alias("outside"))
    )
    firsts = users.filter("outside")
    burst = pl.lit(False)
    for offset in (0.0, 0.5):  # two grids: a burst straddling one grid's boundary fills a window of the other
        per_window = firsts.group_by(_windows(pl.col("_first_us"), params.burst_window_s, offset)).len("_new")
        flagged = per_window.filter(pl.col("_new") >= params.burst_new_users)["_w"].implode()
        burst = burst | _windows(pl.col("_first_us"), params.burst_window_s, offset).is_in(flagged)
    users = users.with_columns((pl.col("outside") & burst).alias("burst"))
    new = pl.col("outside") & ((pl.col("first_seq") > until_seq) | (pl.col("events") < params.min_events))
    reason = pl.when("burst").then(pl.lit("burst")).when(new).then(pl.lit("new_user")).otherwise(None)
    return users.with_columns(reason.alias("reason")).select(list(schema)).cast(schema)  # type: ignore[arg-type]


def burst_windows(standing: pl.DataFrame) -> int:
    return int(standing["burst"].sum()) if standing.height else 0


def _established(logs: pl.DataFrame, champion: Champion) -> pl.DataFrame:
    """game_id, established: the larger of the champion's audience and the base source's users of the game."""
    base = logs.filter(pl.col("in_base")).group_by("game_id").agg(pl.len().cast(pl.Float64).alias("_base"))
    audience = champion.audience if champion.audience is not None else pl.DataFrame(schema={"game_id": pl.Int64})
    audience = audience.select(
        pl.col("game_id").cast(pl.Int64),
        (pl.col("users") if "users" in audience.columns else pl.lit(0.0)).alias("_aud"),
    )
    both = base.join(audience.cast({"_aud": pl.Float64}), on="game_id", how="full", coalesce=True)
    return both.select(
        "game_id", pl.max_horizontal(pl.col("_base").fill_null(0.0), pl.col("_aud").fill_null(0.0)).alias("established")
    )


def assess(
    logs: pl.DataFrame, events: pl.DataFrame, champion: Champion, params: TrustParams = TrustParams()
) -> tuple[pl.DataFrame, TrustReport]:
    """`logs` (the merged user_logs, with `in_base`: the pair is in the base source) with `trusted` (bool) and
    `held_back` (the reason, null when trusted) added, and the report. `events`: the stored events merged in."""
    rules = dict(params.__dict__)
    if not params.enabled or events.height == 0:
        out = logs.with_columns(pl.lit(True).alias("trusted"), pl.lit(None, pl.Utf8).alias("held_back"))
        return out, TrustReport(params=rules)
    base_users = logs.filter(pl.col("in_base"))["user_id"].unique()
    standing = user_standing(events, base_users, champion.until_seq, params)
    rows = logs.join(standing.select("user_id", "outside", "first_seq", "reason"), on="user_id", how="left")
    rows = rows.join(_established(logs, champion), on="game_id", how="left")
    # every pair events added (not in the base log) of a user who counts: base users' too (their ids are not proof)
    candidate = ~pl.col("in_base") & pl.col("first_seq").is_not_null() & pl.col("reason").is_null()
    ranked = (
        rows.filter(candidate)
        .sort("first_seq", "user_id")
        .select("user_id", "game_id", (pl.int_range(pl.len()).over("game_id") + 1).alias("_rank"))
    )
    allowed = pl.max_horizontal(
        pl.lit(float(params.game_floor)), pl.col("established").fill_null(0.0) * params.game_growth
    ).floor()
    rows = rows.join(ranked, on=["user_id", "game_id"], how="left").with_columns(allowed.cast(pl.Int64).alias("_allow"))
    capped = candidate & (pl.col("_rank") > pl.col("_allow"))
    rows = rows.with_columns(pl.when(capped).then(pl.lit("game_cap")).otherwise(pl.col("reason")).alias("held_back"))
    report = _report(rows, events, standing, rules)
    out = rows.with_columns(pl.col("held_back").is_null().alias("trusted")).select(
        *logs.columns, "trusted", "held_back"
    )
    return out.sort("user_id", "game_id"), report  # the merge's order (joins do not promise one)


def _report(rows: pl.DataFrame, events: pl.DataFrame, standing: pl.DataFrame, rules: dict[str, Any]) -> TrustReport:
    held = rows.filter(pl.col("held_back").is_not_null())
    pairs = dict(sorted(held.group_by("held_back").len().iter_rows()))
    per_pair_events = events.group_by("user_id", "game_id").len("_events")
    held_events = held.join(per_pair_events, on=["user_id", "game_id"], how="left")
    by_events = held_events.group_by("held_back").agg(pl.col("_events").fill_null(0).sum())
    users = held.group_by("held_back").agg(pl.col("user_id").n_unique())
    capped = (
        held.filter(pl.col("held_back") == "game_cap")
        .group_by("game_id")
        .agg(pl.col("_allow").first().alias("allowed"), pl.len().alias("held_back"))
        .sort("held_back", "game_id", descending=[True, False])
    )
    trusted_users = rows.filter(pl.col("outside").fill_null(False) & pl.col("held_back").is_null())["user_id"]
    windows = standing.filter(pl.col("burst")).height
    return TrustReport(
        events_by_source=_by_source(events, held, float(rules["burst_window_s"])),
        held_back_pairs={k: int(v) for k, v in pairs.items()},
        held_back_events={k: int(v) for k, v in sorted(by_events.iter_rows())},
        held_back_users={k: int(v) for k, v in sorted(users.iter_rows())},
        trusted_event_users=trusted_users.n_unique(),
        burst_windows=windows,
        capped_games=capped,
        params=rules,
    )


def _by_source(events: pl.DataFrame, held: pl.DataFrame, window_s: float, top: int = 20) -> dict[str, dict[str, int]]:
    """Events and held-back events (those of a held-back pair) of the `top` busiest sources."""
    pairs = held.select("user_id", "game_id").unique().with_columns(pl.lit(True).alias("_held"))
    per_source = (
        events.with_columns(sources(events, window_s).alias("_source"))
        .join(pairs, on=["user_id", "game_id"], how="left")
        .group_by("_source")
        .agg(pl.len().alias("events"), pl.col("_held").fill_null(False).sum().alias("held_back"))
        .sort("events", "_source", descending=[True, False])
        .head(top)
    )
    return {str(r[0]): {"events": int(r[1]), "held_back": int(r[2])} for r in per_source.iter_rows()}


def training_rows(user_logs: pl.DataFrame) -> pl.DataFrame:
    """The rows training counts: `trusted` ones (every row of logs without the column: older tables, files)."""
    return user_logs.filter(pl.col("trusted")) if "trusted" in user_logs.columns else user_logs


# -- the retraining sensor: events counted per source -------------------------------------------------------------


def sources(events: pl.DataFrame, window_s: float) -> pl.Expr:
    """Who sent each event: `key:<sender>` when the events carry one (SOURCE_COLUMNS; `interaction_events.key_name`),
    else (a NULL sender, or no such column) `window-<n>`, its arrival window of `window_s` seconds (server receive
    time), all an unnamed sender leaves."""
    window = pl.format("window-{}", _windows(pl.col("received_us"), window_s, 0.0))
    for column in SOURCE_COLUMNS:
        if column in events.columns:  # "key:" keeps a key named like a window apart from the window
            return pl.coalesce(pl.format("key:{}", pl.col(column).cast(pl.Utf8)), window)
    return window


def effective_events(events: pl.DataFrame, min_events: int, min_sources: int, window_s: float) -> dict[str, Any]:
    """{"events", "effective", "sources", "per_source_cap", "users"}: every source counts for at most
    ceil(min_events / min_sources) events, so a refresh needs at least `min_sources` sources' worth of events."""
    cap = math.ceil(min_events / max(min_sources, 1))
    if events.height == 0:
        return {"events": 0, "effective": 0, "sources": 0, "per_source_cap": cap, "users": 0}
    per_source = events.group_by(sources(events, window_s).alias("_source")).len("n")
    effective = int(per_source["n"].clip(upper_bound=cap).sum())
    return {
        "events": events.height,
        "effective": effective,
        "sources": per_source.height,
        "per_source_cap": cap,
        "users": events["user_id"].n_unique(),
    }


def champion_from(manifest: Mapping[str, Any] | None, item_ids: Any = None, popularity: Any = None) -> Champion:
    """The `Champion` of a production manifest (None: no model) and its artifact's item ids and popularity."""
    if manifest is None:
        return Champion()
    audience = None
    if item_ids is not None and popularity is not None:
        audience = pl.DataFrame({"game_id": pl.Series(item_ids, dtype=pl.Int64), "users": pl.Series(popularity)})
        audience = audience.with_columns(pl.col("users").cast(pl.Float64))
    return Champion(events_until_seq(manifest), audience)
