"""Stage 1, resolve the player: who asks, and the history the answer is scored from.

A player is a row of the served version's history CSR (-1: no trained history) plus, when the realtime overlay
holds the user, their `UserOverlay` (games played, purchased or liked since the model, and disliked ones). The
merge of the two is written once here (`merge`) and serves both the scored history (/predict) and the listed one
(GET /users/{id}/history). A request's liked games join the scored history (`with_liked`).
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
import numpy as np

from gamerec_api.answers.errors import BadUserId, UnknownGames
from gamerec_api.overlay import UserOverlay
from gamerec_api.state import SHARDS, ServingState

_MASK = SHARDS - 1


class Player(msgspec.Struct, gc=False):
    """The asking user as the served version knows them: id text, UTF-8 key, history row (-1: none) and realtime
    events (None: not in the overlay). A Struct: made per request, in C."""

    text: str
    key: bytes
    row: int
    extra: UserOverlay | None


class Merged:
    """A user's realtime events applied to their trained history, as model item indices.

    `history()`: the scored history, (trained ∪ realtime plays) − dislikes, sorted; `listed()`: the trained games
    not disliked, in item order, then the realtime plays the version does not hold yet (in event order), and those
    plays' game ids; `excluded`: the disliked games the model knows (never recommended, not scored from). Both
    views are computed on demand: /predict needs only the first."""

    __slots__ = ("added", "added_ids", "excluded", "trained")

    def __init__(self, trained: np.ndarray, added_ids: tuple[int, ...], added: list[int], excluded: list[int]) -> None:
        self.trained = trained
        self.added_ids = added_ids
        self.added = added  # item index per added game id, -1 for games the model does not know
        self.excluded = excluded

    def history(self) -> np.ndarray:
        """Sorted, duplicate-free item indices (the kernel's input)."""
        history = set(self.trained.tolist())
        history.update([i for i in self.added if i >= 0])
        history.difference_update(self.excluded)
        return np.asarray(sorted(history), np.int64)

    def listed(self) -> tuple[list[int], list[int]]:
        """(the listed history's item indices, the realtime plays' game ids)."""
        have = self.trained.tolist()
        known, disliked = set(have), set(self.excluded)
        new = [(i, g) for i, g in zip(self.added, self.added_ids, strict=True) if i >= 0 and i not in known]
        return [i for i in have if i not in disliked] + [i for i, _ in new], [g for _, g in new]


def user_key(user_id: int | str) -> tuple[str, bytes]:
    """(the id's string form, its UTF-8 key): an integer is the same user as its decimal string."""
    text = user_id if type(user_id) is str else str(user_id)
    try:
        return text, text.encode()  # type: ignore[union-attr]
    except UnicodeEncodeError as exc:
        raise BadUserId(detail="user_id is not valid Unicode text") from exc


def resolve(current: ServingState, user_id: int | str, overlay: Mapping[bytes, UserOverlay] | None) -> Player:
    """One dict probe for the history row, one more for the overlay (most users are not in it). `user_key`
    inlined: this runs for every /predict, cached answers too."""
    text = user_id if type(user_id) is str else str(user_id)
    try:
        key = text.encode()  # type: ignore[union-attr]
    except UnicodeEncodeError as exc:
        raise BadUserId(detail="user_id is not valid Unicode text") from exc
    row = current.user_index[hash(key) & _MASK].get(key, -1)
    return Player(text, key, row, overlay.get(key) if overlay else None)


def merge(current: ServingState, trained: np.ndarray, extra: UserOverlay) -> Merged:
    """Apply a user's realtime events to the trained history (`trained`: sorted item indices). Games the served
    model does not know have no index and are left out."""
    pos = current.model.item_pos.get
    excluded = [i for i in [pos(g, -1) for g in extra.excluded] if i >= 0]
    return Merged(trained, extra.added, [pos(g, -1) for g in extra.added], excluded)


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
