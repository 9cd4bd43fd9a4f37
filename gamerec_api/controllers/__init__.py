"""One Controller per domain: predictions, feedback events, games, users, and health/admin."""

from gamerec_api.controllers.events import EventsController, EventSink
from gamerec_api.controllers.games import GamesController
from gamerec_api.controllers.health import AdminController, HealthController
from gamerec_api.controllers.predict import PredictController
from gamerec_api.controllers.users import UsersController

__all__ = [
    "AdminController",
    "EventSink",
    "EventsController",
    "GamesController",
    "HealthController",
    "PredictController",
    "UsersController",
]
