"""Where data came from and which version of it a run saw: a source label plus a fingerprint and row counts.

Every asset's metadata and the model manifest carry a `data` block of this shape, so two runs can tell whether
they read the same source (the champion / challenger comparison refuses to cross a change of source) and the same
rows (the fingerprint).

`user_logs` also records which stored events it includes (constant columns `events_seq`, `events_count`,
`events_until_us`), and the manifest's `data.events` = {"until_seq", "count", "until"} says up to which
`interaction_events` seq a model was trained (`feedback.events_until_seq` reads it back). Events never change the
`interactions` source label: a retrain on new events compares with the champion like any other retrain.

Events posted under another source (`other_source_until`): events name the users and game ids of the model served
when they were posted, so after the deployment's source changed (the demo's simulated players, then a real
catalogue and file) the events stored before are left out of training. The boundary rides in `user_logs`' constant
column `events_other_source_seq` and the manifest's `data.events.other_source_until_seq` (present when > 0), so
later models on the new source keep leaving them out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from gamerec_assets.recsys.feedback import events_other_source_until, iso

EVENT_COLUMNS = ("events_seq", "events_count", "events_until_us")  # constant per table: what user_logs included
OTHER_SOURCE_COLUMN = "events_other_source_seq"  # constant: events up to this seq were posted under another source


def fingerprint(frame: pl.DataFrame, key: Sequence[str] | None = None) -> str:
    """A short sha256 of the frame's content, independent of row order (sorted by `key`, default every column).

    List columns are hashed as their `|`-joined text, so a table read back from a store hashes the same.
    """
    flat = frame.with_columns(pl.col(c).list.join("|") for c, d in frame.schema.items() if isinstance(d, pl.List))
    flat = flat.sort(list(key) if key else flat.columns, maintain_order=True, nulls_last=True)
    digest = hashlib.sha256(",".join(f"{c}:{d}" for c, d in flat.schema.items()).encode())
    digest.update(flat.write_csv(null_value="\\N").encode())
    return digest.hexdigest()[:16]


def data_version(frame: pl.DataFrame, key: Sequence[str] | None = None, **counts: int) -> dict[str, Any]:
    """{"fingerprint", "rows", **counts}: what a person (and the registry) compares between runs."""
    return {"fingerprint": fingerprint(frame, key), "rows": int(frame.height), **{k: int(v) for k, v in counts.items()}}


def logs_version(user_logs: pl.DataFrame) -> dict[str, Any]:
    """The interaction log's version: fingerprint, rows, users, games."""
    return data_version(
        user_logs.select(c for c in ("user_id", "game_id", "weight") if c in user_logs.columns),
        ["user_id", "game_id"],
        users=user_logs["user_id"].n_unique(),
        games=user_logs["game_id"].n_unique(),
    )


def catalogue_version(game_features: pl.DataFrame) -> dict[str, Any]:
    """The catalogue's version: fingerprint and rows (games)."""
    return data_version(game_features, ["game_id"])


def provenance(user_logs: pl.DataFrame, game_features: pl.DataFrame) -> dict[str, Any]:
    """The manifest's `data` block: both sources (from user_logs' `catalog` and `source` columns, `unknown` for
    logs without them) and both versions."""

    def first(col: str) -> str:
        return str(user_logs[col][0]) if col in user_logs.columns and user_logs.height else "unknown"

    return {
        "catalog": first("catalog"),
        "interactions": first("source"),
        "catalog_version": catalogue_version(game_features),
        "interactions_version": logs_version(user_logs),
        "events": events_included(user_logs),
    }


def events_included(user_logs: pl.DataFrame) -> dict[str, Any]:
    """{"until_seq", "count", "until"}: the newest event seq the logs include (0: none), how many events, and the
    newest event's time (RFC 3339, None without events), from the logs' event columns (absent: no events)."""

    def first(col: str) -> int | None:
        if col not in user_logs.columns or not user_logs.height:
            return None
        value = user_logs[col][0]
        return None if value is None else int(value)

    until_us = first("events_until_us")
    other = first(OTHER_SOURCE_COLUMN) or 0
    return {
        "until_seq": first("events_seq") or 0,
        "count": first("events_count") or 0,
        "until": iso(until_us) if until_us is not None else None,
        **({"other_source_until_seq": other} if other else {}),
    }


def other_source_until(production: Mapping[str, Any] | None, changed: str | None, last_seq: int) -> tuple[int, str]:
    """(seq, why): the stored events up to `seq` were posted under another data source and are left out of
    training (0: none). `production`: the production model's manifest (None: there is none); `changed`: how its
    sources differ from this run's (`evaluation.source_change`, None: the same).

    - no production model: every event was posted before any model of another source was served: 0;
    - production trained on another source: every stored event (up to `last_seq`) was posted while it was served,
      naming its players and its catalogue's game ids: all left out;
    - production on this source: its own boundary (`data.events.other_source_until_seq`, 0 when absent).
    """
    if production is None:
        return 0, "no production model: every event counts"
    if changed:
        return last_seq, f"posted while the production model was trained on another source ({changed})"
    seq = events_other_source_until(production)
    if 0 < seq <= last_seq:
        return seq, "posted before this source was served (the production model's boundary)"
    return 0, "the production model was trained on this source: every event counts"
