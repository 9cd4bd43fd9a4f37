"""Request and response bodies as msgspec Structs: validated on the way in, the OpenAPI schema on the way out.

`source` values (top level of a recommendation response, and per item):
- `item_cf`: item-based collaborative filtering over a known user's play history (plus any liked games);
- `basket`: item-CF over the liked games only, for a user without history (cold start);
- `popular`: the most played games the user has not seen (no history and no liked games, or popularity fill
  after the item-CF neighbourhood ran out; such items have no `because`, and their score is the game's plays
  relative to the most played game's in the model's data, in (0, 1]: not comparable with item-CF scores);
- `batch`: precomputed offline by the `batch_recommendations` asset (GET /users/{id}/recommendations), served only
  when the table was made by the served model version;
- `computed`: the same top-10 computed now from the served version, because the table holds another version's
  answers for this user (or none, or the table store is down).

User ids are strings (real logs name users by strings); a request may send an integer, which is the same user as
its decimal string (`7` and `"7"`). Answers always carry the string form.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from gamerec_assets.recsys import model_artifact

MAX_ID = 2**63 - 1  # ids are int64 in the tables and the model
GameId = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID, description="game id (the catalogue's)", examples=[3498])]
MAX_USER_ID = 128  # characters of a user id
UserIdText = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_USER_ID)]
UserIdNumber = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
UserId = Annotated[
    UserIdText | UserIdNumber,
    msgspec.Meta(
        description="user id: a string of 1..128 characters, or an integer (the same user as its decimal string); "
        "unknown ids are guests",
        examples=["7", 7],
    ),
]
K = Annotated[int, msgspec.Meta(ge=1, le=100, description="how many games to return", examples=[10])]
Variant = Literal["production", "challenger", "interleave"]
Source = Literal["item_cf", "basket", "popular"]
ItemSource = Literal["item_cf", "popular"]


FilterValues = Annotated[list[Annotated[str, msgspec.Meta(max_length=100)]], msgspec.Meta(max_length=100)]
FilterIds = Annotated[list[GameId], msgspec.Meta(max_length=1000)]


class ValueFilter(msgspec.Struct, forbid_unknown_fields=True):
    """One list attribute of a game: `any` (at least one of these values; omitted or empty: no condition) and
    `none` (none of them). Values match case-insensitively; a value no game has matches nothing."""

    any: FilterValues = msgspec.field(default_factory=list)
    none: FilterValues = msgspec.field(default_factory=list)


class GameFilter(msgspec.Struct, forbid_unknown_fields=True):
    """Which games an answer may hold; every given condition must hold. Applied inside the top-k selection (and the
    popularity fill), so an answer still has k games whenever k pass. `released_after` / `released_before`:
    strictly after / before that day (a game without a release date fails either); `exclude`: never these game
    ids; `only`: only these (unknown ids are ignored); `new_only`: only games nobody has played yet in the model's
    data (those `similar` marks `new`). Unknown attributes are a 400 that lists the known ones."""

    genres: ValueFilter | None = None
    tags: ValueFilter | None = None
    platforms: ValueFilter | None = None
    released_after: dt.date | None = None
    released_before: dt.date | None = None
    exclude: FilterIds = msgspec.field(default_factory=list)
    only: FilterIds | None = None
    new_only: bool = False


class Boost(msgspec.Struct, forbid_unknown_fields=True):
    """Multiply the score of every game `filter` admits by `factor` (0.001..100; below 1 sinks them). A game
    matching several boosts gets the product of their factors. (`ge`, not `gt=0`: schemathesis 3.x's negative
    tests assume draft-4's `exclusiveMinimum`, which needs a `minimum` beside it.)"""

    filter: GameFilter
    factor: Annotated[float, msgspec.Meta(ge=0.001, le=100, examples=[1.5])]


class PredictRequest(msgspec.Struct, forbid_unknown_fields=True):
    """POST /predict body. Unknown fields are rejected so a typo ("liked_games") does not pass silently, and types
    are strict (decoded by `controllers.strict_json.StrictJSONRequest`): `"k": "10"` or `"user_id": 1.0` is a 400."""

    user_id: UserId
    k: K = 10
    liked_game_ids: Annotated[
        list[GameId],
        msgspec.Meta(
            max_length=500,
            description="games the user says they like (cold start)",
            examples=[[3498, 3328]],  # Grand Theft Auto V, The Witcher 3: Wild Hunt
        ),
    ] = msgspec.field(default_factory=list)
    filter: Annotated[
        GameFilter | None,
        msgspec.Meta(
            description="which games the answer may hold (every given condition must hold); unknown attributes are "
            "a 400 that lists the known ones",
            examples=[{"genres": {"any": ["RPG", "Adventure"], "none": ["Sports"]}, "platforms": {"any": ["PC"]}}],
        ),
    ] = None
    boost: Annotated[
        list[Boost],
        msgspec.Meta(
            max_length=20,
            description="score multipliers for the games a filter admits, applied inside the ranking (item-CF "
            "scores and the popularity fill alike)",
            examples=[[{"filter": {"released_after": "2020-01-01"}, "factor": 1.5}]],
        ),
    ] = msgspec.field(default_factory=list)


class GameRef(msgspec.Struct, frozen=True):
    game_id: int
    name: str


class GameCard(msgspec.Struct, frozen=True, gc=False):
    """One game as the API shows it: the API's own type, so the stored format (`model_artifact.GameCard`, the
    version's `cards.jsonl`) can change without changing a response. Converted once per version at load
    (`cards_of`) and reused by every response. `gc=False`: a card never takes part in a reference cycle, and
    50,000 cards the cyclic collector need not walk are 50,000 fewer objects in every full collection."""

    game_id: int
    name: str
    slug: str
    genres: list[str]
    rating: float
    released: str | None
    background_image: str


def cards_of(stored: tuple[model_artifact.GameCard, ...]) -> tuple[GameCard, ...]:
    """The API's cards for a version's stored ones, in the same (model item) order: at load time, never per
    request."""
    return tuple(
        GameCard(c.game_id, c.name, c.slug, c.genres, c.rating, c.released, c.background_image) for c in stored
    )


class PredictItem(msgspec.Struct):
    game_id: int
    name: str
    score: float
    source: ItemSource
    because: list[int]
    genres: list[str]
    rating: float
    background_image: str


class PredictResponse(msgspec.Struct):
    user_id: str
    model_version: str
    source: Source
    items: list[PredictItem]
    because_games: list[GameRef]  # names of every id that appears in some item's `because`
    # the answer's id and the token that lets a browser post its events (`answer_tokens`); always set by the API
    request_id: str = ""
    event_token: str = ""
    # which model answered: `production`, or during an online experiment `challenger` (A/B) or `interleave`
    variant: Variant = "production"


class SimilarItem(msgspec.Struct):
    game_id: int
    name: str
    score: float
    genres: list[str]
    rating: float
    background_image: str
    new: bool = False  # nobody has played it yet: the model placed it by its attributes (genres, tags, name)


class SimilarResponse(msgspec.Struct):
    game: GameCard
    model_version: str
    items: list[SimilarItem]
    new_game: bool = False  # the game has no plays in the model's data: its neighbours come from its attributes
    # the answer's id and the token that lets a browser post its events (`answer_tokens`); always set by the API
    request_id: str = ""
    event_token: str = ""
    variant: Variant = "production"  # `challenger` when an A/B experiment's challenger answered


class SearchResponse(msgspec.Struct):
    search: str
    items: list[GameCard]


class UserSummary(msgspec.Struct):
    user_id: str
    games_played: int


class UsersResponse(msgspec.Struct):
    """`total`: users whose id starts with `prefix` (every user for an empty prefix), in the served version.
    `interaction_source`: where the version's play logs came from, as its manifest records it: `simulated`, or
    `file:<file name>` / `steam:<file name>` (an interaction file, the steam-200k log; no directories); null when
    the version does not record it. `simulated`: whether the players are made up (null: unknown).
    `catalog_source`: where its catalogue came from: `rawg` or `file:<file name>` (null: not recorded)."""

    model_version: str
    prefix: str
    total: int
    items: list[UserSummary]
    interaction_source: str | None
    simulated: bool | None
    catalog_source: str | None = None


class HistoryResponse(msgspec.Struct):
    user_id: str
    model_version: str
    items: list[GameCard]


class UserHistoryResponse(HistoryResponse):
    """The history the answers are scored from: the served version's, minus disliked games, plus the games played
    since (realtime events), listed after the version's games and named in `realtime_game_ids`."""

    realtime_game_ids: list[int] = msgspec.field(default_factory=list)


class BatchItem(msgspec.Struct):
    rank: int
    game_id: int
    name: str
    score: float
    source: ItemSource
    genres: list[str]
    rating: float
    background_image: str


class BatchResponse(msgspec.Struct):
    """`model_version`: always the served version. `source`: `batch` (the table's rows, made by that version) or
    `computed` (made now by that version, since the table's rows for this user are another version's, named in
    `batch_model_version`, or missing)."""

    user_id: str
    model_version: str
    source: Literal["batch", "computed"]
    items: list[BatchItem]
    batch_model_version: str | None = None
    # the answer's id and the token that lets a browser post its events (`answer_tokens`); always set by the API
    request_id: str = ""
    event_token: str = ""


class Health(msgspec.Struct):
    status: Literal["ok"]


class Ready(msgspec.Struct):
    """`loading`: the first load runs; `unavailable`: nothing to load yet (no production model or tables);
    `failed`: the first load failed (retried at the next poll). The detail is a fixed sentence: the reason is in
    the server log and GET /admin/status."""

    status: Literal["ready", "loading", "unavailable", "failed"]
    model_version: str | None
    detail: str = ""


class AdminStatus(msgspec.Struct):
    """GET /admin/status: the readiness status with the holder's full detail (exception text included)."""

    status: Literal["ready", "loading", "unavailable", "failed"]
    model_version: str | None
    detail: str


class ReloadResult(msgspec.Struct):
    changed: bool
    previous_version: str | None
    model_version: str | None


class ForgetResult(msgspec.Struct):
    """DELETE /admin/users/{id}: the forget is recorded (`forget_seq`; every worker masks the user within its
    events poll) and the user's rows erased: `deleted` counts rows per table (`interaction_events` up to
    `events_until_seq`, `user_logs`, `batch_recommendations`, ...)."""

    user_id: str
    forget_seq: int
    events_until_seq: int
    deleted: dict[str, int]
    model_version: str | None  # the version this worker serves, in which the user is now masked


# -- POST /events (players' feedback) ----------------------------------------------------------------------------

MAX_EVENTS = 1000  # events per POST /events request
# feedback.EVENT_TYPES spelled out for the schema (tests/gamerec_api/test_events.py checks that they agree)
EventType = Literal["impression", "click", "view", "wishlist", "play", "purchase", "like", "dislike"]
EventResultKind = Literal["accepted", "duplicate", "rejected"]


class EventIn(msgspec.Struct, forbid_unknown_fields=True):
    """One event as posted. The schema checks the types (strictly: `"game_id": "3"` is a 400 for the request);
    values are checked per event by `recsys.feedback.check_event`, so one bad event (a too-long id, a malformed or
    far-future timestamp, game id 0) is `rejected` with its reason while the others are stored."""

    user_id: Annotated[
        str | int,
        msgspec.Meta(description="a string of 1..128 characters, or an integer (the user of its decimal string)"),
    ]
    game_id: Annotated[
        int, msgspec.Meta(description="game id (the catalogue's, positive); unknown games are stored too")
    ]
    type: Annotated[
        EventType,
        msgspec.Meta(
            description="impression, click (measure the recommendations), play, purchase, like (join the user's "
            "history), dislike (never show that game to the user again)"
        ),
    ]
    value: Annotated[
        float | None, msgspec.Meta(description="optional amount, e.g. hours played for `play` (|value| <= 1e9)")
    ] = None
    timestamp: Annotated[
        str | None,
        msgspec.Meta(
            description="RFC 3339 with a time zone, e.g. 2026-12-01T12:00:00Z; default the server's receive time; "
            "more than 300 s in the future is rejected",
            examples=["2026-12-01T12:00:00Z"],
        ),
    ] = None
    event_id: Annotated[
        str | None,
        msgspec.Meta(
            description="the client's id for this event (1..128 characters): a retry with the same id is a "
            "`duplicate`, never counted twice. Without one the server assigns a fresh id"
        ),
    ] = None
    request_id: Annotated[
        str | None, msgspec.Meta(description="the recommendation answer this event reacts to (1..128 characters)")
    ] = None


class EventsRequest(msgspec.Struct, forbid_unknown_fields=True):
    events: Annotated[list[EventIn], msgspec.Meta(min_length=1, max_length=MAX_EVENTS)]


class EventResult(msgspec.Struct):
    """Per posted event, in request order. `event_id`: the stored id (the server's when none was sent; for a
    rejected event the id sent, when it was a usable one). `unknown_game`: the served model does not know the
    game (it is stored anyway); null when no model is loaded yet (unknowable) and for rejected events."""

    result: EventResultKind
    event_id: str | None
    reason: str | None = None
    unknown_game: bool | None = None


class EventsResponse(msgspec.Struct):
    """`last_seq`: the newest seq of `interaction_events` after this request's append (0 when nothing is stored
    yet); every accepted event has a seq <= last_seq. `model_version`: the served model the unknown-game check
    used (null: none loaded yet, so `unknown_game` is null)."""

    accepted: int
    duplicate: int
    rejected: int
    unknown_game: int
    last_seq: int
    model_version: str | None
    results: list[EventResult]
