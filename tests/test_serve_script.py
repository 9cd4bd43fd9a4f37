"""scripts/serve.sh (`make serve`, the end of `make run`): a busy port stops it before anything starts, with one
line; Ctrl-C stops the API and the whole Dagster UI (webserver, daemon, code server) within 5 s (issue #26 §3, §4)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[1]
STOP_BUDGET_S = 5.0


def _checkout(tmp_path: Path) -> Path:
    """A checkout serve.sh can run from: its script, the packages and workspace, and this venv as `.venv`."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / "scripts" / "serve.sh").write_bytes((ROOT / "scripts" / "serve.sh").read_bytes())
    for name in ("gamerec_assets", "gamerec_api", "workspace.yaml", "dagster.yaml"):
        (repo / name).symlink_to(ROOT / name)
    (repo / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return repo


def _env(tmp_path: Path, api_port: int, ui_port: int) -> dict[str, str]:
    keep = ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "PATH")
    env = {k: v for k, v in os.environ.items() if k in keep}
    home = tmp_path / "home"
    return env | {
        "GAMEREC_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster_home"),
        "GAMEREC_API_PORT": str(api_port),
        "DAGSTER_PORT": str(ui_port),
        "WANDB_MODE": "offline",
    }


@pytest.mark.parametrize("busy", ["GAMEREC_API_PORT", "DAGSTER_PORT"])
def test_a_busy_port_stops_it_before_anything_starts(tmp_path: Path, busy: str) -> None:
    repo = _checkout(tmp_path)
    api_port, ui_port = free_port(), free_port()
    taken = api_port if busy == "GAMEREC_API_PORT" else ui_port
    with socket.socket() as other:  # another program on the port
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", taken))
        other.listen()
        started = time.monotonic()
        done = subprocess.run(
            ["bash", "scripts/serve.sh"],
            cwd=repo,
            env=_env(tmp_path, api_port, ui_port),
            capture_output=True,
            text=True,
            timeout=60,
        )
        took = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""  # no URL announced
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{busy}={taken}: 127.0.0.1:{taken} is in use by another program;")
    assert f"{busy}=" in lines[0].split("pick another:", 1)[1] and "make serve" in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "home" / "logs" / "dagster-ui.log").exists()  # the Dagster UI never started
    assert took < 10, f"the check took {took:.1f} s"


@pytest.mark.integration
def test_ctrl_c_stops_the_api_and_the_dagster_ui_within_5_s(tmp_path: Path) -> None:
    repo = _checkout(tmp_path)
    api_port, ui_port = free_port(), free_port()
    env = _env(tmp_path, api_port, ui_port)
    # a terminal's Ctrl-C: SIGINT to the foreground process group, here the session serve.sh leads
    proc = subprocess.Popen(
        ["bash", "scripts/serve.sh"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        up = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/server_info", timeout=2) as answer:
                    up = answer.status == 200
            except OSError:
                pass
            if up:
                break
            time.sleep(0.5)
        assert up, f"the Dagster UI did not come up: exit {proc.poll()}"
        time.sleep(2)  # the daemon and the code server are running too
        servers = _all_children(proc.pid)
        assert len(servers) >= 4, servers  # API, dagster dev, webserver, daemon (and the code server)
        os.killpg(proc.pid, signal.SIGINT)
        sent = time.monotonic()
        proc.wait(timeout=30)
        while any(_pid_alive(pid) for pid in servers) and time.monotonic() - sent < 30:
            time.sleep(0.05)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    left = [pid for pid in servers if _pid_alive(pid)]
    print(f"Ctrl-C to everything stopped: {took:.2f} s ({len(servers)} processes)")
    assert left == [], left
    assert took < STOP_BUDGET_S, f"stopping took {took:.2f} s"
    output = proc.stdout.read() if proc.stdout else ""
    assert "\x1b[" not in output  # no colour codes when the output is not a terminal
    assert "Traceback" not in output, output
    assert "BetaWarning" not in output
    ui_log = (tmp_path / "home" / "logs" / "dagster-ui.log").read_text()
    assert "Serving dagster-webserver" in ui_log and "\x1b[" not in ui_log


def _all_children(pid: int) -> list[int]:
    """Every descendant of `pid` (servers in their own sessions included), from /proc."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    parent = {int(a): int(b) for a, b in (line.split() for line in out.splitlines())}
    found, frontier = [], {pid}
    while frontier:
        frontier = {child for child, up in parent.items() if up in frontier}
        found.extend(sorted(frontier))
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped
    except OSError:
        return False
