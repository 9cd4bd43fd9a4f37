"""The /predict answer as a plain function of (state, request): the controller and the benchmark share it.

Answers without liked games depend only on (user, k) for a given state, so the state keeps a bounded number of
them (`cache_size`, env GAMEREC_PREDICT_CACHE); a model swap brings a new state and so an empty cache. A user with
realtime events (`overlay.UserOverlay`) is keyed by (row, k, gen) instead: `gen` changes with each of the user's
events, so a cached answer is never served after the user's history changed.

The response is assembled from JSON fragments precomputed per game at load time (`state.Fragments`): per request
only the scores, the `because` ids and the list structure are formatted. The bytes decode to `PredictResponse`
(a test checks it with msgspec in strict mode, and schemathesis validates them against the OpenAPI schema).
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
import numpy as np

from gamerec_api.overlay import UserOverlay
from gamerec_api.schemas import PredictRequest, Source
from gamerec_api.state import SHARDS, ServingState
from gamerec_assets.recsys.served_model import Recommended

_encode = msgspec.json.encode
_MASK = SHARDS - 1
_SOURCE = {s: b',"source":"' + s.encode() + b'","items":[' for s in ("item_cf", "basket", "popular")}
_SOURCE_CF = b',"source":"item_cf","because":['
_SOURCE_POP = b'0.0,"source":"popular","because":[]},'


class UnknownGames(ValueError):
    """liked_game_ids holds games the served model does not know."""


class BadUserId(ValueError):
    """A user id that is no valid Unicode text (a lone surrogate): it cannot be a key nor be echoed as JSON."""


def user_key(user_id: int | str) -> tuple[str, bytes]:
    """(the id's string form, its UTF-8 key): an integer is the same user as its decimal string."""
    text = user_id if type(user_id) is str else str(user_id)
    try:
        return text, text.encode()  # type: ignore[union-attr]
    except UnicodeEncodeError as exc:
        raise BadUserId("user_id is not valid Unicode text") from exc


def _merged(current: ServingState, trained: np.ndarray, extra: UserOverlay) -> tuple[np.ndarray, list[int]]:
    """(trained ∪ added) − disliked as sorted model item indices, and the disliked ones the model knows."""
    pos = current.model.item_pos.get
    excluded = [i for i in [pos(g, -1) for g in extra.excluded] if i >= 0]
    history = set(trained.tolist())
    history.update([i for i in [pos(g, -1) for g in extra.added] if i >= 0])
    history.difference_update(excluded)
    return np.asarray(sorted(history), np.int64), excluded


def _without(rec: Recommended, excluded: list[int], k: int) -> Recommended:
    """The first k items of `rec` that are not excluded (asked for k + len(excluded), so k remain)."""
    drop = set(excluded)
    keep = [j for j, i in enumerate(rec.idx) if i not in drop][:k]
    return Recommended(
        [rec.idx[j] for j in keep],
        [rec.scores[j] for j in keep],
        sum(j < rec.n_cf for j in keep),
        [rec.because[j] for j in keep],
    )


def predict_json(
    current: ServingState, req: PredictRequest, overlay: Mapping[bytes, UserOverlay] | None = None
) -> tuple[bytes, Source]:
    """Known user: item_cf over history ∪ liked; no history: basket over liked; nothing usable: popular.

    `overlay`: the realtime overlay's users (`RealtimeOverlay.users`); a user in it is scored from the model's
    history ∪ the realtime-added games − the disliked ones, and the disliked ones are never returned.
    Returns the JSON body of a `PredictResponse` and its source. Raises UnknownGames for unknown liked ids,
    BadUserId for an id that is no valid text. The user's row is one dict probe on the UTF-8 id, the overlay one
    more.
    """
    text, user = user_key(req.user_id)
    row = current.user_index[hash(user) & _MASK].get(user, -1)
    extra = overlay.get(user) if overlay else None
    key: tuple[int, ...] = (row, req.k) if extra is None else (row, req.k, extra.gen)
    if not req.liked_game_ids and (hit := current.answers.get(key)) is not None:
        return b'{"user_id":' + _encode(text) + hit[0], hit[1]  # type: ignore[return-value]
    model = current.model
    history = current.history_items(row)
    excluded: list[int] = []
    if extra is not None:
        history, excluded = _merged(current, history, extra)
    source: Source = "item_cf" if history.size else "popular"
    if req.liked_game_ids:
        pos = model.item_pos.get
        liked = [pos(g, -1) for g in req.liked_game_ids]
        if min(liked) < 0:
            unknown = sorted({g for g, i in zip(req.liked_game_ids, liked, strict=True) if i < 0})
            raise UnknownGames(
                f"unknown game ids in liked_game_ids: {unknown[:20]} (model {current.version} does not know them; "
                "find ids with GET /games?search=...)"
            )
        history = sorted(set(history.tolist()).union(liked))  # type: ignore[assignment]
        if source == "popular":
            source = "basket"
    if excluded:
        rec = _without(model.recommend_history(history, req.k + len(excluded)), excluded, req.k)
    else:
        rec = model.recommend_history(history, req.k)
    n_cf = rec.n_cf
    if n_cf == 0:
        source = "popular"
    fragments = current.fragments
    heads, id_json = fragments.item_head, fragments.id_json
    # One flat list of byte strings and a single join; scores are encoded in one msgspec call.
    out = [b',"model_version":', fragments.version, _SOURCE[source]]
    if n_cf:
        scores = msgspec.json.encode([round(x, 6) for x in rec.scores[:n_cf]])[1:-1].split(b",")
        for i, score, because in zip(rec.idx, scores, rec.because, strict=False):
            out += (heads[i], score, _SOURCE_CF, b",".join([id_json[j] for j in because]), b"]},")
    for i in rec.idx[n_cf:]:
        out += (heads[i], _SOURCE_POP)
    if len(out) > 3:
        out[-1] = out[-1][:-1]  # the last item's trailing comma
    reasons = dict.fromkeys([j for because in rec.because[:n_cf] for j in because])
    out += (b'],"because_games":[', b",".join([fragments.ref[j] for j in reasons]), b"]}")
    rest = b"".join(out)
    if not req.liked_game_ids:
        current.remember(key, (rest, source))
    return b'{"user_id":' + _encode(text) + rest, source
