"""Helpers shared by the controllers: the current state, 503 before the first load, documented errors."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.exceptions import ClientException, NotFoundException, ServiceUnavailableException

from gamerec_api.holder import ModelHolder
from gamerec_api.readiness import public_detail
from gamerec_api.state import ServingState


class BodyTooLarge(ClientException):
    """Documents the 413 that Litestar's request_max_body_size produces."""

    status_code = 413
    detail = "Request Entity Too Large"


class ModelLoading(ServiceUnavailableException):
    detail = "no model loaded yet"


def holder_of(state: State) -> ModelHolder:
    return state.holder  # type: ignore[no-any-return]


def serving(state: State) -> ServingState:
    """The state to answer from: read once per request so a concurrent swap cannot mix two models."""
    holder: ModelHolder = state.holder
    current = holder.state
    if current is None:
        raise ModelLoading(detail=f"not ready: {public_detail(holder.detail)[1]}")
    return current


def game_index(current: ServingState, game_id: int) -> int:
    idx = current.model.item_index(game_id)
    if idx < 0:
        raise NotFoundException(detail=f"unknown game id {game_id}: model {current.version} does not know it")
    return idx


ERRORS_READ = [NotFoundException, ModelLoading]
