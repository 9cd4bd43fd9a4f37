"""The answer pipeline's errors are the API's errors: each is the Litestar exception of its status, so a
controller needs no translation (a 400 or 404 body is `{"status_code", "detail"}` as for any client error)."""

from __future__ import annotations

from litestar.exceptions import NotFoundException, ServiceUnavailableException, ValidationException


class ModelLoading(ServiceUnavailableException):
    """503 before the first model is loaded (nothing to answer from yet)."""

    detail = "no model loaded yet"


class BadUserId(ValidationException):
    """A user id that is no valid Unicode text (a lone surrogate): it cannot be a key nor be echoed as JSON."""


class UnknownGames(ValidationException):
    """liked_game_ids holds games the served model does not know."""


class UnknownGame(NotFoundException):
    """A game id the served model does not know."""


class NoHistory(NotFoundException):
    """A user with no play history in the served version (and, for the batch answer, no precomputed rows)."""
