"""Stage 6, encode: the answer as the API's response types.

/predict's body is assembled from JSON fragments precomputed per game at load time (`state.Fragments`): per
request only the scores, the `because` ids and the list structure are formatted (one flat list of byte strings,
one join; the scores in one msgspec call). A popularity-fill item is one precomputed object, its fill score
(`ServingModel.popular_score`) included. The bytes decode to `PredictResponse` (a test checks it with msgspec
in strict mode, and schemathesis validates them against the OpenAPI schema). The other answers are msgspec
Structs built from the version's `GameCard`s (the API's own type, converted once at load).
"""

from __future__ import annotations

import msgspec
import numpy as np

from gamerec_api.schemas import BatchItem, GameCard, SimilarItem, Source
from gamerec_api.state import ServingState
from gamerec_assets.recsys.served_model import Recommended

_encode = msgspec.json.encode
_SOURCE = {s: b',"source":"' + s.encode() + b'","items":[' for s in ("item_cf", "basket", "popular")}
_SOURCE_CF = b',"source":"item_cf","because":['


def with_user(text: str, rest: bytes) -> bytes:
    """The full /predict body: the user id (the one per-user part) before the cacheable rest."""
    return b'{"user_id":' + _encode(text) + rest


_VARIANT = {v: b'","variant":"' + v.encode() + b'"' for v in ("production", "challenger", "interleave")}


def with_answer(user_json: bytes, request_id: bytes, token: bytes, rest: bytes, variant: str = "production") -> bytes:
    """The /predict body served over HTTP: the user id, then the answer's `request_id`, `event_token` (made per
    request: `answer_tokens.AnswerTokens.issue`) and `variant`, then the cacheable rest."""
    return b"".join(
        (
            b'{"user_id":',
            user_json,
            b',"request_id":"',
            request_id,
            b'","event_token":"',
            token,
            _VARIANT[variant],
            rest,
        )
    )


def answer_games(state: ServingState, idx: list[int]) -> bytes:
    """The answer's game ids as the event token lists them ("3498_3328"), from the per-game JSON fragments."""
    id_json = state.fragments.id_json
    return b"_".join([id_json[i] for i in idx])


def predict_rest(state: ServingState, rec: Recommended, source: Source, reasons: list[int]) -> bytes:
    """The /predict body after the user id: model version, source, items and `because_games`."""
    fragments = state.fragments
    heads, id_json, popular = fragments.item_head, fragments.id_json, fragments.popular_item
    n_cf = rec.n_cf
    out = [b',"model_version":', fragments.version, _SOURCE[source]]
    if n_cf:
        scores = _encode([round(x, 6) for x in rec.scores[:n_cf]])[1:-1].split(b",")
        for i, score, because in zip(rec.idx, scores, rec.because, strict=False):
            out += (heads[i], score, _SOURCE_CF, b",".join([id_json[j] for j in because]), b"]},")
    out += [popular[i] for i in rec.idx[n_cf:]]  # whole precomputed objects, with the item's fill score
    if len(out) > 3:
        out[-1] = out[-1][:-1]  # the last item's trailing comma
    out += (b'],"because_games":[', b",".join([fragments.ref[j] for j in reasons]), b"]}")
    return b"".join(out)


def interleaved_rest(version: bytes, source: Source, picks: list[tuple[ServingState, Recommended, int]]) -> bytes:
    """The /predict body after the user id for an interleaved list: each pick (its model's state, that model's
    ranked list, the position in it) encoded from its own model's fragments, with its own score and `because`;
    `because_games` names every cited game once. `version`: the JSON of the model version the body names."""
    out = [b',"model_version":', version, _SOURCE[source]]
    refs: dict[bytes, bytes] = {}
    for state, rec, j in picks:
        fragments = state.fragments
        i = rec.idx[j]
        if j < rec.n_cf:
            because = [fragments.id_json[b] for b in rec.because[j]]
            for b in rec.because[j]:
                refs.setdefault(fragments.id_json[b], fragments.ref[b])
            score = _encode(round(rec.scores[j], 6))
            out += (fragments.item_head[i], score, _SOURCE_CF, b",".join(because), b"]},")
        else:
            out.append(fragments.popular_item[i])
    if len(out) > 3:
        out[-1] = out[-1][:-1]
    out += (b'],"because_games":[', b",".join(refs.values()), b"]}")
    return b"".join(out)


def similar_items(
    cards: tuple[GameCard, ...], popularity: np.ndarray, items: list[int], scores: list[float]
) -> list[SimilarItem]:
    """SimilarItem per neighbour; `new`: nobody played it in the model's data (placed by its attributes)."""
    return [
        SimilarItem(
            game_id=c.game_id,
            name=c.name,
            score=s,
            genres=c.genres,
            rating=c.rating,
            background_image=c.background_image,
            new=bool(popularity[j] <= 0),
        )
        for j, c, s in zip(items, (cards[j] for j in items), scores, strict=True)
    ]


def batch_item(rank: int, card: GameCard | None, game_id: int, score: float, item_cf: bool) -> BatchItem:
    """One ranked item of GET /users/{id}/recommendations (a game the version lacks keeps its id, named plainly)."""
    return BatchItem(
        rank=rank,
        game_id=game_id,
        name=card.name if card else f"Game {game_id}",
        score=round(score, 6),
        source="item_cf" if item_cf else "popular",
        genres=card.genres if card else [],
        rating=card.rating if card else 0.0,
        background_image=card.background_image if card else "",
    )
