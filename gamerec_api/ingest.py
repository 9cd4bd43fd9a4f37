"""Players' feedback in: check each posted event, append the valid ones to `interaction_events`, build the answer.

The checks (`recsys.feedback.check_event`, ~10 µs an event), the append (`EventStore.append`: one committed
transaction, all or nothing) and the answer's encoding run in a worker thread, so the event loop never waits on the
database nor holds a batch of 1,000 for 10 ms. Events are counted (`gamerec_events_total` by type and result,
`gamerec_events_by_key_total` by credential, `gamerec_events_unknown_game_total` by type) once they are committed.

Idempotency: a request with an `Idempotency-Key` has its outcome (status and body) recorded in the events' own
transaction (`store/event_requests.py`), so a retry with the same key and credential gets exactly the first
outcome when the first attempt committed (`Idempotency-Replayed: true`), and is processed afresh when it did not.

A failed append is a 503 whose text says what is safe: before the COMMIT nothing was stored
(`EventStoreUnavailable`); when the COMMIT itself failed the events may be stored (`EventStoreCommitUnknown`):
retrying with the same Idempotency-Key is safe, retrying without one may store events that have no event_id twice.
POST /events (`controllers.events`) calls `post_events`.

Every stored event records its sender (`interaction_events.key_name`, `sender_of`): the write key's name; for an
answer token `answer:<user_id>`, the answer's user, so that each browser counts as itself (all browsers as one
`answer-token` would make a site's page traffic one source, never enough for the retraining sensor; an answer token
only allows click/impression/play events of that answer's own games, so made-up users gain no say over which games
they name); `open` without a credential. The retraining sensor and the trust report count per sender
(`event_trust.sources`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import anyio.to_thread
import msgspec
from litestar.exceptions import ClientException, ServiceUnavailableException

from gamerec_api import telemetry
from gamerec_api.event_auth import EVENTS_BY_KEY, Credential
from gamerec_api.holder import ModelHolder
from gamerec_api.schemas import EventIn, EventResult, EventsResponse
from gamerec_api.state import ServingState
from gamerec_assets.recsys import experiment_ids
from gamerec_assets.recsys.feedback import MAX_ID, Event, EventRejected, check_event, now_us
from gamerec_assets.store.event_requests import MAX_KEY, AlreadyRecorded, RequestLog
from gamerec_assets.store.event_store import AppendResult, CommitUncertain, EventStore

log = logging.getLogger("gamerec_api")
PURGE_EVERY_S = 600.0  # each worker forgets expired idempotency records at most this often


class EventStoreUnavailable(ServiceUnavailableException):
    detail = (
        "the event store is unavailable: no event of this request was stored; retry later (with the same "
        "Idempotency-Key, if you sent one)"
    )


class EventStoreCommitUnknown(ServiceUnavailableException):
    detail = (
        "the event store failed while committing this request: its events may or may not be stored. Safe: retry "
        "with the same Idempotency-Key header (you get this request's outcome if it was stored, and it is stored "
        "once if not). Without an Idempotency-Key, a retry stores the events that have no event_id a second time if "
        "the first attempt was stored (events with an event_id are never stored twice)"
    )


class IdempotencyKeyReused(ClientException):
    status_code = 422
    detail = "this Idempotency-Key was used for another request body: use a new key for a new request"


class StoreDown(RuntimeError):
    """The append failed (the message names the cause, for the log only); `uncertain`: during the COMMIT."""

    def __init__(self, message: str, uncertain: bool) -> None:
        super().__init__(message)
        self.uncertain = uncertain


@dataclass(frozen=True)
class Idempotency:
    scope: str  # the credential's (`event_auth.Credential.scope`)
    key: str
    fingerprint: str  # SHA-256 of the request body

    @classmethod
    def of(cls, header: str | None, scope: str, body: bytes) -> Idempotency | None:
        if header is None:
            return None
        if not 0 < len(header) <= MAX_KEY or not all("!" <= ch <= "~" for ch in header):
            raise ClientException(detail=f"Idempotency-Key must be 1..{MAX_KEY} printable ASCII characters")
        return cls(scope, header, hashlib.sha256(body).hexdigest())


@dataclass
class Outcome:
    status: int
    body: bytes
    replayed: bool = False
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, result), fresh outcomes only
    unknown: Counter[str] = field(default_factory=Counter)
    # accepted events whose request_id names an experiment's answer: (experiment, variant, version, type)
    attributed: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)


class EventSink:
    """Checks and appends posted events to the holder's `EventStore` (the one the overlay tails), created on first
    use in a worker thread (opening the store may do IO). One per app, kept in `app.state.events`."""

    def __init__(self, holder: ModelHolder, idempotency_ttl_s: float = 86_400.0) -> None:
        self.holder = holder
        self.idempotency_ttl_s = idempotency_ttl_s
        self._requests: RequestLog | None = None
        self._purged_at = time.monotonic()

    def store(self) -> EventStore:
        return self.holder.events()

    def requests(self) -> RequestLog:
        if self._requests is None:
            self._requests = RequestLog(self.store().tables)
        return self._requests

    def ingest(
        self, sent: list[EventIn], received_us: int, idem: Idempotency | None = None, sender: str | None = None
    ) -> Outcome:
        """Check every event, append the valid ones (committed, with the idempotency record when `idem`, each row
        naming `sender`), and encode the answer; or the recorded outcome of an earlier attempt with the same key."""
        checked = [_checked(e, received_us) for e in sent]
        valid = [c for c in checked if isinstance(c, Event)]
        fresh = Outcome(202, b"")

        def answer(stored: AppendResult) -> tuple[int, bytes]:
            response, fresh.counts, fresh.unknown = _respond(self.holder.state, sent, checked, stored)
            fresh.attributed = _attributed(checked, stored)
            fresh.body = msgspec.json.encode(response)
            return 202, fresh.body

        try:
            if idem is None:
                answer(self.store().append(valid, key_name=sender))
                return fresh
            for _ in range(2):  # a record purged between the claim and the look-up: claim again, once
                try:
                    answer_hook = self.requests().hook(idem.scope, idem.key, idem.fingerprint, answer)
                    self.store().append(valid, hook=answer_hook, key_name=sender)
                    self._purge()
                    return fresh
                except AlreadyRecorded:
                    recorded = self.requests().lookup(idem.scope, idem.key)
                    if recorded is None:
                        continue
                    if recorded.fingerprint != idem.fingerprint:
                        raise IdempotencyKeyReused() from None
                    return Outcome(recorded.status, recorded.body, replayed=True)
            raise StoreDown(f"Idempotency-Key {idem.key!r} was claimed and purged twice", uncertain=False)
        except CommitUncertain as exc:
            raise StoreDown(f"storing {len(valid)} events: {exc}", uncertain=True) from exc
        except (IdempotencyKeyReused, StoreDown):
            raise
        except Exception as exc:  # TableStoreError, or the store could not even be opened (a bad URL, no driver)
            raise StoreDown(f"storing {len(valid)} events failed: {exc}", uncertain=False) from exc

    def _purge(self) -> None:
        if time.monotonic() - self._purged_at < PURGE_EVERY_S:
            return
        self._purged_at = time.monotonic()
        try:
            self.requests().purge(now_us() - int(self.idempotency_ttl_s * 1e6))
        except Exception as exc:  # the events are committed: a failed purge is retried later
            log.warning("purging expired idempotency records failed: %s", exc)


def sender_of(credential: Credential) -> str:
    """What `interaction_events.key_name` records for a request's events (the module docstring says why)."""
    if credential.kind == "answer" and credential.claims is not None:
        return f"answer:{credential.claims.user_id}"
    return credential.name  # a write key's name, or `open`


