"""What a test does when a service or a data file it needs is missing: skip locally, fail under CI=true."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parents[2]


def unavailable(what: str, why: object) -> None:
    message = f"{what} is not available: {why}"
    if IN_CI:
        pytest.fail(message + " (CI=true: this test must not be skipped)")
    pytest.skip(message)


def shared_data_dir() -> Path | None:
    """The real public data (`shared/data`): GAMEREC_SHARED_DATA, else beside this checkout, else beside the
    checkout this one was cloned from (a local `origin`: a clean clone made in a temporary folder)."""
    candidates = [Path(p) for p in [os.environ.get("GAMEREC_SHARED_DATA", "")] if p]
    candidates.append(ROOT.parent / "shared" / "data")
    origin = subprocess.run(
        ["git", "-C", str(ROOT), "config", "--get", "remote.origin.url"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if origin and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / "shared" / "data")
    return next((c for c in candidates if c.is_dir()), None)


def steam_log_path() -> Path:
    """The Kaggle steam-200k log; a failure, not a skip, under CI=true when it cannot be found."""
    data = shared_data_dir()
    path = data / "steam-200k" / "steam-200k.csv.gz" if data else None
    if path is None or not path.exists():
        unavailable("the steam-200k log (shared/data, or GAMEREC_SHARED_DATA)", path or "no shared/data folder found")
    assert path is not None
    return path
