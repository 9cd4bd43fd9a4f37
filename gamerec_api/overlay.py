"""Realtime histories: each worker tails `interaction_events` and keeps, per user, what happened since its model.

A served model already holds every event up to its `events_until_seq` (its manifest's `data.events.until_seq`), so
the overlay keeps only newer ones: per user (keyed by the UTF-8 id, the key of `ServingState.user_index`) the game
ids of the user's newer `POSITIVE` events (play, purchase, like: they join the history, so they are scored from and
never recommended back) and of the newer `NEGATIVE` ones (dislike: never shown to that user again). The latest
event (highest seq) of a (user, game) pair wins: a dislike drops a realtime-added game from the history, a later
play brings it back. A dislike of a game in the model's own (trained) history removes it from the history the
answers are scored from as well as from the answers: it is the user's latest word on that game, and a disliked game
should not pull similar games in. Game ids the served model does not know are kept (a newer model may know them)
and ignored for scoring. Impressions and clicks change nothing here (they measure the recommendations).

Requests read `users` only: one dict probe (`users.get(key)`); most users are not in it and pay nothing else. The
tail thread applies a batch of events to its own per-user dicts and then publishes, per touched user, a new
immutable `UserOverlay` (one assignment), so a request never sees a half-applied user; `gen` is unique per
published value, so the answer cache can key an overlay user's answer by it.

No missed events. The tail reads by seq, but on MariaDB a seq is allocated at the append's INSERT and the row
commits later, so concurrent appends commit out of seq order: a read can return seq 11 while seq 10 is still
uncommitted, and a reader that only remembered "after 11" would never see 10. Tailing by commit order instead
would need a commit-ordered key that InnoDB does not give (a counter bumped at COMMIT serialises every append on
one row lock), so the overlay tracks *gaps*: each seq missing below the newest seq it read is re-read by every
poll (one ranged primary-key read, in the same round trip as the new rows) until it is filled, or proven final:
- proven from the server (`EventStore.tail`'s horizon, from information_schema.innodb_trx): the transaction that
  allocated a seq missing at a read started before that read; once every write transaction open on the server
  started after it, the allocating one has ended, and a read after that which still lacks the row shows it was
  rolled back or was an INSERT IGNORE duplicate. Typically within a second or two; a long write transaction
  anywhere on the server (innodb_trx does not say which seqs a transaction holds) holds the gaps seen after it
  began open until it ends: they are re-read meanwhile, nothing is lost;
- else (the database account lacks the PROCESS privilege: a warning is logged) after `gap_timeout` seconds
  (default 30 min), longer than an append's statements can take with the store's timeouts (300 s per send and
  per answer); setting MariaDB's `idle_transaction_timeout` below it makes that bound a proof too.
On SQLite appends are serialised by the one write lock, held from INSERT to COMMIT, so rows commit in seq order
and a missing seq is final at once. Open gaps are bounded (`max_gaps` seqs, the oldest given up first, counted) and
shown in `gamerec_overlay_gaps`; how each closed in `gamerec_overlay_gaps_closed_total`. A row that fills a gap is
applied even when its seq is at or below the served model's: it committed late, so the model may well lack it.

Fast enough to keep up: a read asks for 4 columns (decoding is most of its cost) in pages of `batch` rows (a full
page is followed by the next read at once); a batch is filtered, signed and grouped per user in polars, and the
Python work left is a dict merge per (user, game) and one published value per touched user. Measured with
bench/bench_overlay_lag.py (10,000 events/s from 4 processes into MariaDB, polls every 0.5 s, on a 2-core machine
shared with other work): every event applied, p50 lag 0.4-1.2 s, p99 0.8-4.4 s, never more than ~27,000 events
behind and caught up at the end; the overlay before gap tracking lost 100-300 of 200,000 (whole appends).

Bounded memory: at most `max_users` users (default 200,000, the most recently active: least recently active first
out), `max_games` games per user (default 500, oldest event first out) and `max_entries` (user, game) pairs in all
(default 1,000,000, least recently active users first out), evictions counted in `gamerec_overlay_evictions_total`;
and only events newer than the served model: on a model swap `align` drops what the new model covers (and after a
rollback to an older model, starts over from that model's seq). Measured (tracemalloc): ~650 bytes per user plus
~110 per (user, game) pair, so the caps hold a worker's overlay under ~250 MB (200,000 users, 1,000,000 pairs), and
a retrain (sensor `retrain_on_new_events`) empties it of what the new model learnt. Caps are enforced after each
batch (a batch of `batch` events may exceed them for its duration).

Dislikes outlive eviction. What the overlay forgets (an evicted user or game, or events a new model covers) is what
the served model says, except a dislike: the model never saw a newer one, and retraining drops a pair whose latest
word is a dislike from the model's data, so either model could recommend that game again. So dislikes are kept in
their own store, `_dislikes` (user -> game -> seq), which plays, purchases and likes never enter, so no flood of
them (nor of other users' dislikes below its cap) can push a dislike out:
- the *standing dislikes* up to the served model's seq (`EventStore.standing_dislikes`, read once per model in the
  tail thread: the pairs whose latest word is a dislike);
- a newer dislike when the overlay's caps evict it (its user, or the oldest game of a user past `max_games`), or
  when a new model covers it (until that model's standing dislikes are read).
A later play, purchase or like of the same game removes it. At most `max_standing` pairs (default 1,000,000): past
it, the users whose dislikes entered least recently go first (counted as `dislike` evictions) — only a flood of
dislikes beyond that cap can do it. Measured (tracemalloc, with the user's published `UserOverlay`): ~700 bytes
per pair when each user has one dislike (mostly the published value: 100,000 users, 69 MB), ~155 per pair at 100
dislikes per user (10,000 users, 155 MB); so the default cap bounds the dislikes at ~700 MB in the worst case of a
million users with one dislike each. Lower `max_standing` on small workers.

Forgotten users (`forget`, from the holder's poll of `forgotten_users`): everything held for the user goes (their
realtime games and their dislikes), and their events up to the forget's `until_seq` are ignored from then on (one
that commits late, or a gap re-read, never brings them back); a newer event is the player coming back.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from prometheus_client import Counter, Gauge

from gamerec_assets.recsys.feedback import NEGATIVE, POSITIVE
from gamerec_assets.store.event_store import EventStore

log = logging.getLogger(__name__)

MAX_USERS = 200_000  # users kept (least recently active evicted first)
MAX_GAMES = 500  # games kept per user (oldest event evicted first)
MAX_ENTRIES = 1_000_000  # (user, game) pairs kept in all (least recently active users evicted first)
MAX_STANDING = 1_000_000  # dislikes kept apart from the caps above (user, game pairs; least recent users first out)
BATCH = 10_000  # events per read of the table; a full batch is followed by the next read at once (catching up)
MAX_GAPS = 100_000  # seqs missing below the newest read seq that are re-read until filled or final
GAP_MAX_AGE_S = 1_800.0  # without the PROCESS privilege: a gap older than this is given up

EVENTS = Counter("gamerec_overlay_events", "Events the realtime overlay applied, by type", ["type"])
EVICTIONS = Counter("gamerec_overlay_evictions", "Realtime overlay evictions past its caps, by what", ["what"])
TAIL_ERRORS = Counter("gamerec_overlay_tail_errors", "Failed reads of interaction_events (retried with backoff)")
USERS = Gauge("gamerec_overlay_users", "Users with realtime events in the overlay", multiprocess_mode="livemax")
SEQ = Gauge("gamerec_overlay_seq", "Newest interaction_events seq the overlay has read", multiprocess_mode="livemin")
GAPS = Gauge(
    "gamerec_overlay_gaps", "Seqs missing below the newest read, re-read until they commit", multiprocess_mode="livemax"
)
GAPS_CLOSED = Counter(
    "gamerec_overlay_gaps_closed",
    "Gaps in seq closed: filled (the row committed late), final (proven never to commit), timeout, overflow",
    ["how"],
)
_SIGN = {**dict.fromkeys(POSITIVE, 1), **dict.fromkeys(NEGATIVE, -1)}
_NONE: dict[int, int] = {}  # read only


@dataclass(frozen=True, slots=True)
class UserOverlay:
    """One user's events newer than the served model, as game ids (immutable: replaced whole on a change)."""

    added: tuple[int, ...]  # played, purchased or liked, oldest first
    excluded: frozenset[int]  # disliked: never recommended, not scored from
    gen: int  # unique per published value in this process (the answer cache's key for this user)


