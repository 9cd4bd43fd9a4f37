#!/usr/bin/env bash
# Serve the API (127.0.0.1:8000) next to the Dagster UI and daemon (127.0.0.1:3000); Ctrl-C stops both.
# GAMEREC_API_HOST, GAMEREC_API_PORT and DAGSTER_PORT move them: their defaults here are settings.py's (ApiSettings)
# and the README's Configuration table (tests/test_readme_tables.py checks that the three agree).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BIN=$REPO/.venv/bin
: "${GAMEREC_HOME:=$PWD/.gamerec}" "${DAGSTER_HOME:=$GAMEREC_HOME/dagster_home}"
export GAMEREC_HOME DAGSTER_HOME
mkdir -p "$DAGSTER_HOME"
"$BIN/python" -m gamerec_api --host "${GAMEREC_API_HOST:-127.0.0.1}" --port "${GAMEREC_API_PORT:-8000}" &
api=$!
trap 'kill $api 2>/dev/null || true' EXIT INT TERM
echo "API:       http://${GAMEREC_API_HOST:-127.0.0.1}:${GAMEREC_API_PORT:-8000}/"
echo "Dagster UI: http://127.0.0.1:${DAGSTER_PORT:-3000}/"
# The service first: the UI's webserver, daemon and code server each import the whole project, and starting them
# beside the API on a small machine delays the API by seconds. Wait until the API has loaded its model (or has none
# to load, or 30 s passed), then start the UI.
"$BIN/python" - "${GAMEREC_API_HOST:-127.0.0.1}" "${GAMEREC_API_PORT:-8000}" "$api" <<'PY' || true
import json, os, sys, time, urllib.error, urllib.request

url = f"http://{sys.argv[1]}:{sys.argv[2]}/readyz"
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        os.kill(int(sys.argv[3]), 0)  # the API has not exited (a busy port, a bad setting: its own error says)
    except OSError:
        break
    try:
        urllib.request.urlopen(url, timeout=1)
        break  # 200: ready
    except urllib.error.HTTPError as exc:  # 503: stop waiting unless it is still loading
        if json.loads(exc.read() or b"{}").get("status") != "loading":
            break
    except OSError:
        pass  # not listening yet
    time.sleep(0.2)
PY
# From DAGSTER_HOME, so that Dagster does not warn that the repo's ./dagster.yaml is not the one it uses; `dagster
# dev` is the documented one-process way to run webserver + daemon (its suggested `dg dev` needs another package).
cd "$DAGSTER_HOME"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's modules, whatever the working directory
PYTHONWARNINGS="ignore:Function \`dev_command\` is superseded" \
  "$BIN/dagster" dev -w "$REPO/workspace.yaml" -h 127.0.0.1 -p "${DAGSTER_PORT:-3000}"
