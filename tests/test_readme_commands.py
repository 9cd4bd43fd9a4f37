"""Every shell block of the README runs as written from a fresh copy of the repo, or says why it cannot.

A block whose info string says `no-run` (```` ```bash no-run ````, first line `# no-run: <why>`) needs data or hosts
the repo does not have, or runs until stopped; every other shell block runs, in README order (a newcomer reading
top to bottom), with `bash -euo pipefail` in one copy of the checkout (tracked and untracked, not ignored, files),
with this venv as its `.venv` and first on PATH and no deployment variables. So that the blocks take seconds, not
minutes, the deployment's sources are the shipped example files (`examples/`; a block that names its own sources
overrides them) and the scale location fits two item blocks. `make`'s install step is marked done (this venv is
the project's), so no block installs anything.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHELLS = {"bash", "sh", "shell"}
FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^`\n]*)\n(?P<body>.*?)^(?P=indent)``` *$", re.MULTILINE | re.DOTALL)
BUDGET_S = 240  # the whole run; each block gets what is left
# The shipped example files as the deployment's sources, and two item blocks (not 8) for the scale location's job.
FAST_ENV = {
    "GAMEREC_CATALOG": "file:examples/catalogue.csv",
    "GAMEREC_INTERACTIONS": "file:examples/interactions.csv",
    "GAMEREC_SCALE_BLOCKS": "2",
}


def shell_blocks() -> list[tuple[int, str, str]]:
    """(line, info string, body) of every fenced shell block of README.md."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(readme):
        info = match.group("info").strip()
        if info.split(" ", 1)[0] in SHELLS:
            line = readme.count("\n", 0, match.start()) + 1
            blocks.append((line, info, textwrap.dedent(match.group("body"))))
    return blocks


def test_every_shell_block_runs_or_says_why_not() -> None:
    blocks = shell_blocks()
    assert len(blocks) >= 8
    for line, info, body in blocks:
        if "no-run" in info.split():
            assert body.startswith("# no-run: "), f"README.md:{line}: a no-run block starts with `# no-run: <why>`"
    assert sum("no-run" not in info.split() for _, info, _ in blocks) >= 4


def _copy_checkout(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)  # keeps mtimes: make sees pyproject.toml older than the install stamp
    # numba's compiled-kernel cache (keyed on the source's mtime and size, both kept): what is under test is the
    # README's commands, not another half minute of compiling the same kernels
    for cached in ROOT.glob("gamerec_assets/**/__pycache__/*.nb[ic]"):
        target = dest / cached.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(cached, target)


@pytest.mark.integration
def test_runnable_blocks_run_from_a_fresh_copy(tmp_path: Path) -> None:
    venv = Path(sys.prefix)
    assert (venv / "bin" / "dagster").exists(), f"run the tests with the project's venv, not {sys.executable}"
    clone = tmp_path / "gamerec"
    _copy_checkout(clone)
    (clone / ".venv").symlink_to(venv, target_is_directory=True)
    stamp = tmp_path / "installed"
    stamp.touch()
    env = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "TERM")}
    env |= {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "MAKEFLAGS": f"STAMP_RUN={stamp}",  # a command-line override: the project is installed (this venv)
        # the copy's default home, said out loud: this venv's editable install imports the checkout's modules
        # in console scripts (`.venv/bin/gamerec`), whose default home is the checkout's, not the copy's
        "GAMEREC_HOME": str(clone / ".gamerec"),
        "WANDB_MODE": "offline",
        **FAST_ENV,
    }
    deadline = time.monotonic() + BUDGET_S
    ran = 0
    for line, info, body in shell_blocks():
        if "no-run" in info.split():
            continue
        left = deadline - time.monotonic()
        assert left > 0, f"the README's blocks took over {BUDGET_S} s (reached README.md:{line})"
        try:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", body],
                cwd=clone,
                env=env,
                capture_output=True,
                text=True,
                timeout=left,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"README.md:{line}: still running after the {BUDGET_S} s budget:\n{body}")
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        assert done.returncode == 0, (
            f"README.md:{line} exited {done.returncode}:\n{body}\n--- output (tail) ---\n{tail}"
        )
        ran += 1
    assert ran >= 4
    # the copy's own state, not the checkout's: the blocks ran where a clone would run them
    assert (clone / ".gamerec" / "dagster_home" / "dagster.yaml").is_file()
