"""The answers, each a pass through the stages: resolve → pick → score → policy → explain → encode.

`predict_json` is /predict's hot path (a plain function of state and request: the controller and the benchmark
share it). Answers without liked games or a filter depend only on (user row, k) for a given state, so the picked
state keeps a bounded number of them (`cache_size`, env GAMEREC_PREDICT_CACHE); a model swap brings a new state
and so an empty cache. A user with realtime events is keyed by (row, k, gen) instead: `gen` changes with each of
the user's events, so a cached answer is never served after the user's history changed.

The service functions (`predict`, `similar`, `history`, `recommendations`) take the `ModelHolder` and return the
response; the controllers call exactly one of them.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping

import anyio.to_thread
import msgspec
from litestar.exceptions import HTTPException

from gamerec_api import telemetry
from gamerec_api.active_experiment import ActiveExperiment
from gamerec_api.answer_tokens import AnswerTokens
from gamerec_api.answers import encode, explain, policy, score
from gamerec_api.answers.batch import BatchRow, batch_rows
from gamerec_api.answers.errors import NoHistory, UnknownGame, UnknownGames
from gamerec_api.answers.player import Player, merge, resolve, scored_history, user_key, with_liked
from gamerec_api.answers.variant import Route, production_route, route, served
from gamerec_api.holder import ModelHolder
from gamerec_api.overlay import UserOverlay
from gamerec_api.schemas import BatchResponse, GameFilter, PredictRequest, SimilarResponse, Source, UserHistoryResponse
from gamerec_api.state import ServingState
from gamerec_assets.recsys import experiment_ids
from gamerec_assets.recsys.interleaving import team_draft
from gamerec_assets.recsys.served_model import Recommended

log = logging.getLogger("gamerec_api")

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
    state = current
    player = resolve(state, req.user_id, overlay)
    extra, liked = player.extra, req.liked_game_ids
    key: tuple[int, ...] = (player.row, req.k) if extra is None else (player.row, req.k, extra.gen)
    user = msgspec.json.encode(player.text)
    # a filtered or boosted answer is never cached (the key has neither)
    cacheable = not liked and req.filter is None and not req.boost
    if cacheable and (hit := state.answers.get(key)) is not None:
        return user, hit[0], hit[1], hit[2]  # type: ignore[return-value]
    rec, source = _ranked(state, player, req)
    rest = encode.predict_rest(state, rec, source, explain.reasons(rec))
    games = encode.answer_games(state, rec.idx)
    if cacheable:
        state.remember(key, (rest, source, games))
    return user, rest, source, games


def _ranked(state: ServingState, player: Player, req: PredictRequest) -> tuple[Recommended, Source]:
    """Score, then the policy: the player's ranked list in `state` and its source."""
    liked = req.liked_game_ids
    history, excluded = scored_history(state, player)
    scored = score.recommend(
        state,
        with_liked(state, history, liked) if liked else history,
        policy.ask(req.k, excluded),
        policy.allowed(state, req.filter),
        policy.weights(state, req.boost),
    )
    rec = policy.apply(scored, excluded, req.k)
    return rec, policy.source_of(history.size > 0, bool(liked), rec.n_cf)


def predict(holder: ModelHolder, req: PredictRequest, tokens: AnswerTokens) -> bytes:
    """POST /predict: the body with this answer's `request_id`, `event_token` and `variant`, counted by source and
    variant. The realtime overlay is read from memory, never the database."""
    current = served(holder)
    exp = holder.experiment
    if exp is not None:
        return _predict_in_experiment(holder, current, exp, req, tokens)
    user, rest, source, games = _answer(current, req, holder.overlay.users)
    request_id, token = tokens.issue(user, games)
    _COUNTERS[source].inc()
    telemetry.variant_requests("", "production", current.version, "predict").inc()
    return encode.with_answer(user, request_id, token, rest)


def _predict_in_experiment(
    holder: ModelHolder, current: ServingState, exp: ActiveExperiment, req: PredictRequest, tokens: AnswerTokens
) -> bytes:
    """/predict while an experiment runs: the player's route, timed and counted per variant for the guardrail and
    the metrics; the answer logged for the online evaluation. A treated answer that fails with a server error is
    answered by production instead (untagged: its events count for neither arm) and counted as the challenger's."""
    overlay = holder.overlay.users
    text, key = user_key(req.user_id)
    r = route(current, exp, key)
    treated = r.variant != "production"
    started = time.perf_counter()
    teams: str | None = None
    try:
        if r.variant == "interleave":
            user, rest, source, games, teams = _interleaved(r, req, overlay)
        else:
            user, rest, source, games = _answer(r.state, req, overlay)
    except Exception as exc:
        # a liked game the challenger's (older) catalogue lacks is the player's request, not the challenger's error;
        # other client errors are the player's answer; any other failure counts against its arm
        if isinstance(exc, HTTPException) and not (treated and isinstance(exc, UnknownGames)):
            raise
        if not isinstance(exc, HTTPException):
            _failed(holder, exp, r, time.perf_counter() - started, exc)
        if not treated:
            raise
        r, teams = production_route(current, None), None  # production answers, untagged
        user, rest, source, games = _answer(current, req, overlay)
    else:
        elapsed = time.perf_counter() - started
        telemetry.variant_latency(exp.name, r.variant, r.state.version).observe(elapsed)
        if (why := exp.guard.record(treated, elapsed, True)) is not None:
            holder.trip(exp.record, why, "latency")
    attribution = r.attribution
    tag = exp.tag(attribution) if attribution is not None else b""
    request_id, token = tokens.issue(user, games, tag)
    _COUNTERS[source].inc()
    telemetry.variant_requests(exp.name if attribution else "", r.variant, r.state.version, "predict").inc()
    if attribution is not None:
        holder.answer_log.add(
            request_id.decode(),
            exp.name,
            experiment_ids.LETTER[attribution.arm],
            r.state.version,
            r.other.version if r.other is not None else "",
            text,
            games,  # parsed when the log is written, off the request path
            teams,
        )
    return encode.with_answer(user, request_id, token, rest, r.variant)


