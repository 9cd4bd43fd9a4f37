"""Build-time warm-up of the image: compile every numba kernel into NUMBA_CACHE_DIR, then throw the data away.

The kernels are compiled for the argument types they are called with, so the warm-up calls them the way a
container does: a materialization of every asset of the bundled data (the fit, scoring and simulation kernels),
then the API's model load (`load_state`, which runs the one-history kernel of /predict). Without it, a container's
first model load compiled them (9.5 s); with it the machine code loads from the cache in milliseconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    cache = os.environ.get("NUMBA_CACHE_DIR")
    if not cache:
        print("warm_kernels: NUMBA_CACHE_DIR is not set: nothing would be kept", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="gamerec-warm-"))
    env = {**os.environ, "GAMEREC_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home")}
    (home / "dagster_home").mkdir()
    shutil.copy("/app/dagster.yaml", home / "dagster_home" / "dagster.yaml")
    try:
        started = time.monotonic()
        command = ["dagster", "asset", "materialize", "-m", "gamerec_assets.definitions", "--select", "*"]
        done = subprocess.run(command, env=env, cwd=home, capture_output=True, text=True, check=False)
        if done.returncode:
            print(done.stdout[-4000:], done.stderr[-8000:], sep="\n", file=sys.stderr)
            print(f"warm_kernels: the materialization failed (exit {done.returncode})", file=sys.stderr)
            return 1
        print(f"warm_kernels: materialized every asset in {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        load = (
            "from gamerec_api.state import load_state\n"
            "from gamerec_assets import backends\n"
            "from gamerec_assets.settings import Settings\n"
            "state = load_state(backends.registry(Settings.from_env().storage))\n"
            "print('warm_kernels: loaded model', state.version)\n"
        )
        subprocess.run([sys.executable, "-c", load], env=env, cwd=home, check=True)
        print(f"warm_kernels: the API's model load in {time.monotonic() - started:.1f} s")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    import gamerec_assets.recsys.kernels as kernels  # where the cache is keyed: the installed file, not a checkout

    kept = sorted(p.name for p in Path(cache).rglob("*.nbi"))
    print(f"warm_kernels: {len(kept)} compiled kernels in {cache} for {kernels.__file__}: {', '.join(kept)}")
    return 0 if kept else 1


if __name__ == "__main__":
    sys.exit(main())
