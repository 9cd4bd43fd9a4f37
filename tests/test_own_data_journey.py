"""The README's *Bring your own data* journey, as a new user follows it: a first `make materialize` on the defaults,
then the README's own command (verbatim) with the example files, then `make serve` with the same variables: the new
source is what `/predict` serves, `/users/{id}/recommendations` answers from the batch table of the new version, and
`GET /users` (what the page states) names where the players come from."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from gamerec_assets import backends
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store.registry import MODEL_NAME, ModelRegistry
from tests.support.net import free_port
from tests.support.uvicorn_server import wait_ready

pytestmark = pytest.mark.integration  # two whole-graph runs through make and a served stack: minutes

ROOT = Path(__file__).resolve().parents[1]


def readme_block(heading: str) -> str:
    """The first bash block after `heading` in the README."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(heading) :]
    match = re.search(r"^```bash\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert match is not None, f"no bash block after {heading!r}"
    return match.group(1)


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GAMEREC_", "DAGSTER_", "AWS_ENDPOINT"))}
    env.update(GAMEREC_HOME=str(home), PATH=f"{ROOT / '.venv' / 'bin'}:{env['PATH']}")
    return env


def run(command: list[str], env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def test_bring_your_own_data_after_a_first_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = clean_env(home)
    run(["make", "materialize"], env)  # the first run: the bundled RAWG games and simulated players
    registry = ModelRegistry(backends.artifact_store(StorageSettings.from_env({"GAMEREC_HOME": str(home)})), MODEL_NAME)
    first = registry.production()
    assert first is not None and registry.manifest(first)["data"]["interactions"] == "simulated"

    block = readme_block("## Bring your own data")
    assert "GAMEREC_CATALOG=file:examples/catalogue.csv" in block and "make materialize" in block
    run(["bash", "-euo", "pipefail", "-c", block], env)  # verbatim
    version = registry.production()
    assert version != first
    interactions = registry.manifest(version)["data"]["interactions"]  # relative paths resolved from the cwd
    assert interactions == f"file:{ROOT / 'examples' / 'interactions.csv'}"

    api_port, dagster_port = free_port(), free_port()
    variables = dict(re.findall(r"(GAMEREC_\w+)=(\S+)", block))  # "make serve with the same variables"
    serve_env = {**env, **variables, "GAMEREC_API_PORT": str(api_port), "DAGSTER_PORT": str(dagster_port)}
    proc = subprocess.Popen(
        ["make", "serve"], cwd=ROOT, env=serve_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as c:
            wait_ready(c, 120)
            answer = c.post("/predict", json={"user_id": "alice", "k": 5}).json()
            assert answer["model_version"] == version and answer["source"] == "item_cf" and answer["items"]
            batch = c.get("/users/alice/recommendations").json()
            assert (batch["source"], batch["model_version"], batch["batch_model_version"]) == (
                "batch",
                version,
                version,
            )
            users = c.get("/users").json()
            assert (users["interaction_source"], users["simulated"]) == ("file:interactions.csv", False)
            assert users["catalog_source"] == "file:catalogue.csv"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
