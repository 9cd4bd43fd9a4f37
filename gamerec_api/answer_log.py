"""The answers given under an experiment, buffered per worker and written to `experiment_answers` off the request
path.

A request only appends a tuple to a bounded deque (the game ids as the answer's own bytes: parsing waits for the
flush). The holder flushes every FLUSH_S in a worker thread, one transaction per flush. When the database fails the
rows wait for the next flush; past MAX_PENDING the oldest are dropped and counted
(`gamerec_experiment_answers_dropped_total`), so an outage never grows a worker without bound. Events still reach
their arm without these rows (the request id carries it); what is lost is an interleaved answer's credit per game.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import Counter

from gamerec_assets.store.experiment_answers import AnswerRecord, ExperimentAnswers
from gamerec_assets.store.table_store import TableStore

log = logging.getLogger("gamerec_api")
FLUSH_S = 1.0
MAX_PENDING = 100_000
DROPPED = Counter(
    "gamerec_experiment_answers_dropped", "Experiment answers not written (the buffer was full while writes failed)"
)

# (request_id, experiment, arm, version, challenger_version, user_id, served_us, games: b"1_2" or a list, teams|None)
Pending = tuple[str, str, str, str, str, str, int, bytes | list[int], str | None]


def _record(p: Pending) -> AnswerRecord:
    rid, experiment, arm, version, challenger, user, served_us, games, teams = p
    ids = tuple(int(g) for g in games.split(b"_") if g) if isinstance(games, bytes) else tuple(games)
    return AnswerRecord(rid, experiment, arm, version, challenger, user, served_us, ids, teams or arm * len(ids))


class AnswerLog:
    def __init__(self, tables: Callable[[], TableStore]) -> None:
        self._tables = tables
        self._pending: collections.deque[Pending] = collections.deque()
        self._lock = threading.Lock()  # flushes run in worker threads; appends on the event loop (deque is safe)

    def add(
        self,
        request_id: str,
        experiment: str,
        arm: str,
        version: str,
        challenger_version: str,
        user_id: str,
        games: bytes | list[int],
        teams: str | None = None,
    ) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._pending.popleft()
            DROPPED.inc()
        served_us = time.time_ns() // 1000
        self._pending.append(
            (request_id, experiment, arm, version, challenger_version, user_id, served_us, games, teams)
        )

    @property
    def pending(self) -> int:
        return len(self._pending)

    def forget(self, user_ids: set[str]) -> int:
        """In a worker thread: drop the pending answers of forgotten players (not yet written, so the erasure
        cannot reach them); the number dropped. Answers added meanwhile stay behind the kept ones, in order."""
        with self._lock:
            batch: list[Pending] = []
            while self._pending:
                batch.append(self._pending.popleft())
            keep = [p for p in batch if p[5] not in user_ids]
            self._pending.extendleft(reversed(keep))
        return len(batch) - len(keep)

    def flush(self) -> int:
        """In a worker thread: write what is pending in one transaction; the rows written. On failure the rows go
        back to the front of the buffer (bounded) and the error is raised."""
        with self._lock:
            batch: list[Pending] = []
            while self._pending:
                batch.append(self._pending.popleft())
            if not batch:
                return 0
            try:
                return ExperimentAnswers(self._tables()).append([_record(p) for p in batch])
            except Exception:
                room = max(0, MAX_PENDING - len(self._pending))
                keep = batch[max(0, len(batch) - room) :] if room else []
                DROPPED.inc(len(batch) - len(keep))
                self._pending.extendleft(reversed(keep))
                raise
