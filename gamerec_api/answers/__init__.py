"""One answer pipeline: every answer of the API passes through the same named stages.

1. resolve (`player`): the asking user's history row in the served version and their realtime overlay, merged
   once (trained history ∪ games played since − dislikes), plus the request's liked games;
2. pick (`variant`): the state (model, cards, JSON fragments) that answers: production, or while an online
   experiment runs the player's variant (the challenger, or both models interleaved);
3. score (`score`): the model's compiled kernels (item-CF with popularity fill; a game's neighbours);
4. policy (`policy`): what a list may hold (no played, liked or disliked game; a request's `filter`, turned into
   one allowed-items mask the scorer honours inside its top-k); editions and diversity will be functions of this
   stage;
5. explain (`explain`): the history games behind each pick (`because`, `because_games`);
6. encode (`encode`): the API's response types; /predict's bytes from per-game fragments, its answers cached.

`pipeline` runs them for /predict, /games/{id}/similar, /users/{id}/history and /users/{id}/recommendations.
Controllers parse the request, call one function of `pipeline` and return what it gives.
"""

from __future__ import annotations

from gamerec_api.answers.errors import BadUserId, ModelLoading, NoHistory, UnknownGame, UnknownGames
from gamerec_api.answers.pipeline import (
    BATCH_K,
    game_index,
    history,
    predict,
    predict_json,
    recommendations,
    similar,
)
from gamerec_api.answers.player import user_key
from gamerec_api.answers.variant import served

__all__ = [
    "BATCH_K",
    "BadUserId",
    "ModelLoading",
    "NoHistory",
    "UnknownGame",
    "UnknownGames",
    "game_index",
    "history",
    "predict",
    "predict_json",
    "recommendations",
    "served",
    "similar",
    "user_key",
]
