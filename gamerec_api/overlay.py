"""Realtime histories: each worker tails `interaction_events` and keeps, per user, what happened since its model.

A served model already holds every event up to its `events_until_seq` (its manifest's `data.events.until_seq`), so
the overlay keeps only newer ones: per user (keyed by the UTF-8 id, the key of `ServingState.user_index`) the game
ids of the user's newer `POSITIVE` events (play, purchase, like: they join the history, so they are scored from and
never recommended back) and of the newer `NEGATIVE` ones (dislike: never shown to that user again). The latest
event of a (user, game) pair wins: a dislike drops a realtime-added game from the history, a later play brings it
back. A dislike of a game in the model's own (trained) history removes it from the history the answers are scored
from as well as from the answers: it is the user's latest word on that game, and a disliked game should not pull
similar games in. Game ids the served model does not know are kept (a newer model may know them) and ignored for
scoring. Impressions and clicks change nothing here (they measure the recommendations).

Requests read `users` only: one dict probe (`users.get(key)`); most users are not in it and pay nothing else. The
tail thread applies a batch of events to its own per-user dicts and then publishes, per touched user, a new
immutable `UserOverlay` (one assignment), so a request never sees a half-applied user; `gen` is unique per
published value, so the answer cache can key an overlay user's answer by it.

Bounded memory: at most `max_users` users (default 200,000, the most recently active: least recently active first
out), `max_games` games per user (default 500, oldest event first out) and `max_entries` (user, game) pairs in all
(default 1,000,000, least recently active users first out), evictions counted in `gamerec_overlay_evictions_total`;
and only events newer than the served model: on a model swap `align` drops what the new model covers (and after a
rollback to an older model, starts over from that model's seq). Measured (tracemalloc): ~650 bytes per user plus
~110 per (user, game) pair, so the caps hold a worker's overlay under ~250 MB (200,000 users, 1,000,000 pairs), and
a retrain (sensor `retrain_on_new_events`) empties it of what the new model learnt.

Semantics that follow from the bound: what the overlay forgets (an evicted user or game, or events a new model
covers) is what the served model says, with one exception: a dislike. Retraining drops a pair whose latest word is
a dislike from the model's data, so the new model could recommend that game again; the overlay therefore also
keeps the *standing dislikes* up to the served model's seq (`EventStore.standing_dislikes`, read once per model in
the tail thread; at most `max_standing` pairs, the newest kept), excluded like newer dislikes until a later play,
purchase or like of the same game.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

import polars as pl
from prometheus_client import Counter, Gauge

from gamerec_assets.recsys.feedback import NEGATIVE, POSITIVE
from gamerec_assets.store.event_store import EventStore

MAX_USERS = 200_000  # users kept (least recently active evicted first)
MAX_GAMES = 500  # games kept per user (oldest event evicted first)
MAX_ENTRIES = 1_000_000  # (user, game) pairs kept in all (least recently active users evicted first)
MAX_STANDING = 1_000_000  # standing dislikes kept (user, game pairs up to the model's seq; the newest kept)
BATCH = 5_000  # events per read of the table; a full batch is followed by the next read at once (catching up)

EVENTS = Counter("gamerec_overlay_events", "Events the realtime overlay applied, by type", ["type"])
EVICTIONS = Counter("gamerec_overlay_evictions", "Realtime overlay evictions past its caps, by what", ["what"])
TAIL_ERRORS = Counter("gamerec_overlay_tail_errors", "Failed reads of interaction_events (retried with backoff)")
USERS = Gauge("gamerec_overlay_users", "Users with realtime events in the overlay", multiprocess_mode="livemax")
SEQ = Gauge("gamerec_overlay_seq", "Newest interaction_events seq the overlay has read", multiprocess_mode="livemin")


@dataclass(frozen=True, slots=True)
class UserOverlay:
    """One user's events newer than the served model, as game ids (immutable: replaced whole on a change)."""

    added: tuple[int, ...]  # played, purchased or liked, oldest first
    excluded: frozenset[int]  # disliked: never recommended, not scored from
    gen: int  # unique per published value in this process (the answer cache's key for this user)


