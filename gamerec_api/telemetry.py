"""Custom Prometheus metrics next to the request counts and latencies of litestar.plugins.prometheus.

Defined once per process (module import), because prometheus_client refuses to register a name twice and tests
build several apps. With `--workers N`, `python -m gamerec_api` sets PROMETHEUS_MULTIPROC_DIR so /metrics
aggregates every worker.
"""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

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
# Online experiments (issue #23): every answer and attributed event labelled by experiment, variant (production,
# challenger, interleaved) and the model version that answered; outside an experiment, experiment="" and
# variant="production". The dashboard's CTR and conversion by variant are ratios of these counters.
VARIANT_REQUESTS = Counter(
    "gamerec_variant_requests",
    "Answers served, by experiment, variant, model version and endpoint",
    ["experiment", "variant", "version", "endpoint"],
)
VARIANT_ERRORS = Counter(
    "gamerec_variant_errors",
    "Answers that failed with a server error, by experiment, variant and model version",
    ["experiment", "variant", "version"],
)
VARIANT_LATENCY = Histogram(
    "gamerec_variant_request_duration_seconds",
    "The answer's own work (after parsing, before sending), by experiment, variant and model version",
    ["experiment", "variant", "version"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
EVENTS_ATTRIBUTED = Counter(
    "gamerec_events_attributed",
    "Accepted events whose request_id names an experiment's answer, by experiment, variant, model version and type",
    ["experiment", "variant", "version", "type"],
)
EXPERIMENT_TRAFFIC = Gauge(
    "gamerec_experiment_traffic",
    "The challenger's share of the traffic of the running experiment (0: none running), by experiment and mode",
    ["experiment", "mode"],
    multiprocess_mode="livemax",
)
GUARDRAIL_TRIPS = Counter(
    "gamerec_experiment_guardrail_trips",
    "Experiments a worker's guardrail stopped (traffic back to production), by experiment and reason",
    ["experiment", "reason"],
)
for _type in EVENT_TYPES:  # every series exists from the start
    EVENTS_UNKNOWN_GAME.labels(_type)
    for _result in ("accepted", "duplicate", "rejected"):
        EVENTS.labels(_type, _result)


_VARIANT_REQUESTS: dict[tuple[str, str, str, str], Any] = {}
_VARIANT_LATENCY: dict[tuple[str, str, str], Any] = {}


def variant_requests(experiment: str, variant: str, version: str, endpoint: str) -> Any:
    """The labelled child of VARIANT_REQUESTS, kept: a label lookup per answer costs more than the increment."""
    key = (experiment, variant, version, endpoint)
    child = _VARIANT_REQUESTS.get(key)
    if child is None:
        child = _VARIANT_REQUESTS[key] = VARIANT_REQUESTS.labels(*key)
    return child


def variant_latency(experiment: str, variant: str, version: str) -> Any:
    key = (experiment, variant, version)
    child = _VARIANT_LATENCY.get(key)
    if child is None:
        child = _VARIANT_LATENCY[key] = VARIANT_LATENCY.labels(*key)
    return child


def model_swapped(previous: str | None, version: str, n_items: int, n_users: int, loaded_at: float) -> None:
    """Move the version label: the old series is removed so a dashboard sees exactly one served version."""
    if previous is not None and previous != version:
        with contextlib.suppress(KeyError):
            MODEL_INFO.remove(previous)
    MODEL_INFO.labels(version).set(1)
    MODEL_LOADED_AT.set(loaded_at)
    MODEL_ITEMS.set(n_items)
    USERS_LOADED.set(n_users)
