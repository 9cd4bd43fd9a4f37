"""Owns the served `ServingState`: first load, polling of the production alias, reloads and the atomic swap.

Requests read `holder.state` once; a reload builds the next state in a worker thread and then assigns it in one
statement, so no request ever waits for a load or sees half of one. A failed reload keeps the old model. The load
is numpy on the version's own files plus Python loops in chunks of 20,000 (no polars, no table read), so the
worker thread never holds the GIL for long against the event loop (bench/bench_api.py measures a swap under load).

The holder also runs the worker's realtime overlay (`overlay.RealtimeOverlay`): a task reads new
`interaction_events` every GAMEREC_EVENTS_POLL s in a worker thread (never on a request's path), and every swap
aligns the overlay with the new model's `events_until_seq`. When the database is unreachable the task logs, counts
(`gamerec_overlay_tail_errors_total`) and retries with a growing delay (up to MAX_BACKOFF_S), and the server keeps
answering from the overlay it has.

Every load checks the version's manifest for plausibility (`manifest_checks`), against the events table's newest seq
too: a version claiming events beyond it is refused (it would silence the overlay). A refused or failed reload while
a model is served is kept in `refused` (version, time, reason) for GET /admin/status; the next successful swap
clears it.

Forgotten players (`forgotten_mask`): with every events read the holder also reads the new forgets of
`forgotten_users`, drops those users from the overlay and masks them in the production and challenger states; a
newly loaded version is masked before it is swapped in (and once more after the swap, for a forget read meanwhile).

Experiments: every poll also reads the experiment record (`store.experiments`, one small object). When one runs,
the holder loads and validates its challenger in a worker thread and only then sets `experiment`
(`ActiveExperiment`), so no request is routed to a model that is not in memory; a traffic change replaces the record
and keeps the loaded state; an ended experiment is dropped (its state retired like a swapped-out one). A promote
reuses the loaded challenger as the new production state. The guardrail (`guardrail`), or a challenger that fails to
load, ends the experiment for every worker: locally at once, in the record by compare-and-swap (`only` that
experiment, so a late trip never ends a newer one). Answers given under an experiment are buffered (`answer_log`)
and written to `experiment_answers` every FLUSH_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio.to_thread

from gamerec_api import telemetry
from gamerec_api.active_experiment import ActiveExperiment
from gamerec_api.answer_log import FLUSH_S, AnswerLog
from gamerec_api.forgotten_mask import ForgottenMask
from gamerec_api.overlay import TAIL_ERRORS, RealtimeOverlay
from gamerec_api.schemas import ReloadResult
from gamerec_api.state import NotReady, ServingState, load_state
from gamerec_assets import backends
from gamerec_assets.recsys.feedback import events_other_source_until, events_until_seq
from gamerec_assets.recsys.traffic_split import Splitter
from gamerec_assets.settings import Settings, StorageSettings
from gamerec_assets.store.event_store import EventStore
from gamerec_assets.store.experiments import Experiment, ExperimentError, ExperimentStore
from gamerec_assets.store.forgotten_users import ForgetReport, ForgottenUsers
from gamerec_assets.store.registry import MODEL_NAME, ModelRegistry
from gamerec_assets.store.table_store import TableStore

log = logging.getLogger("gamerec_api")
RETIRE_AFTER_S = 10.0  # a swapped-out state lives this long (in-flight requests keep using it), then is freed
MAX_BACKOFF_S = 10.0  # longest wait between two failed reads of interaction_events
EVENT_SEQ_WAIT_S = 5.0  # a load waits this long for the events table's newest seq, then checks without it


@dataclass(frozen=True)
class RefusedReload:
    """A reload that did not happen while a model was being served: which version, when (RFC 3339 UTC), why."""

    version: str | None
    at: str
    reason: str


def _dispose(holder: list[ServingState]) -> None:
    """In a worker thread: empty the state's user index and answer cache in small steps, then drop it."""
    state = holder.pop()
    for shard in state.user_index:
        shard.clear()
    state.answers.clear()
    del state


