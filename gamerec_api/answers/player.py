"""Stage 1, resolve the player: who asks, and the history the answer is scored from.

A player is a row of the served version's history CSR (-1: no trained history) plus, when the realtime overlay
holds the user, their `UserOverlay` (games played, purchased or liked since the model, and disliked ones). The
merge of the two is written once here (`merge`) and serves both the scored history (/predict) and the listed one
(GET /users/{id}/history). A request's liked games join the scored history (`with_liked`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gamerec_api.answers.errors import BadUserId, UnknownGames
from gamerec_api.overlay import UserOverlay
from gamerec_api.state import SHARDS, ServingState

_MASK = SHARDS - 1


class Player:
    """The asking user as the served version knows them: id text, UTF-8 key, history row and realtime events."""

    __slots__ = ("extra", "key", "row", "text")

    def __init__(self, text: str, key: bytes, row: int, extra: UserOverlay | None) -> None:
        self.text = text
        self.key = key
        self.row = row
        self.extra = extra


@dataclass(frozen=True, slots=True)
class Merged:
    """Trained history ∪ realtime plays − dislikes, as model item indices.

    `played`: the trained games not disliked, in item order, then the realtime-added games the version does not
    hold yet (in event order); `realtime`: those added games' ids; `excluded`: the disliked games the model knows
    (never recommended, not scored from)."""

    played: list[int]
    realtime: list[int]
    excluded: list[int]

    def history(self) -> np.ndarray:
        """The scored history: sorted, duplicate-free item indices (the kernel's input)."""
        return np.asarray(sorted(set(self.played).difference(self.excluded)), np.int64)


def user_key(user_id: int | str) -> tuple[str, bytes]:
    """(the id's string form, its UTF-8 key): an integer is the same user as its decimal string."""
    text = user_id if type(user_id) is str else str(user_id)
    try:
        return text, text.encode()  # type: ignore[union-attr]
    except UnicodeEncodeError as exc:
        raise BadUserId(detail="user_id is not valid Unicode text") from exc


def resolve(current: ServingState, user_id: int | str, overlay: Mapping[bytes, UserOverlay] | None) -> Player:
    """One dict probe for the history row, one more for the overlay (most users are not in it)."""
    text, key = user_key(user_id)
    row = current.user_index[hash(key) & _MASK].get(key, -1)
    return Player(text, key, row, overlay.get(key) if overlay else None)


def merge(current: ServingState, trained: np.ndarray, extra: UserOverlay) -> Merged:
    """Apply a user's realtime events to the trained history (`trained`: sorted item indices). Games the served
    model does not know have no index and are left out."""
    pos = current.model.item_pos.get
    excluded = [i for i in [pos(g, -1) for g in extra.excluded] if i >= 0]
    disliked = set(excluded)
    have = trained.tolist()
    played = [i for i in have if i not in disliked] if disliked else have
    known = set(have)
    realtime: list[int] = []
    for g in extra.added:
        i = pos(g, -1)
        if i >= 0 and i not in known:
            played.append(i)
            realtime.append(g)
    return Merged(played, realtime, excluded)


def scored_history(current: ServingState, player: Player) -> tuple[np.ndarray, list[int]]:
    """(the history to score from, the disliked item indices): the trained row as is for most users."""
    trained = current.history_items(player.row)
    if player.extra is None:
        return trained, []
    merged = merge(current, trained, player.extra)
    return merged.history(), merged.excluded


def with_liked(current: ServingState, history: np.ndarray, liked_game_ids: list[int]) -> list[int]:
    """history ∪ the request's liked games, sorted; UnknownGames (400) names the ids the model does not know."""
    pos = current.model.item_pos.get
    liked = [pos(g, -1) for g in liked_game_ids]
    if min(liked) < 0:
        unknown = sorted({g for g, i in zip(liked_game_ids, liked, strict=True) if i < 0})
        raise UnknownGames(
            detail=f"unknown game ids in liked_game_ids: {unknown[:20]} (model {current.version} does not know them; "
            "find ids with GET /games?search=...)"
        )
    return sorted(set(history.tolist()).union(liked))
