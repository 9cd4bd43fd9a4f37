"""Helpers shared by the controllers: the current state, 503 before the first load, documented errors."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.exceptions import ClientException, NotFoundException

from gamerec_api.answers import ModelLoading, game_index, served
from gamerec_api.holder import ModelHolder
from gamerec_api.state import ServingState

__all__ = ["ERRORS_READ", "BodyTooLarge", "ModelLoading", "game_index", "holder_of", "serving"]


class BodyTooLarge(ClientException):
    """Documents the 413 that Litestar's request_max_body_size produces."""

    status_code = 413
    detail = "Request Entity Too Large"


def holder_of(state: State) -> ModelHolder:
    return state.holder  # type: ignore[no-any-return]


def serving(state: State) -> ServingState:
    """The state to answer from: read once per request so a concurrent swap cannot mix two models."""
    return served(state.holder)


ERRORS_READ = [NotFoundException, ModelLoading]
