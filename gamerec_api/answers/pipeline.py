"""The answers, each a pass through the stages: resolve → pick → score → policy → explain → encode.

`predict_json` is /predict's hot path (a plain function of state and request: the controller and the benchmark
share it). Answers without liked games depend only on (user row, k) for a given state, so the picked state keeps
a bounded number of them (`cache_size`, env GAMEREC_PREDICT_CACHE); a model swap brings a new state and so an
empty cache. A user with realtime events is keyed by (row, k, gen) instead: `gen` changes with each of the user's
events, so a cached answer is never served after the user's history changed.

The service functions (`predict`, `similar`, `history`, `recommendations`) take the `ModelHolder` and return the
response; the controllers call exactly one of them.
"""

from __future__ import annotations

from collections.abc import Mapping

import anyio.to_thread
import msgspec

from gamerec_api import telemetry
from gamerec_api.answer_tokens import AnswerTokens
from gamerec_api.answers import encode, explain, policy, score
from gamerec_api.answers.batch import BatchRow, batch_rows
from gamerec_api.answers.errors import NoHistory, UnknownGame
from gamerec_api.answers.player import merge, resolve, scored_history, with_liked
from gamerec_api.answers.variant import pick, served
from gamerec_api.holder import ModelHolder
from gamerec_api.overlay import UserOverlay
from gamerec_api.schemas import BatchResponse, PredictRequest, SimilarResponse, Source, UserHistoryResponse
from gamerec_api.state import ServingState

BATCH_K = 10  # items of GET /users/{id}/recommendations (the batch asset's k)
_COUNTERS = {s: telemetry.PREDICTIONS.labels(s) for s in ("item_cf", "basket", "popular")}


def predict_json(
    current: ServingState, req: PredictRequest, overlay: Mapping[bytes, UserOverlay] | None = None
) -> tuple[bytes, Source]:
    """Known user: item_cf over history ∪ liked; no history: basket over liked; nothing usable: popular.

    `overlay`: the realtime overlay's users (`RealtimeOverlay.users`); a user in it is scored from the model's
    history ∪ the realtime-added games − the disliked ones, and the disliked ones are never returned.
    Returns the JSON body of a `PredictResponse` (without `request_id` and `event_token`, which `predict` adds
    per request) and its source. Raises UnknownGames for unknown liked ids, BadUserId for an id that is no valid
    text (both 400).
    """
    user, rest, source, _ = _answer(current, req, overlay)
    return b'{"user_id":' + user + rest, source


def _answer(
    current: ServingState, req: PredictRequest, overlay: Mapping[bytes, UserOverlay] | None
) -> tuple[bytes, bytes, Source, bytes]:
    """(the user id as JSON, the body after it, the source, the answer's game ids for its event token)."""
    player = resolve(current, req.user_id, overlay)
    state = pick(current, player)
    extra, liked = player.extra, req.liked_game_ids
    key: tuple[int, ...] = (player.row, req.k) if extra is None else (player.row, req.k, extra.gen)
    user = msgspec.json.encode(player.text)
    if not liked and (hit := state.answers.get(key)) is not None:
        return user, hit[0], hit[1], hit[2]  # type: ignore[return-value]
    history, excluded = scored_history(state, player)
    has_history = history.size > 0
    scored = score.recommend(
        state, with_liked(state, history, liked) if liked else history, policy.ask(req.k, excluded)
    )
    rec = policy.apply(scored, excluded, req.k)
    source = policy.source_of(has_history, bool(liked), rec.n_cf)
    rest = encode.predict_rest(state, rec, source, explain.reasons(rec))
    games = encode.answer_games(state, rec.idx)
    if not liked:
        state.remember(key, (rest, source, games))
    return user, rest, source, games


def predict(holder: ModelHolder, req: PredictRequest, tokens: AnswerTokens) -> bytes:
    """POST /predict: the body with this answer's `request_id` and `event_token`, counted by source. The realtime
    overlay is read from memory, never the database."""
    user, rest, source, games = _answer(served(holder), req, holder.overlay.users)
    request_id, token = tokens.issue(user, games)
    _COUNTERS[source].inc()
    return encode.with_answer(user, request_id, token, rest)


