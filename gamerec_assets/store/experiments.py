"""Online experiments' records: which two model versions are compared, how, for what share of the traffic, and how
each experiment ended.

One JSON object in the artifact store beside the registry (`<name>/_experiments/experiments.json`), changed only
by compare-and-swap (`ArtifactStore.update`), like the registry's aliases: every API worker, the CLI and the assets
read the same record, and two concurrent changes (an operator's `stop` and a worker's guardrail, say) never undo one
another. At most one experiment runs at a time; ended ones stay listed (newest first), so `gamerec experiments
status` shows who ran what and when.

    {"experiments": [{"name", "mode", "challenger", "production", "traffic", "status", "started_at",
                      "started_by", "updated_at", "ended_at", "reason", "changes": [{"at", "by", "traffic"}]}]}
"""

from __future__ import annotations

import getpass
import json
import re
import socket
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from gamerec_assets.store.artifact_store import ArtifactNotFound, ArtifactStore
from gamerec_assets.store.registry import MODEL_NAME

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,23}")  # also a request id field: no "~" or "." (experiment_ids)
MODES = ("ab", "interleave")
Mode = Literal["ab", "interleave"]
Status = Literal["running", "stopped", "promoted"]
KEEP_ENDED = 50  # ended experiments kept in the record


class ExperimentError(ValueError):
    """A refused change (no experiment running, one already running, bad name or traffic): the message says why."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def operator() -> str:
    """Who made a change: user@host, written into the record."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ExperimentError(
            f"bad experiment name {name!r}: 1-24 characters of a-z, 0-9 and '-', starting with a letter or digit"
        )
    return name


def check_traffic(traffic: float) -> float:
    if not isinstance(traffic, int | float) or not 0.0 < float(traffic) <= 1.0:
        raise ExperimentError(f"bad traffic {traffic!r}: the challenger's share, a number in (0, 1], e.g. 0.1")
    return float(traffic)


@dataclass(frozen=True)
class Experiment:
    name: str
    mode: Mode
    challenger: str  # the challenger's model version
    production: str  # the production version when the experiment started
    traffic: float  # A/B: the challenger's share of users; interleave: the share of users given interleaved lists
    status: Status
    started_at: str
    started_by: str
    updated_at: str
    ended_at: str | None = None
    reason: str | None = None  # why it ended (operator stop, promote, guardrail: ...)
    changes: tuple[dict[str, Any], ...] = field(default_factory=tuple)  # traffic changes {"at", "by", "traffic"}

    @property
    def running(self) -> bool:
        return self.status == "running"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["changes"] = list(self.changes)
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Experiment:
        try:
            exp = cls(**{**raw, "changes": tuple(raw.get("changes", ()))})
        except TypeError as exc:
            raise ExperimentError(f"experiment record {raw!r} is malformed: {exc}") from exc
        if exp.mode not in MODES or exp.status not in ("running", "stopped", "promoted"):
            raise ExperimentError(f"experiment record {exp.name!r}: unknown mode {exp.mode!r} or status {exp.status!r}")
        check_name(exp.name)
        check_traffic(exp.traffic)
        return exp


class ExperimentStore:
    def __init__(self, store: ArtifactStore, name: str = MODEL_NAME) -> None:
        self.store = store
        self.key = f"{name}/_experiments/experiments.json"

    def _parse(self, raw: bytes | None) -> list[Experiment]:
        if raw is None:
            return []
        try:
            record = json.loads(raw)
            return [Experiment.from_json(e) for e in record["experiments"]]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise ExperimentError(
                f"experiment record {self.store.describe()}/{self.key} is unreadable: {exc}; repair or delete it"
            ) from exc

    @staticmethod
    def _dump(experiments: list[Experiment]) -> bytes:
        running = [e for e in experiments if e.running]
        ended = [e for e in experiments if not e.running][:KEEP_ENDED]
        return json.dumps({"experiments": [e.to_json() for e in running + ended]}, indent=2).encode()

    def all(self) -> list[Experiment]:
        """Every recorded experiment, the running one (if any) first, then the ended ones newest first."""
        try:
            raw: bytes | None = self.store.get(self.key)
        except ArtifactNotFound:
            raw = None
        return self._parse(raw)

    def current(self) -> Experiment | None:
        """The running experiment, or None. One small object read: the API polls it every reload interval."""
        return next((e for e in self.all() if e.running), None)

    def start(
        self, name: str, challenger: str, production: str, traffic: float, mode: str = "ab", by: str | None = None
    ) -> Experiment:
        """Record a new running experiment; refused while another runs or when the name was used before. The
        caller validates both versions (loads them) first: this only records."""
        check_name(name)
        traffic = check_traffic(traffic)
        if mode not in MODES:
            raise ExperimentError(f"bad mode {mode!r}: one of {', '.join(MODES)}")
        if challenger == production:
            raise ExperimentError(f"the challenger {challenger} is already production: nothing to compare")
        now = _now()
        new = Experiment(name, mode, challenger, production, traffic, "running", now, by or operator(), now)  # type: ignore[arg-type]

        def change(raw: bytes | None) -> bytes:
            experiments = self._parse(raw)
            if running := next((e for e in experiments if e.running), None):
                raise ExperimentError(f"experiment {running.name!r} is running: stop or promote it first")
            if any(e.name == name for e in experiments):
                raise ExperimentError(f"an experiment named {name!r} ran before: choose another name")
            return self._dump([new, *experiments])

        self.store.update(self.key, change)
        return new

    def _change_running(self, edit: Any, only: str | None = None) -> Experiment:
        """Apply `edit(experiment) -> experiment` to the running experiment in one compare-and-swap."""
        result: list[Experiment] = []

        def change(raw: bytes | None) -> bytes:
            experiments = self._parse(raw)
            running = next((e for e in experiments if e.running), None)
            if running is None or (only is not None and running.name != only):
                raise ExperimentError("no experiment is running" if only is None else f"{only!r} is not running")
            edited = edit(running)
            result[:] = [edited]
            return self._dump([edited if e is running else e for e in experiments])

        self.store.update(self.key, change)
        return result[0]

    def set_traffic(self, traffic: float, by: str | None = None) -> Experiment:
        traffic = check_traffic(traffic)
        who, now = by or operator(), _now()
        return self._change_running(
            lambda e: replace(
                e, traffic=traffic, updated_at=now, changes=(*e.changes, {"at": now, "by": who, "traffic": traffic})
            )
        )

    def end(
        self, reason: str, status: Status = "stopped", by: str | None = None, only: str | None = None
    ) -> Experiment:
        """End the running experiment (`only`: only if it is that one, so a late guardrail never ends a newer
        experiment). Refused (ExperimentError) when none, or another, is running."""
        who, now = by or operator(), _now()
        return self._change_running(
            lambda e: replace(e, status=status, updated_at=now, ended_at=now, reason=f"{reason} ({who})"), only
        )
