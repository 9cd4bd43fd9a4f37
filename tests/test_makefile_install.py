"""`make install`'s progress (issue #26 §4): one line per step with its time, pip's output in the install log, the
log's tail on the screen when a step fails; the [mysql] extra only when MySQL is configured (§6). The real Makefile
runs with `PIP` replaced by a command that logs its arguments (installing for real takes minutes)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _make(tmp_path: Path, pip: str, env: dict[str, str] | None = None, target: str = "install") -> tuple[int, str]:
    """`make TARGET` in a copy of the Makefile and pyproject.toml, with a venv whose python is this one."""
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(ROOT / name, repo / name)
    (repo / ".venv" / "bin").mkdir(parents=True, exist_ok=True)
    python = repo / ".venv" / "bin" / "python"
    if not python.exists():
        python.symlink_to(sys.executable)
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    done = subprocess.run(
        ["make", "--no-print-directory", target, f"PIP={pip}"],
        cwd=repo,
        env={**keep, "GAMEREC_HOME": str(tmp_path / "home"), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def test_one_line_per_install_step_with_its_time(tmp_path: Path) -> None:
    status, output = _make(tmp_path, "echo pip install")
    assert status == 0, output
    assert output.splitlines() == [
        line
        for line in output.splitlines()
        if re.fullmatch(
            r"gamerec: (creating \.venv|upgrading pip|installing the project into \.venv) \.\.\. \d+ s", line
        )
    ]
    assert len(output.splitlines()) == 3
    log = (tmp_path / "home" / "logs" / "install.log").read_text()
    assert "pip install -e ." in log  # pip's own output is in the log, not on the screen
    assert "[mysql]" not in log  # a SQLite-only install leaves the MySQL packages out
    # a second run: nothing to do, nothing printed
    assert _make(tmp_path, "echo pip install") == (0, "")


@pytest.mark.parametrize("variable", ["GAMEREC_MYSQL_URL", "DAGSTER_MYSQL_HOST"])
def test_the_mysql_extra_is_installed_when_mysql_is_configured(tmp_path: Path, variable: str) -> None:
    status, output = _make(tmp_path, "echo pip install", {variable: "mysql+pymysql://root@db/x"})
    assert status == 0, output
    assert re.search(r"^gamerec: installing the MySQL extra .*\.\.\. \d+ s$", output, re.MULTILINE), output
    assert "pip install -e .[mysql]" in (tmp_path / "home" / "logs" / "install.log").read_text()


def test_a_failed_step_shows_the_tail_of_the_log(tmp_path: Path) -> None:
    status, output = _make(tmp_path, "sh -c 'echo ERROR: no matching distribution for numba; exit 1'")
    assert status != 0
    assert "gamerec: upgrading pip ... failed; the last lines of" in output
    assert "ERROR: no matching distribution for numba" in output