def _checked(e: EventIn, received_us: int) -> Event | str:
    try:
        return check_event(
            user_id=e.user_id,
            game_id=e.game_id,
            type=e.type,
            value=e.value,
            timestamp=e.timestamp,
            event_id=e.event_id,
            request_id=e.request_id,
            received_us=received_us,
        )
    except EventRejected as exc:
        return str(exc)


def _sent_id(e: EventIn) -> str | None:
    eid = e.event_id
    return eid if isinstance(eid, str) and 0 < len(eid) <= MAX_ID else None


async def post_events(
    sink: EventSink,
    sent: list[EventIn],
    key: str = "open",
    idem: Idempotency | None = None,
    sender: str | None = None,
) -> Outcome:
    """Store the posted events (in a worker thread) and answer per event, in request order; a 503 when the append
    failed (its text says whether anything may be stored). `key`: the credential's name, for the metrics; `sender`:
    what the rows record as their sender (`sender_of`; None: `key`)."""
    try:
        outcome = await anyio.to_thread.run_sync(sink.ingest, sent, now_us(), idem, key if sender is None else sender)
    except StoreDown as exc:
        log.warning("POST /events: %s", exc)
        raise (EventStoreCommitUnknown if exc.uncertain else EventStoreUnavailable)() from exc
    by_key: Counter[str] = Counter()
    for (kind, result), n in outcome.counts.items():
        telemetry.EVENTS.labels(kind, result).inc(n)
        by_key[result] += n
    for result, n in by_key.items():
        EVENTS_BY_KEY.labels(key, result).inc(n)
    for kind, n in outcome.unknown.items():
        telemetry.EVENTS_UNKNOWN_GAME.labels(kind).inc(n)
    for labels, n in outcome.attributed.items():
        telemetry.EVENTS_ATTRIBUTED.labels(*labels).inc(n)
    return outcome