def game_index(current: ServingState, game_id: int) -> int:
    """The game's item index in `current`; UnknownGame (404) when the version does not know it."""
    idx = current.model.item_index(game_id)
    if idx < 0:
        raise UnknownGame(detail=f"unknown game id {game_id}: model {current.version} does not know it")
    return idx


def similar(holder: ModelHolder, game_id: int, k: int, tokens: AnswerTokens, user_id: str = "") -> SimilarResponse:
    """A game's stored neighbours (no popularity fill: may be fewer than k). The event token covers the game and
    its neighbours for `user_id` ("" : no user, no events)."""
    state = pick(served(holder))
    idx = game_index(state, game_id)
    items, scores = score.neighbours(state, idx, k)
    plays = state.model.popularity  # 0: nobody has played it in the model's data (a new game)
    cards = encode.similar_items(state.cards, plays, items, scores)
    request_id, token = tokens.issue_text(user_id, [state.cards[idx].game_id, *(c.game_id for c in cards)])
    return SimilarResponse(
        game=state.cards[idx],
        model_version=state.version,
        items=cards,
        new_game=bool(plays[idx] <= 0),
        request_id=request_id,
        event_token=token,
    )


def history(holder: ModelHolder, user_id: str) -> UserHistoryResponse:
    """The history the answers are scored from: trained − disliked, then the realtime plays the version lacks."""
    current = served(holder)
    player = resolve(current, user_id, holder.overlay.users)
    state = pick(current, player)
    trained = state.history_items(player.row)
    played, realtime = trained.tolist(), []
    if player.extra is not None:
        played, realtime = merge(state, trained, player.extra).listed()
    if not played:
        raise NoHistory(detail=f"user {user_id} has no play history in model {state.version}")
    return UserHistoryResponse(
        user_id=user_id,
        model_version=state.version,
        items=[state.cards[i] for i in played],
        realtime_game_ids=realtime,
    )


async def recommendations(holder: ModelHolder, user_id: str, tokens: AnswerTokens) -> BatchResponse:
    """`_recommendations` with the answer's `request_id` and `event_token` (its games, for `user_id`)."""
    answer = await _recommendations(holder, user_id)
    answer.request_id, answer.event_token = tokens.issue_text(user_id, [i.game_id for i in answer.items])
    return answer


async def _recommendations(holder: ModelHolder, user_id: str) -> BatchResponse:
    """The batch table's rows when the served version made them, else the same top-k computed now (`computed`,
    with the table's version in `batch_model_version`): one version's results never pass as another's. Scored
    from the version's own history (the realtime overlay is /predict's), like the table's rows."""
    current = served(holder)  # read once: the answer is this version's, whatever a swap does meanwhile
    player = resolve(current, user_id, None)
    table_version, rows = await anyio.to_thread.run_sync(batch_rows, holder.tables, user_id)
    if rows is not None and table_version == current.version:
        return _from_batch(current, user_id, rows)
    if player.row < 0 and rows is None:
        raise NoHistory(detail=f"unknown user {user_id}: no history in model {current.version}")
    state = pick(current, player)
    rec = score.recommend(state, state.history_items(player.row), BATCH_K)
    cards = state.cards
    items = [
        encode.batch_item(rank, cards[i], cards[i].game_id, s, rank <= rec.n_cf)
        for rank, (i, s) in enumerate(zip(rec.idx, rec.scores, strict=True), start=1)
    ]
    return BatchResponse(
        user_id=user_id, model_version=state.version, source="computed", items=items, batch_model_version=table_version
    )


def _from_batch(current: ServingState, user_id: str, rows: list[BatchRow]) -> BatchResponse:
    items = []
    for rank, game_id, s, source in rows:
        idx = current.model.item_index(game_id)
        items.append(encode.batch_item(rank, current.cards[idx] if idx >= 0 else None, game_id, s, source == "item_cf"))
    return BatchResponse(
        user_id=user_id, model_version=current.version, source="batch", items=items, batch_model_version=current.version
    )