class RealtimeOverlay:
    """The per-worker overlay. `users` is read by requests; `poll`, `align` and `load_standing` run in worker
    threads (one at a time per overlay, as the holder runs them)."""

    def __init__(
        self,
        max_users: int = MAX_USERS,
        max_games: int = MAX_GAMES,
        max_entries: int = MAX_ENTRIES,
        batch: int = BATCH,
        max_standing: int = MAX_STANDING,
        max_gaps: int = MAX_GAPS,
        gap_timeout: float = GAP_MAX_AGE_S,
    ) -> None:
        if not 0 < max_games <= max_entries:
            raise ValueError(f"need 0 < max_games <= max_entries, got {max_games} and {max_entries}")
        if max_standing < 1 or max_gaps < 1:
            raise ValueError(f"need max_standing >= 1 and max_gaps >= 1, got {max_standing} and {max_gaps}")
        self.max_users = max_users
        self.max_games = max_games
        self.max_entries = max_entries
        self.batch = batch
        self.max_standing = max_standing
        self.max_gaps = max_gaps
        self.gap_timeout = gap_timeout
        self._entries = 0  # (user, game) pairs in _games
        self.users: dict[bytes, UserOverlay] = {}
        # per user, least recently active first: game id -> seq of the latest event (> 0 positive, < 0 dislike),
        # oldest first; only the tail thread (under the lock) touches it
        self._games: dict[bytes, dict[int, int]] = {}
        # dislikes that outlive the caps and the models: user -> game -> seq, users least recently added first
        self._dislikes: dict[bytes, dict[int, int]] = {}
        self._n_dislikes = 0
        self.floor: int | None = None  # the served model's events_until_seq (None: no model yet, nothing to read)
        self.standing_floor: int | None = None  # the floor whose standing dislikes were read
        self.other_source_until = 0  # the served model's events up to this seq were another source's: not standing
        self.last_seq = 0  # newest seq read
        # open gaps: the missing seq, when it was first missed (server clock, see EventStore.tail; and monotonic)
        self._gap_seq = np.empty(0, np.int64)
        self._gap_seen = np.empty(0, np.float64)
        self._gap_mono = np.empty(0, np.float64)
        self._warned_no_horizon = False
        self._epoch = 0  # bumped by a reset: a read started before it is discarded
        self._touched: set[bytes] = set()  # users to republish at the end of the current change
        self._evicted = {"user": 0, "game": 0, "dislike": 0}
        self._gen = itertools.count(1)
        self._lock = threading.Lock()
        # forgotten users: id -> the forget's until_seq (their events up to it are ignored)
        self._forgotten: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.users)

    def entries(self) -> int:
        """(user, game) pairs held besides the dislikes: what `max_entries` counts."""
        return self._entries

    def dislikes(self) -> int:
        """(user, game) dislikes held apart from the caps: what `max_standing` counts."""
        return self._n_dislikes

    def open_gaps(self) -> list[int]:
        """The seqs missing below `last_seq` that the next poll re-reads."""
        return self._gap_seq.tolist()

    # -- the model -------------------------------------------------------------------------------------------------

    def align(self, until_seq: int, other_source_until: int = 0) -> None:
        """A model trained on events up to `until_seq` is served: drop what it covers (a dislike moves to the
        dislikes, until that model's standing dislikes are read). An older model (a rollback) covers less than was
        pruned already: start over from its seq (the next poll reads what it lacks). `other_source_until`: the
        model left the events up to it out (posted under another source), so their dislikes do not stand."""
        with self._lock:
            if other_source_until != self.other_source_until:
                self.other_source_until, self.standing_floor = other_source_until, None  # read them again
            if self.floor is not None and until_seq < self.floor:
                self._touched.update(self._games)
                for key, games in self._games.items():
                    self._keep_dislikes(key, [(g, -s) for g, s in games.items() if s < 0])
                self._games.clear()
                self._entries = 0
                self.last_seq = until_seq
                self._epoch += 1
                keep = self._gap_seq <= until_seq  # the rest is read again as new rows
                self._gap_seq, self._gap_seen, self._gap_mono = (
                    a[keep] for a in (self._gap_seq, self._gap_seen, self._gap_mono)
                )
            else:
                for key, games in self._games.items():
                    old = [(g, s) for g, s in games.items() if abs(s) <= until_seq]
                    if old:
                        for g, _ in old:
                            del games[g]
                        self._entries -= len(old)
                        self._keep_dislikes(key, [(g, -s) for g, s in old if s < 0])
                        self._touched.add(key)
                for key in [k for k in self._touched if not self._games.get(k, True)]:
                    del self._games[key]
                self.last_seq = max(self.last_seq, until_seq)
            self.floor = until_seq
            self._finish()

    def needs_standing(self) -> bool:
        """The standing dislikes were not read yet for the served model's seq."""
        return self.floor is not None and self.standing_floor != self.floor

    def load_standing(self, store: EventStore) -> None:
        """Read the standing dislikes up to the floor (in the tail thread, outside the lock) and publish them: they
        replace the held dislikes up to the floor; newer held ones stay, and so does a newer event of the pair."""
        floor = self.floor
        if floor is None:
            return
        frame = store.standing_dislikes(floor, after_seq=self.other_source_until).tail(self.max_standing)
        forgotten = dict(self._forgotten)
        if forgotten:  # read before a forget's erasure reached the events
            until = pl.col("user_id").replace_strict(forgotten, default=None, return_dtype=pl.Int64)
            frame = frame.filter(until.is_null() | (pl.col("seq") > until))
        grouped = frame.group_by("user_id", maintain_order=True).agg("game_id", "seq")
        with self._lock:
            if self.floor != floor:  # another model came in meanwhile: its own read follows
                return
            held, self._dislikes, self._n_dislikes = self._dislikes, {}, 0
            self._touched.update(held)
            for user, games, seqs in grouped.iter_rows():
                key = user.encode()
                newer = self._games.get(key) or {}  # a held event of the pair (newer than the floor) wins
                self._keep_dislikes(key, [(g, s) for g, s in zip(games, seqs, strict=True) if abs(newer.get(g, 0)) < s])
            for key, pairs in held.items():
                self._keep_dislikes(key, [(g, s) for g, s in pairs.items() if s > floor])
            self.standing_floor = floor
            self._finish()

    # -- events ----------------------------------------------------------------------------------------------------

    def poll(self, store: EventStore) -> int:
        """Read the next batch of events after `last_seq` and the open gaps, and apply them; the number of new
        events read (== batch: more wait)."""
        with self._lock:
            if self.floor is None:
                return 0
            after, epoch, gaps = self.last_seq, self._epoch, self._gap_seq.copy()
        # the database round trip, outside the lock
        frame, read_at, horizon = store.tail(after, self.batch, gaps.tolist(), horizon=bool(gaps.size))
        if gaps.size and horizon is None and not self._warned_no_horizon:
            self._warned_no_horizon = True
            log.warning(
                "realtime overlay: cannot read information_schema.innodb_trx (grant PROCESS to the database "
                "account): a seq that never commits is re-read for %.0f s before it is given up",
                self.gap_timeout,
            )
        seqs = frame["seq"].to_numpy()
        fresh = seqs > after
        with self._lock:
            if epoch != self._epoch:  # a rollback came in meanwhile: it re-reads from the older model's seq
                return int(fresh.sum())
            self._track_gaps(seqs, fresh, after, read_at, horizon)
            self._apply(frame, late=~fresh)
            if fresh.any():
                self.last_seq = max(self.last_seq, int(seqs[-1]))
            self._finish()
        return int(fresh.sum())

    def apply(self, frame: pl.DataFrame, epoch: int | None = None) -> None:
        """Apply events (columns seq, user_id, game_id, type) newer than the floor, as read after `last_seq`; a
        frame read before a reset is dropped (the reset re-reads from the older model's seq)."""
        with self._lock:
            if epoch is not None and epoch != self._epoch:
                return
            self._apply(frame, late=None)
            if frame.height:
                self.last_seq = max(self.last_seq, int(frame["seq"].max()))  # type: ignore[arg-type]
            self._finish()

    def forget(self, user_id: str, until_seq: int) -> None:
        """Drop everything held for a forgotten user and ignore their events up to `until_seq` from now on."""
        key = user_id.encode()
        with self._lock:
            self._forgotten[user_id] = max(until_seq, self._forgotten.get(user_id, until_seq))
            games = self._games.pop(key, None)
            if games:
                self._entries -= len(games)
            disliked = self._dislikes.pop(key, None)
            if disliked:
                self._n_dislikes -= len(disliked)
            self._touched.add(key)
            self._finish()

    # -- internals (under the lock) --------------------------------------------------------------------------------

    def _track_gaps(
        self, seqs: np.ndarray, fresh: np.ndarray, after: int, read_at: float, horizon: float | None
    ) -> None:
        """Close the gaps this read filled or proved final (or that timed out); open those below its newest row."""
        now = time.monotonic()
        seq, seen, mono = self._gap_seq, self._gap_seen, self._gap_mono
        filled = np.isin(seq, seqs[~fresh])
        missing, overflow = _missing(after, seqs[fresh], self.max_gaps)
        if missing.size:
            seq = np.concatenate([seq, missing])
            seen = np.concatenate([seen, np.full(missing.size, read_at)])
            mono = np.concatenate([mono, np.full(missing.size, now)])
            filled = np.concatenate([filled, np.zeros(missing.size, bool)])
        final = ~filled & (seen < horizon) if horizon is not None else np.zeros(seq.size, bool)
        timeout = ~filled & ~final & (now - mono > self.gap_timeout)
        keep = ~(filled | final | timeout)
        over = max(0, int(keep.sum()) - self.max_gaps)
        if over:  # the oldest seqs first
            keep[np.flatnonzero(keep)[:over]] = False
        overflow += over
        for how, n in (
            ("filled", filled.sum()),
            ("final", final.sum()),
            ("timeout", timeout.sum()),
            ("overflow", overflow),
        ):
            if n:
                GAPS_CLOSED.labels(how).inc(int(n))
        self._gap_seq, self._gap_seen, self._gap_mono = seq[keep], seen[keep], mono[keep]

    def _apply(self, frame: pl.DataFrame, late: np.ndarray | None) -> None:
        """Merge a batch grouped per user (the newest event of a pair wins), users in the order of their newest
        event (so the least recently active stay first), then the caps. `late`: rows that filled a gap (applied
        at any seq)."""
        if not frame.height:
            return
        keep = pl.col("seq") > (self.floor or 0)
        if late is not None and late.any():
            keep = keep | pl.Series(late)
        events = frame.select("seq", "user_id", "game_id", "type")
        if self._forgotten:  # a forgotten user's events up to the forget stay forgotten
            until = pl.col("user_id").replace_strict(self._forgotten, default=None, return_dtype=pl.Int64)
            keep = keep & (until.is_null() | (pl.col("seq") > until))
        events = events.filter(keep & pl.col("type").is_in(list(_SIGN))).with_columns(
            (pl.col("seq") * pl.col("type").replace_strict(_SIGN, return_dtype=pl.Int64)).alias("s")
        )
        for kind, n in events.group_by("type").len().iter_rows():
            EVENTS.labels(kind).inc(n)
        if late is not None and late.any():
            events = events.sort("seq")
        per_user = (
            events.group_by("user_id", maintain_order=True)
            .agg("game_id", "s", pl.col("seq").last().alias("newest"))
            .sort("newest")
        )
        columns = (per_user["user_id"].to_list(), per_user["game_id"].to_list(), per_user["s"].to_list())
        for user, games, signed in zip(*columns, strict=True):
            self._merge_user(user.encode(), games, signed)
        self._enforce_user_caps()

    def _merge_user(self, key: bytes, games: list[int], signed: list[int]) -> None:
        """One user's newest events of a batch (seq order) into its dict, moved last (most recently active)."""
        held = self._games.pop(key, None)
        if held is None:
            held = {}
        self._games[key] = held
        disliked = self._dislikes.get(key)
        for g, s in zip(games, signed, strict=True):
            old = held.get(g)
            if old is not None:
                if abs(old) > abs(s):  # a newer event of the pair is held (this one committed late)
                    continue
                del held[g]
                self._entries -= 1
            if disliked is not None and g in disliked:
                if disliked[g] > abs(s):  # a newer dislike is held
                    continue
                del disliked[g]  # superseded (a newer dislike is kept in `held`, and moves back when evicted)
                self._n_dislikes -= 1
            held[g] = s
            self._entries += 1
        if disliked is not None and not disliked:
            del self._dislikes[key]
        while len(held) > self.max_games:
            g = next(iter(held))
            s = held.pop(g)
            self._entries -= 1
            self._evicted["game"] += 1
            if s < 0:
                self._keep_dislikes(key, [(g, -s)])
        self._touched.add(key)

    def _enforce_user_caps(self) -> None:
        games_of = self._games
        while len(games_of) > self.max_users or self._entries > self.max_entries:
            gone = next(iter(games_of))
            games = games_of.pop(gone)
            self._entries -= len(games)
            self._keep_dislikes(gone, [(g, -s) for g, s in games.items() if s < 0])
            self._touched.add(gone)  # republished with its dislikes only, or dropped
            self._evicted["user"] += 1

    def _keep_dislikes(self, key: bytes, pairs: list[tuple[int, int]]) -> None:
        """Hold (game, seq) dislikes of a user apart from the caps (its user moved last); past `max_standing`
        pairs, the users whose dislikes entered least recently go first (a lone user: its oldest)."""
        if not pairs:
            return
        held = self._dislikes.pop(key, None)
        if held is None:
            held = {}
        self._dislikes[key] = held
        for g, s in pairs:
            old = held.get(g)
            if old is None:
                self._n_dislikes += 1
            if old is None or s > old:
                held[g] = s
        while self._n_dislikes > self.max_standing:
            first = next(iter(self._dislikes))
            if first == key and len(self._dislikes) == 1:
                del held[next(iter(held))]
                n = 1
            else:
                n = len(self._dislikes.pop(first))
                self._touched.add(first)
            self._n_dislikes -= n
            self._evicted["dislike"] += n
        self._touched.add(key)

    def _finish(self) -> None:
        """Publish the touched users and the gauges and counters of this change."""
        touched, self._touched = self._touched, set()
        self._publish(touched)
        USERS.set(len(self.users))
        SEQ.set(self.last_seq)
        GAPS.set(self._gap_seq.size)
        for what, n in self._evicted.items():
            if n:
                EVICTIONS.labels(what).inc(n)
                self._evicted[what] = 0

    def _publish(self, keys: Any) -> None:
        """One new immutable value per changed user (or none when nothing is left): one assignment each."""
        for key in keys:
            games = self._games.get(key) or _NONE
            disliked = self._dislikes.get(key)
            if not games and not disliked:
                self.users.pop(key, None)
                continue
            items = games.items()
            excluded = frozenset([g for g, s in items if s < 0])
            if disliked:
                excluded |= disliked.keys() - games.keys()
            self.users[key] = UserOverlay(tuple([g for g, s in items if s > 0]), excluded, next(self._gen))


def _missing(after: int, seqs: np.ndarray, cap: int) -> tuple[np.ndarray, int]:
    """The seqs between `after` and the newest of `seqs` (sorted, all > after) that are not in `seqs`: the newest
    `cap` of them, and how many older ones did not fit (a jump in seq is not expanded past the cap)."""
    if not seqs.size:
        return np.empty(0, np.int64), 0
    bounds = np.concatenate([np.array([after], np.int64), seqs])
    lengths = np.diff(bounds) - 1
    total = int(lengths.sum())
    if not total:
        return np.empty(0, np.int64), 0
    starts = bounds[:-1] + 1
    dropped = max(0, total - cap)
    if dropped:  # trim runs from the oldest until `cap` remain
        before = np.cumsum(lengths) - lengths  # missing seqs in the runs before each
        cut = np.clip(dropped - before, 0, lengths)
        starts, lengths = starts + cut, lengths - cut
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + offsets, dropped
