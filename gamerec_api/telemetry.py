"""Custom Prometheus metrics next to the request counts and latencies of litestar.plugins.prometheus.

Defined once per process (module import), because prometheus_client refuses to register a name twice and tests
build several apps. With `--workers N`, `python -m gamerec_api` sets PROMETHEUS_MULTIPROC_DIR so /metrics
aggregates every worker.
"""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge

from gamerec_assets.recsys.feedback import EVENT_TYPES

MODEL_INFO = Gauge(
    "gamerec_model_info", "1 for the model version this process serves", ["version"], multiprocess_mode="liveall"
)
MODEL_LOADED_AT = Gauge(
    "gamerec_model_loaded_timestamp_seconds",
    "When the served model was swapped in (unix time)",
    multiprocess_mode="livemax",
)
MODEL_ITEMS = Gauge("gamerec_model_items", "Games the served model knows", multiprocess_mode="livemax")
USERS_LOADED = Gauge("gamerec_users_loaded", "Users with an in-memory play history", multiprocess_mode="livemax")
PREDICTIONS = Counter("gamerec_predictions", "Recommendation lists served, by source", ["source"])
RELOADS = Counter("gamerec_model_reloads", "Model reload attempts, by result", ["result"])
# POST /events: every posted event by type and result (accepted, duplicate, rejected); accepted events for games
# the served model does not know (stored anyway; not counted while no model is loaded, since it cannot tell).
EVENTS = Counter("gamerec_events", "Feedback events posted, by type and result", ["type", "result"])
EVENTS_UNKNOWN_GAME = Counter(
    "gamerec_events_unknown_game", "Accepted feedback events for games the served model does not know", ["type"]
)
for _type in EVENT_TYPES:  # every series exists from the start
    EVENTS_UNKNOWN_GAME.labels(_type)
    for _result in ("accepted", "duplicate", "rejected"):
        EVENTS.labels(_type, _result)


def model_swapped(previous: str | None, version: str, n_items: int, n_users: int, loaded_at: float) -> None:
    """Move the version label: the old series is removed so a dashboard sees exactly one served version."""
    if previous is not None and previous != version:
        with contextlib.suppress(KeyError):
            MODEL_INFO.remove(previous)
    MODEL_INFO.labels(version).set(1)
    MODEL_LOADED_AT.set(loaded_at)
    MODEL_ITEMS.set(n_items)
    USERS_LOADED.set(n_users)