class ModelHolder:
    def __init__(
        self,
        settings: StorageSettings,
        reload_interval: float,
        cache_size: int = 0,
        events_poll: float | None = None,
        overlay: RealtimeOverlay | None = None,
    ) -> None:
        """`events_poll`: seconds between reads of interaction_events (None: GAMEREC_EVENTS_POLL; 0: no overlay
        updates)."""
        self.settings = settings
        self.reload_interval = reload_interval
        self.cache_size = cache_size
        self.events_poll = Settings.from_env().api.events_poll if events_poll is None else events_poll
        self.overlay = overlay or RealtimeOverlay()
        self.state: ServingState | None = None
        self.detail = "loading the production model"
        self.refused: RefusedReload | None = None  # the last reload refused while serving (None after a swap)
        self._registry: ModelRegistry | None = None
        self._tables: TableStore | None = None
        self._events: EventStore | None = None
        self._events_lock = threading.Lock()
        self._lock: asyncio.Lock | None = None
        self._task: asyncio.Task[None] | None = None
        self._tail_task: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self.experiment: ActiveExperiment | None = None  # the running experiment, its challenger loaded
        self.answer_log = AnswerLog(self.tables)
        self._tripped: dict[str, str] = {}  # experiments this worker's guardrail ended -> why (until recorded)
        self._background: set[asyncio.Task[None]] = set()
        self._flush_task: asyncio.Task[None] | None = None
        self.forgotten = ForgottenMask()
        self._forgotten_store: ForgottenUsers | None = None

    # -- storage (created lazily in a worker thread: both may do network or disk IO) ---------------------------

    def _open(self) -> tuple[ModelRegistry, TableStore]:
        if self._registry is None or self._tables is None:
            self._registry = backends.registry(self.settings, MODEL_NAME, self._newest_event_seq)
            self._tables = backends.table_store(self.settings)
        return self._registry, self._tables

    def tables(self) -> TableStore:
        """The table store, for the batch endpoint's precomputed rows (called from a worker thread)."""
        return self._open()[1]

    def _newest_event_seq(self) -> int | None:
        """The events table's newest seq for the registry's manifest check, None when the database does not answer
        within EVENT_SEQ_WAIT_S (then the check covers types and signs only: a model load never hangs on a frozen
        database, and the overlay's own reads report the outage)."""
        result: list[int] = []
        errors: list[BaseException] = []

        def read() -> None:
            try:
                result.append(self.events().last_seq())
            except Exception as exc:
                errors.append(exc)

        reader = threading.Thread(target=read, name="gamerec-newest-seq", daemon=True)
        reader.start()
        reader.join(EVENT_SEQ_WAIT_S)
        if result:
            return result[0]
        why = f"{type(errors[0]).__name__}: {errors[0]}" if errors else f"no answer within {EVENT_SEQ_WAIT_S:g} s"
        log.warning("model load: cannot read the newest interaction_events seq (%s); until_seq not compared", why)
        return None

    def events(self) -> EventStore:
        """The one `interaction_events` store of this worker, on the table store: POST /events appends to it and
        the overlay's tail reads it (both from worker threads)."""
        if self._events is None:
            with self._events_lock:
                if self._events is None:
                    self._events = backends.event_store(self._open()[1])
        return self._events

    # -- forgotten players ---------------------------------------------------------------------------------------

    def forgotten_users(self) -> ForgottenUsers:
        if self._forgotten_store is None:
            self._forgotten_store = ForgottenUsers(self._open()[1])
        return self._forgotten_store

    def sync_forgotten(self) -> int:
        """In a worker thread: read the new forgets, drop them from the overlay and mask them in the served states
        (production and a running challenger); the number of new forgets."""
        new = self.forgotten.sync(self.forgotten_users())
        if not new:
            return 0
        for f in new:
            self.overlay.forget(f.user_id, f.until_seq)
        self.answer_log.forget({f.user_id for f in new})  # experiment answers not written yet
        keys = [f.user_id.encode() for f in new]
        active = self.experiment
        for state in (self.state, active.challenger if active is not None else None):
            if state is not None:
                self.forgotten.mask(state, keys)
        log.info("forgotten players: %d more masked (forgotten_users up to seq %d)", len(new), self.forgotten.seq)
        return len(new)

    def forget(self, user_id: str) -> ForgetReport:
        """In a worker thread: forget a player (record, then erase: `ForgottenUsers.forget`) and mask them in this
        worker at once; other workers follow within their events poll."""
        report = self.forgotten_users().forget(user_id)
        self.sync_forgotten()
        return report

    async def forget_player(self, user_id: str) -> ForgetReport:
        """`forget` off the event loop: DELETE /admin/users/{id}'s service."""
        return await anyio.to_thread.run_sync(self.forget, user_id)

    def _load_masked(
        self, registry: ModelRegistry, version: str | None, cache_size: int, fallback: bool = False
    ) -> ServingState:
        """`load_state`, then the forgotten users read and masked in it (in the loading thread, before any request
        sees it)."""
        state = load_state(registry, version, cache_size, fallback)
        try:
            self.sync_forgotten()
        except Exception as exc:  # the table database is down: mask whom this worker knows; the tail retries
            log.warning(
                "model load: cannot read forgotten_users (%s); masking the %d known", exc, len(self.forgotten.users)
            )
        self.forgotten.mask(state)
        return state

    # -- lifecycle -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin loading in the background: the server answers /healthz (and /readyz 503) while it loads."""
        self._lock = asyncio.Lock()
        self._task = asyncio.create_task(self._run(), name="gamerec-model-loader")
        if self.events_poll > 0:
            self._tail_task = asyncio.create_task(self._tail(), name="gamerec-events-tail")
        self._flush_task = asyncio.create_task(self._flush_answers(), name="gamerec-answer-log")

    async def stop(self) -> None:
        for task in list(self._retiring) + list(self._background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for task in (self._task, self._tail_task, self._flush_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._tail_task = self._flush_task = None
        if self.answer_log.pending:
            with contextlib.suppress(Exception):
                await anyio.to_thread.run_sync(self.answer_log.flush)

    async def _run(self) -> None:
        # A restarted lifespan (test clients run one per request) keeps the state it has and only polls.
        await self._attempt(force=self.state is None)
        await self.poll_experiment()
        while self.reload_interval > 0:
            await asyncio.sleep(self.reload_interval)
            await self._attempt(force=False)
            await self.poll_experiment()
            if self.events_poll <= 0:  # no events tail to read the forgets with
                await self._poll_forgotten()

    async def _poll_forgotten(self) -> None:
        try:
            await anyio.to_thread.run_sync(self.sync_forgotten)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the table database is down: the next poll tries again
            log.warning("reading forgotten_users failed: %s", exc)

    async def _attempt(self, force: bool) -> None:
        try:
            await self.reload(force=force)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep serving the old model; the next poll tries again
            log.warning("model reload failed: %s", exc)

    # -- the realtime overlay ------------------------------------------------------------------------------------

    def _read_events(self) -> int:
        """In a worker thread: one read of the events after the overlay's last seq, applied (the rows read)."""
        events = self.events()
        if self.overlay.needs_standing():
            self.overlay.load_standing(events)
        n = self.overlay.poll(events)
        self.sync_forgotten()  # after the events read: a forget read now also drops what that read applied
        return n

    async def _tail(self) -> None:
        """Read new events every `events_poll` s (at once while a read fills a whole batch: catching up); on
        errors, log, count and wait twice as long each time, up to MAX_BACKOFF_S. Waits for the first model: the
        overlay starts at that model's events_until_seq."""
        failures = 0
        while True:
            if self.overlay.floor is None:
                await asyncio.sleep(self.events_poll)
                continue
            try:
                # abandoned on cancel: stopping never waits for a read stuck on a frozen database
                n = await anyio.to_thread.run_sync(self._read_events, abandon_on_cancel=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is unreachable or failing: keep serving, try again later
                failures += 1
                TAIL_ERRORS.inc()
                delay = min(self.events_poll * 2 ** min(failures, 10), MAX_BACKOFF_S)
                if failures == 1 or failures % 10 == 0:
                    log.warning(
                        "realtime overlay: reading interaction_events failed (%d in a row, next try in %.1f s): %s",
                        failures,
                        delay,
                        exc,
                    )
                await asyncio.sleep(delay)
                continue
            if failures:
                log.info("realtime overlay: reading interaction_events again after %d failures", failures)
                failures = 0
            await asyncio.sleep(0 if n >= self.overlay.batch else self.events_poll)

    # -- retiring the previous state ------------------------------------------------------------------------------

    async def _retire(self, holder: list[ServingState]) -> None:
        """Free a swapped-out state off the event loop, after requests that read it before the swap are done.

        Dropping it here would free its million user keys in one go on the event loop (tens of ms with the GIL
        held); a worker thread empties the index shard by shard (a few thousand keys each, so the GIL changes
        hands in between) and drops the last reference itself."""
        await asyncio.sleep(RETIRE_AFTER_S)
        await anyio.to_thread.run_sync(_dispose, holder)

    def _retire_later(self, state: ServingState) -> None:
        """Retire a state no longer served, unless it still is (production, or the running challenger)."""
        active = self.experiment
        if state is self.state or (active is not None and state is active.challenger):
            return
        task = asyncio.create_task(self._retire([state]), name="gamerec-retire-state")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def _refused(self, version: str | None, reason: str) -> None:
        at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        self.refused = RefusedReload(version, at, reason)

    # -- reload --------------------------------------------------------------------------------------------------

    async def reload(self, force: bool = True) -> ReloadResult:
        """Load the production model (when it changed, or always with force) and swap it in.

        Reads the registry only: a version carries its own cards and histories. Raises NotReady when there is no
        production model, other errors when a load fails (NoServingData for a version without serving data); the
        served state is unchanged in both cases.
        """
        assert self._lock is not None, "ModelHolder.start() was not called"
        async with self._lock:
            previous = self.state.version if self.state else None
            version: str | None = None
            try:
                registry, _ = await anyio.to_thread.run_sync(self._open)
                version = await anyio.to_thread.run_sync(registry.production)
                if version is None:
                    raise NotReady(f"the registry has no production {MODEL_NAME} model yet (run the Dagster pipeline)")
                if not force and version == previous:
                    return ReloadResult(changed=False, previous_version=previous, model_version=previous)
                started = time.perf_counter()
                active = self.experiment
                if active is not None and active.challenger.version == version:  # a promoted challenger: loaded
                    new_state = active.challenger
                else:
                    new_state = await self._load(registry, version)
            except NotReady as exc:
                if self.state is None:
                    self.detail = str(exc)
                else:
                    self._refused(None, str(exc))
                telemetry.RELOADS.labels("not_ready").inc()
                raise
            except Exception as exc:
                if self.state is None:
                    self.detail = f"loading the production model failed: {type(exc).__name__}: {exc}"
                else:
                    self._refused(version, f"{type(exc).__name__}: {exc}")
                telemetry.RELOADS.labels("error").inc()
                raise
            retired = [self.state] if self.state is not None else []
            self.state = new_state  # the swap: one reference assignment
            self.forgotten.mask(new_state)  # a forget read while it loaded (a dict probe per forgotten user)
            # the overlay drops what the new model was trained on (a few ms per 100,000 entries, off the loop)
            manifest = new_state.model.artifact.manifest
            await anyio.to_thread.run_sync(
                self.overlay.align, events_until_seq(manifest), events_other_source_until(manifest)
            )
            if retired:
                self._retire_later(retired[0])
            self.detail = ""
            self.refused = None
            if new_state.version != version:  # a fresh server fell back past an unservable production version
                self._refused(version, f"not servable, serving {new_state.version} instead (the server log has why)")
            telemetry.RELOADS.labels("ok").inc()
            telemetry.model_swapped(
                previous, new_state.version, new_state.model.n_items, new_state.n_users, new_state.loaded_at
            )
            log.info(
                "serving model %s (was %s), loaded in %.2fs", new_state.version, previous, time.perf_counter() - started
            )
            return ReloadResult(
                changed=new_state.version != previous, previous_version=previous, model_version=new_state.version
            )

    async def _load(self, registry: ModelRegistry, version: str) -> ServingState:
        """Load a version in a worker thread. Nothing served yet: fall back along the alias history past an
        unservable version; a running server keeps its model instead (a failed load raises, nothing is swapped)."""
        return await anyio.to_thread.run_sync(self._load_masked, registry, version, self.cache_size, self.state is None)

    # -- experiments ---------------------------------------------------------------------------------------------

    def experiments(self) -> ExperimentStore:
        registry, _ = self._open()
        return ExperimentStore(registry.store, registry.name)

    async def poll_experiment(self) -> None:
        try:
            await self.sync_experiment()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the record is unreadable or the store is down: keep routing as before
            log.warning("experiment poll failed: %s", exc)

    async def sync_experiment(self) -> ActiveExperiment | None:
        """Follow the experiment record: start routing (after the challenger loaded), change traffic, stop."""
        record = await anyio.to_thread.run_sync(lambda: self.experiments().current())
        await self._record_trips(record)
        active = self.experiment
        if record is None or record.name in self._tripped:
            if active is not None:
                self._end_locally(active, "the experiment ended" if record is None else "tripped")
            return None
        if active is not None and active.name == record.name and active.challenger.version == record.challenger:
            if active.record != record:
                self.experiment = ActiveExperiment(record, active.challenger, active.splitter, active.guard)
                telemetry.EXPERIMENT_TRAFFIC.labels(record.name, record.mode).set(record.traffic)
                log.info("experiment %s: traffic %g", record.name, record.traffic)
            return self.experiment
        registry, _ = await anyio.to_thread.run_sync(self._open)
        current = self.state
        try:
            if current is not None and current.version == record.challenger:
                challenger = current
            elif active is not None and active.challenger.version == record.challenger:
                challenger = active.challenger
            else:
                challenger = await anyio.to_thread.run_sync(
                    self._load_masked, registry, record.challenger, self.cache_size
                )
        except Exception as exc:
            self.trip(record, f"challenger {record.challenger} failed to load: {type(exc).__name__}: {exc}", "load")
            return None
        if active is not None:
            self._end_locally(active, f"replaced by {record.name}")
        self.experiment = ActiveExperiment(record, challenger, Splitter(record.name))
        telemetry.EXPERIMENT_TRAFFIC.labels(record.name, record.mode).set(record.traffic)
        log.info(
            "experiment %s (%s): challenger %s for %g of users, production %s",
            record.name,
            record.mode,
            record.challenger,
            record.traffic,
            current.version if current else None,
        )
        return self.experiment

    def _end_locally(self, active: ActiveExperiment, why: str) -> None:
        if self.experiment is active:
            self.experiment = None
        telemetry.EXPERIMENT_TRAFFIC.labels(active.name, active.record.mode).set(0)
        log.info("experiment %s: routing stopped on this worker (%s)", active.name, why)
        self._retire_later(active.challenger)

    def trip(self, record: Experiment, reason: str, kind: str) -> None:
        """The guardrail: all traffic back to production on this worker now; the record ends (for every worker)
        in the background. Called on the event loop."""
        if record.name in self._tripped:
            return
        self._tripped[record.name] = reason
        telemetry.GUARDRAIL_TRIPS.labels(record.name, kind).inc()
        log.warning("experiment %s stopped by the guardrail: %s", record.name, reason)
        active = self.experiment
        if active is not None and active.name == record.name:
            self._end_locally(active, "guardrail")
        task = asyncio.create_task(self._record_trips(record), name="gamerec-guardrail")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _record_trips(self, record: Experiment | None) -> None:
        """Write this worker's trips into the record (retried at each poll until it is written or already ended)."""
        if record is None or record.name not in self._tripped:
            return
        reason = self._tripped[record.name]

        def write() -> None:
            registry, _ = self._open()
            try:
                self.experiments().end(f"guardrail: {reason}", status="stopped", by=_guardrail_name(), only=record.name)
            except ExperimentError:
                return  # ended meanwhile (by an operator or another worker's guardrail)
            if registry.challenger() == record.challenger:
                registry.set_challenger(None, reason=f"experiment {record.name} stopped by the guardrail")

        try:
            await anyio.to_thread.run_sync(write)
        except Exception as exc:
            log.warning(
                "experiment %s: recording the guardrail's stop failed (retried at each poll): %s", record.name, exc
            )

    async def _flush_answers(self) -> None:
        """Write the buffered experiment answers every FLUSH_S (a failure keeps them for the next flush)."""
        while True:
            await asyncio.sleep(FLUSH_S)
            if not self.answer_log.pending:
                continue
            try:
                await anyio.to_thread.run_sync(self.answer_log.flush)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("writing experiment answers failed (%d pending): %s", self.answer_log.pending, exc)


def _guardrail_name() -> str:
    import os
    import socket

    return f"guardrail@{socket.gethostname()}:{os.getpid()}"
