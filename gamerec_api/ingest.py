"""Players' feedback in: check each posted event, append the valid ones to `interaction_events`, build the answer.

The checks (`recsys.feedback.check_event`, ~10 µs an event) and the append (`EventStore.append`: one committed
transaction, all or nothing) run in a worker thread, so the event loop never waits on the database nor holds a
batch of 1,000 for 10 ms; the loop only assembles the per-event results and counts them
(`gamerec_events_total` by type and result, `gamerec_events_unknown_game_total` by type). A failed append is a
503 (`EventStoreUnavailable`) and stores nothing. POST /events (`controllers.events`) calls `post_events`.
"""

from __future__ import annotations

import logging
from collections import Counter

import anyio.to_thread
from litestar.exceptions import ServiceUnavailableException

from gamerec_api import telemetry
from gamerec_api.holder import ModelHolder
from gamerec_api.schemas import EventIn, EventResult, EventsResponse
from gamerec_api.state import ServingState
from gamerec_assets.recsys.feedback import MAX_ID, Event, EventRejected, check_event, now_us
from gamerec_assets.store.event_store import AppendResult, EventStore

log = logging.getLogger("gamerec_api")


class EventStoreUnavailable(ServiceUnavailableException):
    detail = "the event store is unavailable: no event of this request was stored; retry later"


class StoreDown(RuntimeError):
    """The append failed: nothing of the request is stored (the message names the cause, for the log only)."""


class EventSink:
    """Checks and appends posted events to the holder's `EventStore` (the one the overlay tails), created on first
    use in a worker thread (opening the store may do IO). One per app, kept in `app.state.events`."""

    def __init__(self, holder: ModelHolder) -> None:
        self.holder = holder

    def store(self) -> EventStore:
        return self.holder.events()

    def ingest(self, sent: list[EventIn], received_us: int) -> tuple[list[Event | str], AppendResult]:
        """Check every event (an Event, or the reason it is rejected) and append the valid ones, committed."""
        checked = [_checked(e, received_us) for e in sent]
        valid = [c for c in checked if isinstance(c, Event)]
        try:
            return checked, self.store().append(valid)
        except Exception as exc:  # TableStoreError, or the store could not even be opened (a bad URL, no driver)
            raise StoreDown(f"storing {len(valid)} events failed: {exc}") from exc


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


async def post_events(sink: EventSink, sent: list[EventIn]) -> EventsResponse:
    """Store the posted events (in a worker thread) and answer per event, in request order; EventStoreUnavailable
    (503) when the append failed."""
    try:
        checked, stored = await anyio.to_thread.run_sync(sink.ingest, sent, now_us())
    except StoreDown as exc:
        log.warning("POST /events: %s", exc)
        raise EventStoreUnavailable from exc
    current = sink.holder.state  # read once: one model answers "unknown game" for the whole request
    results, counts, unknown = _results(current, sent, checked, stored)
    for (kind, result), n in counts.items():
        telemetry.EVENTS.labels(kind, result).inc(n)
    for kind, n in unknown.items():
        telemetry.EVENTS_UNKNOWN_GAME.labels(kind).inc(n)
    return EventsResponse(
        accepted=sum(n for (_, r), n in counts.items() if r == "accepted"),
        duplicate=sum(n for (_, r), n in counts.items() if r == "duplicate"),
        rejected=sum(n for (_, r), n in counts.items() if r == "rejected"),
        unknown_game=sum(unknown.values()),
        last_seq=stored.last_seq,
        model_version=current.version if current is not None else None,
        results=results,
    )


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
