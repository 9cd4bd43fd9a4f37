"""POST /predict: item-CF for known users, basket (liked games) for cold starts, popularity otherwise."""

from __future__ import annotations

from litestar import Controller, MediaType, Request, post
from litestar.exceptions import ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.response.base import ASGIResponse

from gamerec_api import answers
from gamerec_api.controllers.common import BodyTooLarge, ModelLoading
from gamerec_api.controllers.strict_json import StrictJSONRequest, UnsupportedMediaType
from gamerec_api.schemas import PredictRequest, PredictResponse


class PredictController(Controller):
    path = "/predict"
    tags = ("predict",)
    request_class = StrictJSONRequest  # LeanBodyRequest's body reader, a strict typed decode, 415 for non-JSON

    @post(
        "",
        status_code=200,
        summary="Recommend games for a user",
        description=(
            "`source`: `item_cf` (the user's play history, plus liked games), `basket` (liked games only: a user "
            "without history), `popular` (nothing known, or the item-CF neighbourhood yielded nothing). Per item, "
            "`source` tells item-CF from popularity fill (empty `because`; score: the game's plays relative to the "
            "most played game's in the model's data, in (0, 1], not comparable with item-CF scores). Never returns "
            "a played or liked game, nor one the user disliked (realtime events). `because`: up to 3 played/liked "
            "game ids most similar to the recommended game. `filter`: only games it admits (genres / tags / "
            "platforms any-of and none-of, release-date bounds, exclude / only ids, new games only), applied inside "
            "the top-k and the popularity fill: k games whenever k pass. `boost`: the scores of the games a filter "
            "admits multiplied by its factor, inside the ranking (item-CF and fill)."
        ),
        raises=[ValidationException, BodyTooLarge, UnsupportedMediaType, ModelLoading],
        responses={200: ResponseSpec(PredictResponse, description="Recommended games, best first")},
    )
    async def predict(self, data: PredictRequest, request: Request) -> ASGIResponse:
        """The hot path, kept lean (bench/bench_api.py): the request body is read by LeanBodyRequest; the answer is
        assembled from per-game JSON fragments (no serialisation pass, `answers.encode`) and returned as a bare
        ASGIResponse, which skips Response's header/cookie merging; `request.app.state` is cheaper than injecting
        `State`. The OpenAPI 200 schema is declared above, since the return annotation carries none. Runs on the
        event loop: tens of µs of Python, cheaper than a hop to a thread."""
        state = request.app.state
        return ASGIResponse(
            body=answers.predict(state.holder, data, state.event_auth.tokens), media_type=MediaType.JSON
        )
