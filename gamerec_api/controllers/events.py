"""POST /events: players' feedback in, committed to `interaction_events` before the 202 goes out.

Who may post, what and how fast is `event_auth` (a guard: before the body is read). A request carries 1..1,000
events. The body is decoded strictly (`StrictJSONRequest`; a wrong type or an unknown
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

from typing import Any

from litestar import Controller, MediaType, Request, Response, post
from litestar.exceptions import (
    NotAuthorizedException,
    PermissionDeniedException,
    ServiceUnavailableException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec

from gamerec_api import ingest
from gamerec_api.controllers.common import BodyTooLarge
from gamerec_api.controllers.strict_json import StrictJSONRequest, UnsupportedMediaType
from gamerec_api.event_auth import RateLimited, events_guard
from gamerec_api.ingest import (
    EventSink,
    EventStoreCommitUnknown,
    EventStoreUnavailable,
    Idempotency,
    IdempotencyKeyReused,
)
from gamerec_api.schemas import MAX_EVENTS, EventsRequest, EventsResponse
from gamerec_assets.recsys.feedback import EVENT_TYPES

__all__ = ["MAX_EVENTS_BODY", "EventSink", "EventStoreUnavailable", "EventsController", "EventsJSONRequest"]
# 1,000 events with 128-character ASCII ids and every optional field take ~550 kB of JSON: room to spare, while
# the app's 64 kB limit stays on every other route.
MAX_EVENTS_BODY = 1024 * 1024
_KNOWN_TYPES = ", ".join(EVENT_TYPES)


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


class EventsController(Controller):
    path = "/events"
    tags = ("events",)
    request_class = EventsJSONRequest
    guards = (events_guard,)  # before the body is read: no credential, no work

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
            "play, purchase and like join the user's history; dislike hides the game from that user. "
            "Needs `Authorization: Bearer <credential>`: a write key (`gamerec keys create NAME`; 401 without a "
            "valid one) or an answer's `event_token` (click, impression and play events of that answer's user and "
            "games only; 403 otherwise). Too many events per key or per user: 429 with `Retry-After`. An "
            "`Idempotency-Key` header (1..128 printable ASCII characters) makes a retry return the first attempt's "
            "status and body (`Idempotency-Replayed: true`) when that attempt was stored, and store the events once "
            "when it was not; the key is scoped by the credential and kept a day."
        ),
        security=[{"bearer": []}],
        raises=[
            ValidationException,
            NotAuthorizedException,
            PermissionDeniedException,
            BodyTooLarge,
            UnsupportedMediaType,
            RateLimited,
            IdempotencyKeyReused,
            EventStoreUnavailable,
            EventStoreCommitUnknown,
            ServiceUnavailableException,
        ],
        responses={202: ResponseSpec(EventsResponse, description="Per-event results, in request order")},
        request_max_body_size=MAX_EVENTS_BODY,
    )
    async def post_events(self, data: EventsRequest, request: Request) -> Response[bytes]:
        """The checks (~10 µs an event) run in the worker thread with the append, so a batch of 1,000 does not
        hold the event loop for 10 ms; the loop only checks the credential's scope and limits."""
        state, credential = request.app.state, request.state.credential
        state.event_auth.authorize(credential, data.events)  # 403: an answer token used beyond its answer
        header = request.headers.get("idempotency-key")
        idem = Idempotency.of(header, credential.scope, await request.body()) if header is not None else None
        state.event_auth.limit(credential, data.events)  # 429 with Retry-After
        sender = ingest.sender_of(credential)  # stored with the events: the sensor counts per sender
        outcome = await ingest.post_events(state.events, data.events, credential.name, idem, sender)
        headers = {"Idempotency-Replayed": "true"} if outcome.replayed else {}
        return Response(outcome.body, status_code=outcome.status, media_type=MediaType.JSON, headers=headers)
