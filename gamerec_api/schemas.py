"""Request and response bodies as msgspec Structs: validated on the way in, the OpenAPI schema on the way out.

`source` values (top level of a recommendation response, and per item):
- `item_cf`: item-based collaborative filtering over a known user's play history (plus any liked games);
- `basket`: item-CF over the liked games only, for a user without history (cold start);
- `popular`: the most played games the user has not seen (no history and no liked games, or popularity fill
  after the item-CF neighbourhood ran out; such items have score 0.0 and no `because`);
- `batch`: precomputed offline by the `batch_recommendations` asset (GET /users/{id}/recommendations).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

MAX_ID = 2**63 - 1  # ids are int64 in the tables and the model
GameId = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID, description="RAWG game id", examples=[3498])]
UserId = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID, description="user id (0 and unknown ids: a guest)", examples=[7])]
K = Annotated[int, msgspec.Meta(ge=1, le=100, description="how many games to return", examples=[10])]
Source = Literal["item_cf", "basket", "popular"]
ItemSource = Literal["item_cf", "popular"]


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


class GameRef(msgspec.Struct, frozen=True):
    game_id: int
    name: str


class GameCard(msgspec.Struct, frozen=True):
    """What the page shows for one game; built once per game at load time and reused by every response."""

    game_id: int
    name: str
    slug: str
    genres: list[str]
    rating: float
    released: str | None
    background_image: str


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
    user_id: int
    model_version: str
    source: Source
    items: list[PredictItem]
    because_games: list[GameRef]  # names of every id that appears in some item's `because`


class SimilarItem(msgspec.Struct):
    game_id: int
    name: str
    score: float
    genres: list[str]
    rating: float
    background_image: str


class SimilarResponse(msgspec.Struct):
    game: GameCard
    model_version: str
    items: list[SimilarItem]


class SearchResponse(msgspec.Struct):
    search: str
    items: list[GameCard]


class UserSummary(msgspec.Struct):
    user_id: int
    games_played: int


class UsersResponse(msgspec.Struct):
    total: int
    items: list[UserSummary]


class HistoryResponse(msgspec.Struct):
    user_id: int
    items: list[GameCard]


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
    user_id: int
    model_version: str
    source: Literal["batch"]
    items: list[BatchItem]


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
