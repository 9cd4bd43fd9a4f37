"""Stage 2, pick the model that answers: today always the served production version.

This is the seam where an experiment will choose a variant per player (a deterministic bucket of the player's
key, say) among the states the holder keeps; everything after this stage reads the model, cards and JSON
fragments from the state returned here, so a variant needs no change elsewhere.
"""

from __future__ import annotations

from gamerec_api.answers.errors import ModelLoading
from gamerec_api.answers.player import Player
from gamerec_api.holder import ModelHolder
from gamerec_api.readiness import public_detail
from gamerec_api.state import ServingState


def served(holder: ModelHolder) -> ServingState:
    """The state to answer from: read once per request so a concurrent swap cannot mix two models."""
    current = holder.state
    if current is None:
        raise ModelLoading(detail=f"not ready: {public_detail(holder.detail)[1]}")
    return current


def pick(current: ServingState, player: Player | None = None) -> ServingState:
    """The state that answers `player` (None: a player-independent answer, such as a game's neighbours)."""
    return current
