"""Experiment tracking with Weights & Biases: offline into GAMEREC_HOME by default, online when WANDB_API_KEY is set.

The mode and directory come from `TrackingSettings` (through `gamerec_assets.resources.from_settings`): the resource
itself never looks at the environment.

`read_offline_run` reads an offline run file back (config, history rows, summary), so tests and people without a
W&B account can see what was logged.
"""

import json
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from gamerec_assets.settings import DEFAULT_HOME

BLOCK = 32768
HEADER = 7  # leveldb-log record header: crc32 (4), length (2), type (1)


class ExperimentTracker(dg.ConfigurableResource):
    """A W&B run per materialization. `mode`: offline, online or disabled (`TrackingSettings.mode`)."""

    project: str = "gamerec"
    mode: str = "offline"
    directory: str = str(DEFAULT_HOME)  # runs go to <directory>/wandb

    def resolved_mode(self) -> str:
        """The mode runs use (settings resolved it already; item_similarity's metadata reports it)."""
        return self.mode

    @contextmanager
    def run(self, name: str, job_type: str, config: dict[str, Any]) -> Iterator[Any]:
        import wandb

        directory = Path(self.directory)
        directory.mkdir(parents=True, exist_ok=True)
        run = wandb.init(
            project=self.project,
            name=name,
            job_type=job_type,
            config=config,
            dir=str(directory),
            mode=self.resolved_mode(),
            reinit="create_new",
            settings=wandb.Settings(silent=True, console="off"),
        )
        try:
            yield run
        finally:
            run.finish()


def _records(path: Path) -> Iterator[bytes]:
    """The payloads of a W&B datastore file (a leveldb log after a 7-byte ':W&B' header)."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    pos, pending = 7, b""
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:
            pos += left_in_block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + HEADER])
        payload = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            break
        pending += payload
        if kind in (1, 4):  # FULL or LAST
            yield pending
            pending = b""


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def read_offline_run(run_dir: str | Path) -> dict[str, Any]:
    """config, history (list of dicts) and summary of an offline run directory."""
    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = Path(run_dir)
    (path,) = run_dir.glob("run-*.wandb")
    out: dict[str, Any] = {"id": path.stem.removeprefix("run-"), "config": {}, "history": [], "summary": {}}
    for payload in _records(path):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["config"].update({_key(i): json.loads(i.value_json) for i in record.run.config.update})
            out["name"] = record.run.display_name
        elif kind == "config":
            out["config"].update({_key(i): json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            out["history"].append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            out["summary"].update({_key(i): json.loads(i.value_json) for i in record.summary.update})
    return out


def find_offline_run(directory: str | Path, run_id: str) -> Path:
    matches = list(Path(directory).glob(f"wandb/offline-run-*-{run_id}"))
    if not matches:
        raise FileNotFoundError(f"no offline W&B run {run_id} under {directory}/wandb")
    return matches[0]


def wandb_table(frame: Any) -> Any:
    """A polars frame as a wandb.Table."""
    import wandb

    return wandb.Table(columns=list(frame.columns), data=[list(r) for r in frame.iter_rows()])
