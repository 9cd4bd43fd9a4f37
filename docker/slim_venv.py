"""Build-time slimming of the image's venv (the installed dependencies are 1.47 GB; the image's target is 1.2 GB).

Only what no process of the image loads goes:
- the libraries' own test suites, C/Cython sources and headers, type stubs, JavaScript source maps;
- optional parts nothing here imports: pyarrow's Flight, S3, ORC and HDFS modules, its Substrait bindings
  (libarrow_substrait itself stays: pyarrow.lib links it) and its C++ test module (`pyarrow.fs` skips a missing
  filesystem module by design); botocore's API models other than S3 and the credential services (STS, SSO); the
  MySQL connector's optional authentication plugins (Kerberos, LDAP, OCI, OpenID, WebAuthn/FIDO);
- wandb's `wandb-symon` (the `wandb leet symon` terminal monitor only);
- symbol tables of the native libraries and executables, when `strip` is there (binutils: .ci/docker.sh's build base
  has it, an online build installs it in the build stage); not the libraries auditwheel patched into `*.libs/`
  (stripping a patchelf'd library, numpy.libs' OpenBLAS for one, breaks it);
- duplicates: identical files become hard links (a layer stores a hard link once).
Prints the size before and after.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

TESTED_PACKAGES = ("numpy", "scipy", "pandas", "pyarrow", "numba", "llvmlite", "matplotlib", "sqlalchemy", "graphene")
SOURCE_SUFFIXES = (".pyi", ".pxd", ".pyx", ".pxi", ".h", ".hpp", ".c", ".cc", ".cpp", ".map")
PYARROW_OPTIONAL = (
    "_flight.",
    "libarrow_flight.",
    "libarrow_python_flight.",
    "_substrait.",
    "_s3fs.",
    "libarrow_s3.",
    "_orc.",
    "_dataset_orc.",
    "_hdfs.",
    "_pyarrow_cpp_tests.",
)
BOTOCORE_KEEP = {"s3", "sts", "sso", "sso-oidc"}
MYSQL_PLUGINS_KEEP = {"mysql_native_password.so"}
# Where auditwheel puts the libraries it patched (patchelf): never stripped.
PATCHED_LIBS = ".libs"
# Only for `wandb leet symon` (a terminal system monitor), never run by a run.
UNUSED_FILES = ("wandb/bin/wandb-symon",)


def size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def prune(site: Path) -> None:
    for package in TESTED_PACKAGES:
        for tests in list((site / package).rglob("tests")):
            if tests.is_dir():
                remove(tests)
    for path in list(site.rglob("*")):
        if path.is_file() and path.suffix in SOURCE_SUFFIXES:
            remove(path)
    for name in ("include", "src"):
        remove(site / "pyarrow" / name)
    for path in list((site / "pyarrow").iterdir()):
        if path.name.startswith(PYARROW_OPTIONAL):
            remove(path)
    data = site / "botocore" / "data"
    for path in list(data.iterdir()):
        if path.is_dir() and path.name not in BOTOCORE_KEEP:
            remove(path)
    for name in UNUSED_FILES:
        remove(site / name)
    vendor = site / "mysql" / "vendor"
    for path in list((vendor / "plugin").glob("*")):
        if path.name not in MYSQL_PLUGINS_KEEP:
            remove(path)


def strip(site: Path) -> None:
    tool = shutil.which("strip")
    if tool is None:
        print("slim_venv: no `strip` (binutils): the native libraries keep their debug symbols")
        return
    files = [
        str(p)
        for p in site.rglob("*")
        if (".so" in p.suffixes or p.parent.name == "bin")
        and p.is_file()
        and not p.is_symlink()
        and not any(part.endswith(PATCHED_LIBS) for part in p.relative_to(site).parts)
        and p.read_bytes()[:4] == b"\x7fELF"
    ]
    subprocess.run([tool, "--strip-unneeded", *files], check=True)
    print(f"slim_venv: stripped {len(files)} native files")


def hardlink_duplicates(root: Path) -> None:
    by_size: dict[int, list[Path]] = defaultdict(list)
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_size > 65536:
            by_size[path.stat().st_size].append(path)
    for paths in by_size.values():
        if len(paths) < 2:
            continue
        first: dict[str, Path] = {}
        for path in paths:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in first:
                path.unlink()
                os.link(first[digest], path)
            else:
                first[digest] = path


def main() -> int:
    venv = Path(sys.argv[1] if len(sys.argv) > 1 else sys.prefix)
    site = next(venv.glob("lib/python3*/site-packages"))
    before = size(venv)
    prune(site)
    strip(site)
    hardlink_duplicates(venv)
    after = size(venv)  # hard links counted once each: what the layer stores is smaller still
    print(f"slim_venv: {venv} {before / 1e6:.0f} MB -> {after / 1e6:.0f} MB (before hard links)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
