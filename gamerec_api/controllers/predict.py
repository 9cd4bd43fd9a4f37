"""POST /predict: item-CF for known users, basket (liked games) for cold starts, popularity otherwise."""

from __future__ import annotations

import numpy as np
from litestar import Controller, post
from litestar.datastructures import State
from litestar.exceptions import ValidationException

from gamerec_api import metrics
from gamerec_api.controllers.common import BodyTooLarge, ModelLoading, serving
from gamerec_api.schemas import GameRef, PredictItem, PredictRequest, PredictResponse, Source

_COUNTERS = {s: metrics.PREDICTIONS.labels(s) for s in ("item_cf", "basket", "popular")}


class PredictController(Controller):
    path = "/predict"
    tags = ["predict"]

    @post(
        "",
        status_code=200,
        summary="Recommend games for a user",
        description=(
            "`source`: `item_cf` (the user's play history, plus liked games), `basket` (liked games only: a user "
            "without history), `popular` (nothing known, or the item-CF neighbourhood yielded nothing). Per item, "
            "`source` tells item-CF from popularity fill (score 0.0, empty `because`). Never returns a played or "
            "liked game. `because`: up to 3 played/liked game ids most similar to the recommended game."
        ),
        raises=[ValidationException, BodyTooLarge, ModelLoading],
    )
    async def predict(self, data: PredictRequest, state: State) -> PredictResponse:
        current = serving(state)
        history = current.history(data.user_id)
        source: Source = "item_cf" if history.size else "popular"
        if data.liked_game_ids:
            liked = current.model.index_of(data.liked_game_ids)
            if (liked < 0).any():
                unknown = sorted({g for g, i in zip(data.liked_game_ids, liked.tolist(), strict=True) if i < 0})
                raise ValidationException(
                    detail=f"unknown game ids in liked_game_ids: {unknown[:20]} (model {current.version} does not "
                    "know them; find ids with GET /games?search=...)"
                )
            history = np.union1d(history, liked)
            if source == "popular":
                source = "basket"
        rec = current.recommend(history, data.k)
        n_cf = int(rec.from_cf.sum())
        if n_cf == 0:
            source = "popular"
        cards = current.cards
        scores = np.round(rec.scores.astype(np.float64), 6).tolist()
        items = []
        reasons: dict[int, int] = {}
        for n, (i, score, because_idx) in enumerate(zip(rec.idx.tolist(), scores, rec.because, strict=True)):
            card = cards[i]
            because = []
            for j in because_idx:
                because.append(cards[j].game_id)
                reasons[j] = 0
            items.append(PredictItem(
                game_id=card.game_id, name=card.name, score=score, source="item_cf" if n < n_cf else "popular",
                because=because, genres=card.genres, rating=card.rating, background_image=card.background_image,
            ))
        _COUNTERS[source].inc()
        return PredictResponse(
            user_id=data.user_id, model_version=current.version, source=source, items=items,
            because_games=[GameRef(cards[j].game_id, cards[j].name) for j in reasons],
        )
