"""Plausibility of the manifest fields that servers and the pipeline act on (pure: no IO, no Dagster).

The sha256s prove the arrays are the ones written, and `validate_arrays` / `validate_serving` prove they form a
model; the manifest itself is not checksummed, and some of its fields steer behaviour. A version claiming
`data.events.until_seq: 1e15` was promoted and silenced the realtime overlay (which keeps only events after it) and
the retraining sensor (which counts events after it). `manifest_problems` lists every implausible field:

- `data.events.until_seq`: a non-negative integer, and no newer than the events table's newest seq when the
  caller knows it (a model cannot have been trained on events that do not exist yet); `data.events.count`: a
  non-negative integer no larger than `until_seq` (every event has its own seq);
- `metrics.<split>.<precision|recall|hit_rate|map|ndcg>@k`: numbers in [0, 1] (the champion's recorded figure
  decides whether a challenger is promoted: an inflated one would block every later promotion);
- `parameters`: an object; its neighbour counts (`serving_neighbors`, `neighbors`, `k`, ...) positive integers up
  to MAX_NEIGHBOURS (a refit in the champion comparison allocates per neighbour);
- the recorded sizes (`arrays`, `serving`, `sizes`, `training_data.items`): non-negative integers (they are also
  compared with the files and arrays themselves where those are read).

A missing field is fine (older versions lack most of them); a present one must be plausible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

RANKING_METRICS = ("precision", "recall", "hit_rate", "map", "ndcg")
NEIGHBOUR_PARAMETERS = ("serving_neighbors", "neighbors", "n_neighbors", "k", "topk", "top_k")
MAX_NEIGHBOURS = 1_000_000


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _events_problems(data: object, newest_event_seq: int | None) -> list[str]:
    if data is None:
        return []
    if not isinstance(data, Mapping):
        return [f"data: expected an object, got {_shown(data)}"]
    events = data.get("events")
    if events is None:
        return []
    if not isinstance(events, Mapping):
        return [f"data.events: expected an object, got {_shown(events)}"]
    problems: list[str] = []
    until = events.get("until_seq")
    if until is not None and not (_is_int(until) and until >= 0):
        problems.append(f"data.events.until_seq: expected a non-negative integer, got {_shown(until)}")
        until = None
    if until is not None and newest_event_seq is not None and until > newest_event_seq:
        problems.append(
            f"data.events.until_seq {until} is beyond the newest interaction_events seq {newest_event_seq}: the "
            "version claims events that do not exist (the realtime overlay would ignore every event up to it)"
        )
    count = events.get("count")
    if count is not None and not (_is_int(count) and count >= 0):
        problems.append(f"data.events.count: expected a non-negative integer, got {_shown(count)}")
    elif count is not None and until is not None and count > until:
        problems.append(f"data.events.count {count} exceeds data.events.until_seq {until} (one seq per event)")
    return problems


def _metrics_problems(metrics: object) -> list[str]:
    if metrics is None:
        return []
    if not isinstance(metrics, Mapping):
        return [f"metrics: expected an object, got {_shown(metrics)}"]
    problems = []
    for split, figures in metrics.items():
        if not isinstance(figures, Mapping):
            continue  # not a block of figures this module knows
        for name, value in figures.items():
            if str(name).partition("@")[0] not in RANKING_METRICS:
                continue
            ok = isinstance(value, int | float) and not isinstance(value, bool) and not math.isinf(value)
            if not ok or not (math.isnan(value) or 0.0 <= value <= 1.0):
                problems.append(f"metrics.{split}.{name}: expected a number in [0, 1], got {_shown(value)}")
    return problems


def _parameter_problems(parameters: object) -> list[str]:
    if parameters is None:
        return []
    if not isinstance(parameters, Mapping):
        return [f"parameters: expected an object, got {_shown(parameters)}"]
    problems = []
    for name in NEIGHBOUR_PARAMETERS:
        value = parameters.get(name)
        if value is not None and not (_is_int(value) and 1 <= value <= MAX_NEIGHBOURS):
            problems.append(f"parameters.{name}: expected an integer in 1..{MAX_NEIGHBOURS}, got {_shown(value)}")
    return problems


def _size_problems(manifest: Mapping[str, Any]) -> list[str]:
    problems = []
    for block in ("arrays", "serving", "sizes"):
        values = manifest.get(block)
        if values is None:
            continue
        if not isinstance(values, Mapping):
            problems.append(f"{block}: expected an object, got {_shown(values)}")
            continue
        problems += [
            f"{block}.{key}: expected a non-negative integer, got {_shown(v)}"
            for key, v in values.items()
            if not (_is_int(v) and v >= 0)
        ]
    training = manifest.get("training_data")
    items = training.get("items") if isinstance(training, Mapping) else None
    if items is not None and not (_is_int(items) and items >= 0):
        problems.append(f"training_data.items: expected a non-negative integer, got {_shown(items)}")
    return problems


def manifest_problems(manifest: Mapping[str, Any], newest_event_seq: int | None = None) -> list[str]:
    """Every implausible acted-on field (empty: plausible). `newest_event_seq`: the events table's newest seq
    (`EventStore.last_seq`), None when unknown (then only types and signs are checked)."""
    return [
        *_events_problems(manifest.get("data"), newest_event_seq),
        *_metrics_problems(manifest.get("metrics")),
        *_parameter_problems(manifest.get("parameters")),
        *_size_problems(manifest),
    ]
