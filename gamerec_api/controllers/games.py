"""Game look-ups for the page: search by name, one game's card, and its most similar games."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.exceptions import ValidationException
from litestar.params import Parameter

from gamerec_api import answers
from gamerec_api.controllers.common import ERRORS_READ, ModelLoading, game_index, holder_of, serving
from gamerec_api.controllers.strict_json import field_key, with_known_fields
from gamerec_api.schemas import MAX_ID, GameCard, GameFilter, SearchResponse, SimilarResponse

GamePath = Annotated[int, Parameter(ge=0, le=MAX_ID, description="game id (the catalogue's)")]
_FILTER = msgspec.json.Decoder(GameFilter, strict=True)


def decode_filter(text: str | None) -> GameFilter | None:
    """The `filter` query parameter: the JSON of /predict's `filter`, decoded as strictly (400 with the field, and
    for an unknown attribute the known ones)."""
    if not text:
        return None
    try:
        return _FILTER.decode(text)
    except msgspec.ValidationError as exc:
        message, key = field_key(str(exc))
        entry = {"message": with_known_fields(message, key, GameFilter), "source": "query", "key": "filter"}
        if key:
            entry["key"] = f"filter.{key}"
        raise ValidationException(detail="Validation failed for the filter parameter", extra=[entry]) from exc
    except msgspec.DecodeError as exc:
        raise ValidationException(detail=f"the filter parameter is not valid JSON: {exc}") from exc


class GamesController(Controller):
    path = "/games"
    tags = ("games",)

    @get("", summary="Search games by name", raises=[ModelLoading])
    async def search(
        self,
        state: State,
        search: Annotated[str, Parameter(max_length=100, description="case-insensitive substring of the name")] = "",
        limit: Annotated[int, Parameter(ge=1, le=100)] = 20,
    ) -> SearchResponse:
        """Games the model knows, names starting with the text first, then by popularity (empty: most popular)."""
        return SearchResponse(search=search, items=serving(state).search(search, limit))

    @get("/{game_id:int}", summary="One game", raises=ERRORS_READ)
    async def game(self, state: State, game_id: GamePath) -> GameCard:
        current = serving(state)
        return current.cards[game_index(current, game_id)]

    @get("/{game_id:int}/similar", summary="Most similar games (item-item neighbours)", raises=ERRORS_READ)
    async def similar(
        self,
        state: State,
        game_id: GamePath,
        k: Annotated[int, Parameter(ge=1, le=100)] = 10,
        user_id: Annotated[
            str, Parameter(max_length=128, description="the player shown the answer: its event_token is theirs")
        ] = "",
        game_filter: Annotated[
            str | None,
            Parameter(
                query="filter",
                max_length=20_000,
                description="JSON of a `filter` as /predict takes it, e.g. "
                '`{"genres": {"any": ["RPG"]}, "released_after": "2015-01-01"}`: only neighbours it admits',
            ),
        ] = None,
    ) -> SimilarResponse:
        """May return fewer than k games: only neighbours the model stored (no popularity fill), and with a `filter`
        only those it admits. A game nobody has played (`new_game`) has neighbours when the served model is a
        content + collaborative hybrid."""
        return answers.similar(
            holder_of(state), game_id, k, state.event_auth.tokens, user_id, decode_filter(game_filter)
        )
