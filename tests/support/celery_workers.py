"""RabbitMQ (the scale location's Celery broker) and Celery worker processes started by the tests themselves."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import started
from tests.support.availability import ROOT, unavailable

# A vhost of its own, so the tests' queues never meet those of anything else on the same RabbitMQ.
RABBITMQ_VHOST = os.environ.get("GAMEREC_TEST_RABBITMQ_VHOST", "gamerec_test")
RABBITMQ_URL = os.environ.get("GAMEREC_TEST_RABBITMQ_URL", f"pyamqp://guest:guest@127.0.0.1:5672/{RABBITMQ_VHOST}")


def rabbitmq_error(url: str) -> Exception | None:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        return exc
    return None


def rabbitmq_broker_url() -> str:
    """The broker URL of the local RabbitMQ (its test vhost created with rabbitmqctl when missing); a failure, not a
    skip, under CI=true when it does not answer."""
    error = rabbitmq_error(RABBITMQ_URL)
    if error is not None and shutil.which("rabbitmqctl"):  # the server answers, the vhost may be missing
        for command in (
            ["add_vhost", RABBITMQ_VHOST],
            ["set_permissions", "-p", RABBITMQ_VHOST, "guest", ".*", ".*", ".*"],
        ):
            subprocess.run(["rabbitmqctl", "-q", *command], capture_output=True, timeout=120, check=False)
        error = rabbitmq_error(RABBITMQ_URL)
    if error is not None:
        unavailable(f"RabbitMQ at {RABBITMQ_URL}", error)
    return RABBITMQ_URL


class CeleryWorker:
    """One `python -m gamerec_assets.scale.worker` process (its own session, directory and DAGSTER_HOME)."""

    def __init__(self, name: str, directory: Path, env: dict[str, str]) -> None:
        self.name = name
        self.directory = directory
        self.log = directory / "worker.log"
        directory.mkdir(parents=True)
        (directory / "dagster_home").mkdir()
        (directory / "dagster_home" / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
        bin_dir = str(Path(sys.executable).parent)
        full_env = {
            **os.environ,
            **env,
            "PYTHONPATH": str(ROOT),
            "DAGSTER_HOME": str(directory / "dagster_home"),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",  # celery's own children: this venv
        }
        command = [sys.executable, "-m", "gamerec_assets.scale.worker", "-c", "1", "-n", f"{name}@%h"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=directory, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        started.record(f"Celery worker {name}")

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"worker {self.name} exited with {self.process.returncode}:\n{self.log.read_text()[-4000:]}"
                )
            if " ready." in self.log.read_text(errors="replace"):
                return
            time.sleep(0.2)
        pytest.fail(f"worker {self.name} not ready after {timeout} s:\n{self.log.read_text()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (main process and pool): a machine lost, no goodbye."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # warm shutdown
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


class CeleryWorkers:
    """Starts workers for a test (`start(env, n)`, each ready when it returns) and stops every one of them after."""

    def __init__(self, broker: str, directory: Path) -> None:
        self.broker = broker
        self.directory = directory
        self.started: list[CeleryWorker] = []

    def start(self, env: dict[str, str], n: int = 2) -> list[CeleryWorker]:
        from amqp.exceptions import NotFound
        from kombu import Connection

        # Tasks left by an interrupted session must not reach these workers (no queue yet: nothing to purge).
        with Connection(self.broker) as conn, contextlib.suppress(NotFound):
            conn.default_channel.queue_purge("dagster")
        env = {**env, "GAMEREC_CELERY_BROKER": self.broker}
        first = len(self.started)
        workers = [CeleryWorker(f"w{i}", self.directory / f"worker-{i}", env) for i in range(first, first + n)]
        self.started.extend(workers)
        for worker in workers:
            worker.wait_ready()
        return workers

    def stop_all(self) -> None:
        for worker in self.started:  # every warm shutdown at once, then whatever is left is killed
            if worker.process.poll() is None:
                os.killpg(worker.process.pid, signal.SIGTERM)
        for worker in self.started:
            worker.stop()