def _failed(holder: ModelHolder, exp: ActiveExperiment, r: Route, elapsed: float, exc: Exception) -> None:
    """Count a server error of an arm; the guardrail may stop the experiment."""
    log.warning("experiment %s: the %s arm failed: %s: %s", exp.name, r.variant, type(exc).__name__, exc)
    telemetry.VARIANT_ERRORS.labels(exp.name, r.variant, r.state.version).inc()
    if (why := exp.guard.record(r.variant != "production", elapsed, False)) is not None:
        holder.trip(exp.record, why, "errors")


def _interleaved(
    r: Route, req: PredictRequest, overlay: Mapping[bytes, UserOverlay] | None
) -> tuple[bytes, bytes, Source, bytes, str]:
    """Both models rank the player (each in its own version), team-draft interleaving merges the lists: the body
    after the user id, its source (production's, or item_cf when the challenger's picks are), the game ids and the
    team of each. Not cached: only the experiment's share of players pays for two rankings."""
    production, challenger = r.state, r.other
    assert challenger is not None
    p_player = resolve(production, req.user_id, overlay)
    c_player = resolve(challenger, req.user_id, overlay)
    p_rec, p_source = _ranked(production, p_player, req)
    c_rec, c_source = _ranked(challenger, c_player, req)
    p_ids = [production.cards[i].game_id for i in p_rec.idx]
    c_ids = [challenger.cards[i].game_id for i in c_rec.idx]
    merged, teams = team_draft(p_ids, c_ids, req.k, random.getrandbits(32))
    p_at = {g: j for j, g in enumerate(p_ids)}
    c_at = {g: j for j, g in enumerate(c_ids)}
    picks = [
        (production, p_rec, p_at[g]) if t == "p" else (challenger, c_rec, c_at[g])
        for g, t in zip(merged, teams, strict=True)
    ]
    source = p_source if p_source != "popular" else c_source
    rest = encode.interleaved_rest(production.fragments.version, source, picks)
    return msgspec.json.encode(p_player.text), rest, source, "_".join(map(str, merged)).encode(), teams


def game_index(current: ServingState, game_id: int) -> int:
    """The game's item index in `current`; UnknownGame (404) when the version does not know it."""
    idx = current.model.item_index(game_id)
    if idx < 0:
        raise UnknownGame(detail=f"unknown game id {game_id}: model {current.version} does not know it")
    return idx


def similar(
    holder: ModelHolder,
    game_id: int,
    k: int,
    tokens: AnswerTokens,
    user_id: str = "",
    game_filter: GameFilter | None = None,
) -> SimilarResponse:
    """A game's stored neighbours (no popularity fill: may be fewer than k), only those `game_filter` admits. The
    event token covers the game and its neighbours for `user_id` ("" : no user, no events)."""
    current = served(holder)
    exp = holder.experiment
    r = route(current, exp, user_id.encode() if user_id else None)
    if r.variant == "interleave":  # interleaving merges /predict's lists; a game's neighbours stay production's
        r = production_route(current, exp)
    state = r.state
    idx = game_index(state, game_id)
    items, scores = score.neighbours(state, idx, k, policy.allowed(state, game_filter))
    plays = state.model.popularity  # 0: nobody has played it in the model's data (a new game)
    cards = encode.similar_items(state.cards, plays, items, scores)
    tag = exp.tag(r.attribution) if exp is not None and r.attribution is not None else b""
    games = [state.cards[idx].game_id, *(c.game_id for c in cards)]
    request_id, token = tokens.issue_text(user_id, games, tag)
    telemetry.variant_requests(exp.name if tag else "", r.variant, state.version, "similar").inc()
    if exp is not None and r.attribution is not None:
        arm = experiment_ids.LETTER[r.attribution.arm]
        holder.answer_log.add(request_id, exp.name, arm, state.version, "", user_id, games[1:])
    return SimilarResponse(
        variant=r.variant,
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
    state = current
    player = resolve(state, user_id, holder.overlay.users)
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
    if player.key in current.masked:  # forgotten: rows the erasure has not reached yet are not served
        table_version, rows = None, None
    if rows is not None and table_version == current.version:
        return _from_batch(current, user_id, rows)
    if player.row < 0 and rows is None:
        raise NoHistory(detail=f"unknown user {user_id}: no history in model {current.version}")
    state = current
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
