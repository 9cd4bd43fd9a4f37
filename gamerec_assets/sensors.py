"""`retrain_on_new_events`: a refresh of the graph once enough players' events arrived, besides the daily schedule.

Every ~30 s the sensor counts the events after the production model's data (`feedback.events_until_seq` of its
manifest; no production model: every event) and requests a `refresh_all` run once there are at least
GAMEREC_RETRAIN_EVENTS (1,000). It never requests one while a refresh_all run is queued or running; the run key is
the newest seq, so the same events never trigger twice; and it counts from the newest seq it already requested a
refresh for when that is newer than production's (a refresh whose model was not promoted does not retrigger on
every later event). Each tick that sees new events also records an observation of `interaction_events` (data
version = newest seq), so the UI shows `user_logs` stale between refreshes.

A burst from a few senders does not trigger it (issue #22: six requests of made-up users did): the new events are
counted per source, at most ceil(N / GAMEREC_RETRAIN_MIN_SOURCES) (5) per source (`event_trust.effective_events`),
so a refresh needs events from at least that many sources. A source is the sender `interaction_events.key_name`
records (a write key's name, `answer:<user_id>` for a browser's answer token, `open`; `event_trust.sources`), so one
key's burst counts as one source however long it lasts; an event without a sender (stored before senders were
recorded) counts by its arrival window of GAMEREC_EVENTS_BURST_WINDOW seconds (server receive time) instead. The skip
message says how many events, sources and effective events it counted. The daily schedule still refreshes, and
training holds a burst's users back (`event_trust`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg

from gamerec_assets.assets.interactions import events_metadata
from gamerec_assets.recsys.event_trust import effective_events
from gamerec_assets.recsys.feedback import events_until_seq
from gamerec_assets.resources.storage import ArtifactsResource, TablesResource
from gamerec_assets.schedules import refresh_all, refresh_run_config
from gamerec_assets.settings import RetrainSettings
from gamerec_assets.store.registry import MODEL_NAME

SENSOR_NAME = "retrain_on_new_events"
EVENTS_KEY = dg.AssetKey("interaction_events")
DATA_VERSION_TAG = "dagster/data_version"
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def _cursor(text: str | None) -> dict[str, int]:
    try:
        raw = json.loads(text) if text else {}
    except ValueError:
        raw = {}
    return {k: int(raw.get(k, 0)) for k in ("observed", "requested")}


def _few_sources(count: int, since: int, model: str, spread: dict, min_events: int, window_s: float) -> str:
    return (
        f"{count:,} new events after seq {since} ({model}), but from {spread['sources']:,} source(s) "
        f"({spread['users']:,} users): they count as {spread['effective']:,} (at most {spread['per_source_cap']:,} "
        f"per source: a sender, or an arrival window of {window_s:g} s for events without one); a refresh at "
        f"{min_events:,}"
    )


def build_retrain_sensor(
    min_events: int = RetrainSettings.min_events,
    min_sources: int = RetrainSettings.min_sources,
    window_s: float = RetrainSettings.burst_window_s,
) -> dg.SensorDefinition:
    """The sensor, requesting a refresh at `min_events` new events (GAMEREC_RETRAIN_EVENTS) counted at most
    ceil(min_events / min_sources) per source (GAMEREC_RETRAIN_MIN_SOURCES; sources: the module docstring)."""

    @dg.sensor(
        name=SENSOR_NAME,
        job=refresh_all,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Refresh the graph once {min_events:,} players' events arrived since the production model's "
        "data (never while a refresh runs).",
    )
    def retrain_on_new_events(
        context: dg.SensorEvaluationContext, tables: TablesResource, artifacts: ArtifactsResource
    ) -> dg.SensorResult:
        cursor = _cursor(context.cursor)
        registry = artifacts.registry(MODEL_NAME)
        production = registry.production()
        trained = events_until_seq(registry.manifest(production)) if production is not None else 0
        since = max(trained, cursor["requested"])
        store = tables.events()
        last = store.last_seq()
        new = store.summary(after_seq=since)
        observations = []
        if last != cursor["observed"]:
            meta = events_metadata({**new, "until_seq": last})
            observations.append(
                dg.AssetObservation(
                    asset_key=EVENTS_KEY,
                    metadata={
                        "events_until_seq": last,
                        "new_events": meta.pop("events"),
                        "new_events_by_type": meta.pop("events_by_type"),
                        "events_newest": meta["events_newest"],
                        "counted_after_seq": since,
                    },
                    tags={DATA_VERSION_TAG: str(last)},
                )
            )
            cursor["observed"] = last
        model = f"production {production} (trained on events up to seq {trained})" if production else "no model yet"

        def skip(reason: str) -> dg.SensorResult:
            return dg.SensorResult(skip_reason=reason, cursor=json.dumps(cursor), asset_events=observations)

        if new["count"] < min_events:
            return skip(f"{new['count']:,} new events after seq {since} ({model}); a refresh at {min_events:,}")
        spread = effective_events(store.read(after_seq=since), min_events, min_sources, window_s)
        if spread["effective"] < min_events:
            return skip(_few_sources(new["count"], since, model, spread, min_events, window_s))
        running = context.instance.get_runs(
            filters=dg.RunsFilter(job_name=refresh_all.name, statuses=IN_PROGRESS), limit=1
        )
        if running:
            run = running[0]
            return skip(
                f"{new['count']:,} new events, but refresh_all run {run.run_id} is {run.status.value.lower()}: "
                "not starting a second refresh"
            )
        until = new["until_seq"]
        cursor["requested"] = until
        request = dg.RunRequest(
            run_key=f"events-until-{until}",
            run_config=refresh_run_config(datetime.now(UTC).strftime("%Y-%m-%d")),
            tags={
                "gamerec/trigger": SENSOR_NAME,
                "gamerec/events_after": str(since),
                "gamerec/events_until": str(until),
                "gamerec/event_sources": str(spread["sources"]),
            },
        )
        context.log.info(f"requesting refresh_all: {new['count']:,} new events after seq {since} ({model})")
        return dg.SensorResult(run_requests=[request], cursor=json.dumps(cursor), asset_events=observations)

    return retrain_on_new_events
