"""`gamerec models list | promote | rollback` against real stores (local folder, moto S3): broken registries give
one line on stderr and exit code 2, and nothing unservable is ever promoted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gamerec_assets import backends
from gamerec_assets.store.registry import MODEL_NAME, ModelRegistry, new_version

ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------------------------------------------
# `gamerec models ...` against real stores: broken registries give one line on stderr and exit code 2


def _model(seed: int = 0):
    import numpy as np
    import scipy.sparse as sp

    from gamerec_assets.recsys import ItemCF, ModelArtifact

    x = sp.random(40, 12, density=0.3, random_state=seed, format="csr")
    fitted = ItemCF("cosine", 5).fit(x)
    return ModelArtifact(np.arange(12), fitted.similarity, np.ones(12), {"parameters": fitted.params})


def gamerec(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process (`python -m gamerec_assets.cli`, what the `gamerec` script runs)."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, "-m", "gamerec_assets.cli", *args], env=full, cwd=ROOT, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def gamerec_main(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`gamerec_assets.cli.main(argv)` in this process with `env` set: the same code path, without the child's
    import time (numba's runtime), for the many error cases."""
    import contextlib
    import io
    from unittest import mock

    from gamerec_assets.cli import main

    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["gamerec", *args], code, out.getvalue(), err.getvalue())


def assert_clean_error(out: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gamerec: error: "), out.stderr
    assert "Traceback" not in out.stderr and re.search(pattern, lines[0]), lines[0]


@pytest.fixture(params=["local", "s3"])
def cli_registry(request: pytest.FixtureRequest, tmp_path: Path):
    """A registry on a real store, and the environment that points the CLI at it."""
    from gamerec_assets.settings import StorageSettings

    env = {"GAMEREC_HOME": str(tmp_path / "home")}
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        env.update(GAMEREC_S3_BUCKET=bucket["bucket"], AWS_ENDPOINT_URL=bucket["endpoint"], GAMEREC_S3_PREFIX="gr")
    registry = ModelRegistry(backends.artifact_store(StorageSettings.from_env(env)), MODEL_NAME)
    return registry, env


def test_cli_promote_list_rollback(cli_registry) -> None:
    registry, env = cli_registry
    v1, v2 = registry.publish(_model(1)), registry.publish(_model(2))
    assert gamerec_main(env, "models", "promote", v1).returncode == 0
    out = gamerec(env, "models", "promote", v2)
    assert out.returncode == 0 and f"production -> {v2} (previous: {v1})" in out.stdout
    out = gamerec_main(env, "models", "list", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["production"] == v2
    assert gamerec_main(env, "models", "rollback").returncode == 0 and registry.production() == v1


def test_cli_broken_versions_are_listed_and_never_promoted(cli_registry) -> None:
    registry, env = cli_registry
    good = registry.publish(_model(1))
    assert gamerec_main(env, "models", "promote", good).returncode == 0
    store = registry.store
    truncated_manifest, half_written, malformed = new_version(), new_version(), new_version()
    files = _model(2).to_files()
    store.put(f"item_similarity/{truncated_manifest}/similarity.npz", files["similarity.npz"])
    store.put(f"item_similarity/{truncated_manifest}/manifest.json", files["manifest.json"][:30])
    manifest = {**json.loads(files["manifest.json"]), "version": half_written}
    store.put(f"item_similarity/{half_written}/similarity.npz", files["similarity.npz"][:200])
    store.put(f"item_similarity/{half_written}/manifest.json", json.dumps(manifest).encode())
    bad = _model(3)
    bad.similarity.indices[:3] = 400
    arrays = bad.arrays()  # written around the validation, as a foreign or older writer could have
    import hashlib
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    store.put(f"item_similarity/{malformed}/similarity.npz", buf.getvalue())
    store.put(
        f"item_similarity/{malformed}/manifest.json",
        json.dumps({**manifest, "version": malformed, "sizes": {},
                    "files": {"similarity.npz": hashlib.sha256(buf.getvalue()).hexdigest()}}).encode(),
    )  # fmt: skip

    out = gamerec(env, "models", "list")  # a child process: the real entry point
    assert out.returncode == 0, out.stderr
    lines = {line.split()[1]: line for line in out.stdout.splitlines()[1:]}
    assert lines[good].startswith("* ")
    assert lines[truncated_manifest].startswith("! ") and "BROKEN" in lines[truncated_manifest]
    assert "BROKEN" in lines[half_written] and "truncated" in lines[half_written]
    out = gamerec_main(env, "models", "list", "--json")
    problems = {v["version"]: v["problem"] for v in json.loads(out.stdout)["versions"]}
    assert problems[good] is None and problems[truncated_manifest] and problems[half_written]

    assert_clean_error(gamerec(env, "models", "promote", half_written), "sha256")  # the real entry point
    for version, pattern in (
        (truncated_manifest, r"manifest\.json is unreadable"),
        (half_written, r"sha256"),
        (malformed, r"similarity\.indices: 3 entries out of range \[0, 12\)"),
        ("_latest.json", r"invalid model version name '_latest\.json'"),
        ("v" + "1" * 4999, r"invalid model version name .*\(5000 characters\)"),
        ("../../etc/passwd", "invalid model version name"),
        (new_version(), "does not exist"),
    ):
        assert_clean_error(gamerec_main(env, "models", "promote", version), pattern)
        assert registry.production() == good
    assert registry.alias()["previous"] == []


def test_cli_truncated_alias_is_one_line(cli_registry) -> None:
    registry, env = cli_registry
    good = registry.publish(_model(1))
    registry.store.replace("item_similarity/_aliases/production.json", b'{"version": "v2026')
    out = gamerec(env, "models", "list")
    assert_clean_error(out, r"production\.json is unreadable")
    assert good in out.stdout  # the versions are still listed
    assert_clean_error(gamerec_main(env, "models", "promote", good), "unreadable")
    assert_clean_error(gamerec_main(env, "models", "rollback"), "unreadable")
    assert registry.store.get("item_similarity/_aliases/production.json") == b'{"version": "v2026'
