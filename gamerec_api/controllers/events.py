"""POST /events: players' feedback in, committed to `interaction_events` before the 202 goes out.

A request carries 1..1,000 events. The body is decoded strictly (`StrictJSONRequest`; a wrong type or an unknown
event type is a 400 for the whole request, the message naming the known types); each event is then checked on its
own by `recsys.feedback.check_event`, so a bad one is `rejected` with its reason and the others go on. The valid
ones are appended in one committed transaction (`EventStore.append`, in a worker thread: the event loop never
waits on the database), and only then does the answer say `accepted` or `duplicate` (the `event_id` was stored
before: a retry never counts twice). A failing database is a 503 and stores nothing (the append is all or
nothing); a client that retries after a 503 or a lost answer should send its own event ids, so the retry is
deduplicated.

Games the served model does not know are stored like any other (a site adds games before the catalogue refresh)
and flagged `unknown_game`, counted in `gamerec_events_unknown_game_total`. Before the first model is loaded the
server cannot tell: events are still stored, with `unknown_game: null`, and are not counted as unknown.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, post
from litestar.exceptions import ServiceUnavailableException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from gamerec_api import telemetry
from gamerec_api.controllers.common import BodyTooLarge
from gamerec_api.controllers.strict_json import StrictJSONRequest, UnsupportedMediaType
from gamerec_api.holder import ModelHolder
from gamerec_api.schemas import MAX_EVENTS, EventIn, EventResult, EventsRequest, EventsResponse
from gamerec_assets.recsys.feedback import EVENT_TYPES, MAX_ID, Event, EventRejected, check_event, now_us
from gamerec_assets.store.event_store import AppendResult, EventStore

log = logging.getLogger("gamerec_api")
# 1,000 events with 128-character ASCII ids and every optional field take ~550 kB of JSON: room to spare, while
# the app's 64 kB limit stays on every other route.
MAX_EVENTS_BODY = 1024 * 1024
_KNOWN_TYPES = ", ".join(EVENT_TYPES)


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


class EventsJSONRequest(StrictJSONRequest):
    """The strict decode, with an unknown event type's message naming the known ones (msgspec says only
    "Invalid enum value 'x'")."""

    __slots__ = ()

    def _decode(self, body: bytes) -> Any:
        try:
            return super()._decode(body)
        except ValidationException as exc:
            for entry in exc.extra if isinstance(exc.extra, list) else []:
                if isinstance(entry, dict) and str(entry.get("key", "")).endswith(".type"):
                    entry["message"] = f"{entry['message']}: unknown event type; known types: {_KNOWN_TYPES}"
            raise


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


class EventsController(Controller):
    path = "/events"
    tags = ("events",)
    request_class = EventsJSONRequest

    @post(
        "",
        status_code=202,
        summary="Record players' feedback events",
        description=(
            f"1..{MAX_EVENTS} events per request (body up to {MAX_EVENTS_BODY // 1024} KiB). Each is checked on "
            "its own: the answer lists, in request order, `accepted` (stored now), `duplicate` (its `event_id` was "
            "stored before: a retry never counts twice) or `rejected` with the `reason` (malformed or far-future "
            "timestamp, too-long id, game id 0...). Accepted events are committed to the append-only "
            "`interaction_events` table before this answer is sent; a 503 means nothing of the request was "
            "stored. Events for games the served model does not know are stored too and flagged `unknown_game`. "
            "A wrong type, an unknown event type or more than 1,000 events is a 400 for the whole request. "
            "play, purchase and like join the user's history; dislike hides the game from that user."
        ),
        raises=[ValidationException, BodyTooLarge, UnsupportedMediaType, EventStoreUnavailable],
        responses={202: ResponseSpec(EventsResponse, description="Per-event results, in request order")},
        request_max_body_size=MAX_EVENTS_BODY,
    )
    async def post_events(self, data: EventsRequest, request: Request) -> EventsResponse:
        """The checks (~10 µs an event) run in the worker thread with the append, so a batch of 1,000 does not
        hold the event loop for 10 ms; the loop only assembles the answer."""
        sink: EventSink = request.app.state.events
        try:
            checked, stored = await anyio.to_thread.run_sync(sink.ingest, data.events, now_us())
        except StoreDown as exc:
            log.warning("POST /events: %s", exc)
            raise EventStoreUnavailable from exc
        holder: ModelHolder = request.app.state.holder
        current = holder.state  # read once: one model answers "unknown game" for the whole request
        model = current.model if current is not None else None
        results: list[EventResult] = []
        counts: Counter[tuple[str, str]] = Counter()
        unknown: Counter[str] = Counter()
        flags = iter(stored.accepted)
        for sent, c in zip(data.events, checked, strict=True):
            if isinstance(c, str):
                results.append(EventResult("rejected", _sent_id(sent), reason=c))
                counts[sent.type, "rejected"] += 1
                continue
            new = next(flags)
            flag = None if model is None else model.item_index(c.game_id) < 0
            kind = "accepted" if new else "duplicate"
            results.append(EventResult(kind, c.event_id, unknown_game=flag))
            counts[c.type, kind] += 1
            if new and flag:
                unknown[c.type] += 1
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