def _attributed(checked: list[Event | str], stored: AppendResult) -> Counter[tuple[str, str, str, str]]:
    """The accepted events whose request id carries an experiment (`experiment_ids`), by experiment, variant, the
    version that answered and type: attributed from the id alone, whichever worker gave the answer."""
    out: Counter[tuple[str, str, str, str]] = Counter()
    flags = iter(stored.accepted)
    for c in checked:
        if isinstance(c, str) or not next(flags) or not c.request_id or "~" not in c.request_id:
            continue
        if (a := experiment_ids.parse(c.request_id)) is not None:
            out[a.experiment, a.arm, a.version, c.type] += 1
    return out


def _respond(
    current: ServingState | None, sent: list[EventIn], checked: list[Event | str], stored: AppendResult
) -> tuple[EventsResponse, Counter[tuple[str, str]], Counter[str]]:
    """The answer, the counts by (type, result) and the accepted events for unknown games by type. One model (read
    once) answers "unknown game" for the whole request."""
    results, counts, unknown = _results(current, sent, checked, stored)
    response = EventsResponse(
        accepted=sum(n for (_, r), n in counts.items() if r == "accepted"),
        duplicate=sum(n for (_, r), n in counts.items() if r == "duplicate"),
        rejected=sum(n for (_, r), n in counts.items() if r == "rejected"),
        unknown_game=sum(unknown.values()),
        last_seq=stored.last_seq,
        model_version=current.version if current is not None else None,
        results=results,
    )
    return response, counts, unknown


def _results(
    current: ServingState | None, sent: list[EventIn], checked: list[Event | str], stored: AppendResult
) -> tuple[list[EventResult], Counter[tuple[str, str]], Counter[str]]:
    """Per event its result; counts by (type, result); accepted events for unknown games by type. Before the first
    model is loaded the server cannot tell unknown games (`unknown_game: null`, not counted)."""
    model = current.model if current is not None else None
    results: list[EventResult] = []
    counts: Counter[tuple[str, str]] = Counter()
    unknown: Counter[str] = Counter()
    flags = iter(stored.accepted)
    for e, c in zip(sent, checked, strict=True):
        if isinstance(c, str):
            results.append(EventResult("rejected", _sent_id(e), reason=c))
            counts[e.type, "rejected"] += 1
            continue
        new = next(flags)
        flag = None if model is None else model.item_index(c.game_id) < 0
        kind = "accepted" if new else "duplicate"
        results.append(EventResult(kind, c.event_id, unknown_game=flag))
        counts[c.type, kind] += 1
        if new and flag:
            unknown[c.type] += 1
    return results, counts, unknown
