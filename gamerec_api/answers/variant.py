"""Stage 2, pick the model that answers: production, or, while an experiment runs, the player's variant.

The holder keeps the running experiment beside the production state (`ActiveExperiment`: its record, the loaded
challenger, the salted split and the guardrail), swapped in one assignment like the production state. A request
reads both once (`served`, `holder.experiment`) and `route`s the player:

- outside any experiment, or a player outside the experiment's share: production, and the request id is tagged
  with the production arm while an experiment runs (`recsys.experiment_ids`), so its events count as production's;
- A/B, a player in the share (`traffic_split`: a salted hash of the experiment's name and the user id, the same on
  every worker): the challenger answers, the player's history resolved in the challenger's own version;
- interleave, a player in the share: both models rank, team-draft interleaving merges them (`answers.pipeline`).

A player-independent answer (a game's neighbours asked without a user) is production's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gamerec_api.active_experiment import ActiveExperiment
from gamerec_api.answers.errors import ModelLoading
from gamerec_api.holder import ModelHolder
from gamerec_api.readiness import public_detail
from gamerec_api.state import ServingState
from gamerec_assets.recsys.experiment_ids import Attribution

Variant = Literal["production", "challenger", "interleave"]


@dataclass(frozen=True, slots=True)
class Route:
    variant: Variant
    state: ServingState  # the state that answers (interleave: production's)
    other: ServingState | None  # interleave: the challenger's state
    experiment: ActiveExperiment | None
    attribution: Attribution | None  # what the request id carries (None outside experiments)


def served(holder: ModelHolder) -> ServingState:
    """The state to answer from: read once per request so a concurrent swap cannot mix two models."""
    current = holder.state
    if current is None:
        raise ModelLoading(detail=f"not ready: {public_detail(holder.detail)[1]}")
    return current


def production_route(current: ServingState, exp: ActiveExperiment | None) -> Route:
    """Production answers; inside an experiment, tagged as its production arm."""
    if exp is None:
        return Route("production", current, None, None, None)
    return Route("production", current, None, exp, Attribution(exp.name, "production", current.version))


def route(current: ServingState, exp: ActiveExperiment | None, user_key: bytes | None) -> Route:
    """The variant that answers the player whose id's UTF-8 bytes are `user_key` (None: no player)."""
    if exp is None or user_key is None or not exp.treated(user_key):
        return production_route(current, exp)
    challenger = exp.challenger
    if exp.record.mode == "ab":
        return Route("challenger", challenger, None, exp, Attribution(exp.name, "challenger", challenger.version))
    return Route(
        "interleave",
        current,
        challenger,
        exp,
        Attribution(exp.name, "interleave", current.version, challenger.version),
    )