class RealtimeOverlay:
    """The per-worker overlay. `users` is read by requests; `poll` and `align` run in worker threads."""

    def __init__(
        self,
        max_users: int = MAX_USERS,
        max_games: int = MAX_GAMES,
        max_entries: int = MAX_ENTRIES,
        batch: int = BATCH,
        max_standing: int = MAX_STANDING,
    ) -> None:
        if not 0 < max_games <= max_entries:
            raise ValueError(f"need 0 < max_games <= max_entries, got {max_games} and {max_entries}")
        self.max_users = max_users
        self.max_games = max_games
        self.max_entries = max_entries
        self.batch = batch
        self._entries = 0  # (user, game) pairs in _games
        self.users: dict[bytes, UserOverlay] = {}
        # per user, least recently active first: game id -> seq of the latest event (> 0 positive, < 0 dislike),
        # oldest first; only the tail thread (under the lock) touches it
        self._games: dict[bytes, dict[int, int]] = {}
        self.floor: int | None = None  # the served model's events_until_seq (None: no model yet, nothing to read)
        self.max_standing = max_standing
        # dislikes up to the floor still standing (no later positive event), per user; for `standing_floor`
        self._standing: dict[bytes, frozenset[int]] = {}
        self.standing_floor: int | None = None
        self.last_seq = 0  # newest seq read
        self._epoch = 0  # bumped by a reset: a read started before it is discarded
        self._gen = itertools.count(1)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.users)

    def entries(self) -> int:
        """(user, game) pairs held: what the memory bound counts."""
        return self._entries

    # -- the model -------------------------------------------------------------------------------------------------

    def align(self, until_seq: int) -> None:
        """A model trained on events up to `until_seq` is served: drop what it covers. An older model (a rollback)
        covers less than was pruned already: start over from its seq (the next poll reads what it lacks)."""
        with self._lock:
            if self.floor is not None and until_seq < self.floor:
                self._games.clear()
                self.users.clear()
                self._entries = 0
                self.last_seq = until_seq
                self._epoch += 1
            else:
                touched = []
                for key, games in self._games.items():
                    old = [g for g, s in games.items() if abs(s) <= until_seq]
                    if old:
                        for g in old:
                            del games[g]
                        self._entries -= len(old)
                        touched.append(key)
                for key in touched:
                    if not self._games[key]:
                        del self._games[key]
                self._publish(touched)
                self.last_seq = max(self.last_seq, until_seq)
            self.floor = until_seq
            USERS.set(len(self.users))
            SEQ.set(self.last_seq)

    def needs_standing(self) -> bool:
        """The standing dislikes were not read yet for the served model's seq."""
        return self.floor is not None and self.standing_floor != self.floor

    def load_standing(self, store: EventStore) -> None:
        """Read the standing dislikes up to the floor (in the tail thread, outside the lock) and publish them."""
        floor = self.floor
        if floor is None:
            return
        frame = store.standing_dislikes(floor).tail(self.max_standing)
        standing: dict[bytes, set[int]] = {}
        for user, game in zip(frame["user_id"].to_list(), frame["game_id"].to_list(), strict=True):
            standing.setdefault(user.encode(), set()).add(game)
        with self._lock:
            if self.floor != floor:  # another model came in meanwhile: its own read follows
                return
            touched = set(self._standing) | set(standing)
            self._standing = {k: frozenset(v) for k, v in standing.items()}
            self.standing_floor = floor
            self._publish(touched)
            USERS.set(len(self.users))

    # -- events ----------------------------------------------------------------------------------------------------

    def poll(self, store: EventStore) -> int:
        """Read the next batch of events after `last_seq` and apply it; the number read (== batch: more wait)."""
        with self._lock:
            after, epoch = self.last_seq, self._epoch
        if self.floor is None:
            return 0
        frame = store.read(after_seq=after, limit=self.batch)  # the database round trip, outside the lock
        if frame.height:
            self.apply(frame, epoch)
        return frame.height

    def apply(self, frame: pl.DataFrame, epoch: int | None = None) -> None:
        """Apply events (seq order, FRAME_SCHEMA columns) newer than the floor; a frame read before a reset is
        dropped (the reset re-reads from the older model's seq)."""
        with self._lock:
            if epoch is not None and epoch != self._epoch:
                return
            floor = self.floor or 0
            games_of = self._games
            touched: set[bytes] = set()
            counts: dict[str, int] = {}
            evicted_games = evicted_users = 0
            for seq, user, game, kind in zip(
                frame["seq"].to_list(),
                frame["user_id"].to_list(),
                frame["game_id"].to_list(),
                frame["type"].to_list(),
                strict=True,
            ):
                if seq <= floor:
                    continue
                positive = kind in POSITIVE
                if not positive and kind not in NEGATIVE:
                    continue
                key = user.encode()
                games = games_of.pop(key, None)  # re-inserted last: the most recently active user
                if games is None:
                    games = {}
                games_of[key] = games
                if games.pop(game, None) is None:
                    self._entries += 1
                games[game] = seq if positive else -seq
                if len(games) > self.max_games:
                    del games[next(iter(games))]
                    self._entries -= 1
                    evicted_games += 1
                touched.add(key)
                counts[kind] = counts.get(kind, 0) + 1
                while len(games_of) > self.max_users or self._entries > self.max_entries:
                    gone = next(iter(games_of))  # never this event's user: it was just moved last
                    self._entries -= len(games_of.pop(gone))
                    self.users.pop(gone, None)
                    if gone in self._standing:
                        touched.add(gone)  # republished with its standing dislikes only
                    evicted_users += 1
            self._publish(touched)
            self.last_seq = max(self.last_seq, int(frame["seq"][-1]))
            USERS.set(len(self.users))
            SEQ.set(self.last_seq)
        for kind, n in counts.items():
            EVENTS.labels(kind).inc(n)
        if evicted_games:
            EVICTIONS.labels("game").inc(evicted_games)
        if evicted_users:
            EVICTIONS.labels("user").inc(evicted_users)

    def _publish(self, keys: set[bytes] | list[bytes]) -> None:
        """One new immutable value per changed user (or none when nothing is left): one assignment each."""
        for key in keys:
            games = self._games.get(key) or {}
            standing = self._standing.get(key, frozenset())
            if not games and not standing:
                self.users.pop(key, None)
                continue
            self.users[key] = UserOverlay(
                tuple(g for g, s in games.items() if s > 0),
                frozenset(g for g, s in games.items() if s < 0) | (standing - games.keys()),
                next(self._gen),
            )
