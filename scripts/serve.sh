#!/usr/bin/env bash
# Serve the API (127.0.0.1:8000) next to the Dagster UI and daemon (127.0.0.1:3000); Ctrl-C stops both.
# GAMEREC_API_HOST, GAMEREC_API_PORT and DAGSTER_PORT move them: their defaults here are settings.py's (ApiSettings)
# and the README's Configuration table (tests/test_readme_tables.py checks that the three agree).
#
# Before anything starts, the settings and BOTH ports are checked (`python -m gamerec_assets.settings --check
# --ports`): a bad file setting or a busy port is one line naming the variable and the fix, exit code 2, and nothing
# is left running. The API's log stays on the screen; the Dagster UI's (webserver, daemon, code server) goes to
# $GAMEREC_HOME/logs/dagster-ui.log without colour codes. Each server runs in its own process group, so Ctrl-C (or
# TERM) stops the whole stack within 5 s: SIGINT (Ctrl-C's own signal) to both groups, SIGKILL to what is left after
# 3 s (the API stops in under a second; `dagster dev` waits up to 60 s for its daemon, tests/test_serve_script.py).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BIN=$REPO/.venv/bin
: "${GAMEREC_HOME:=$PWD/.gamerec}" "${DAGSTER_HOME:=$GAMEREC_HOME/dagster_home}"
export GAMEREC_HOME DAGSTER_HOME
API_HOST=${GAMEREC_API_HOST:-127.0.0.1}
API_PORT=${GAMEREC_API_PORT:-8000}
UI_PORT=${DAGSTER_PORT:-3000}
# On a problem the assignment fails with the check's status (2) and `set -e` ends the script: nothing has started.
# The exports are the path settings made absolute: the Dagster UI runs from DAGSTER_HOME, not from here.
exports=$("$BIN/python" -m gamerec_assets.settings --check --ports --export --command "make serve")
eval "$exports"
mkdir -p "$DAGSTER_HOME" "$GAMEREC_HOME/logs"
UI_LOG=$GAMEREC_HOME/logs/dagster-ui.log

api="" ui=""
stop() {
  trap - EXIT INT TERM
  local group alive
  for group in $api $ui; do kill -INT -- "-$group" 2>/dev/null || true; done
  for _ in $(seq 30); do
    alive=""
    for group in $api $ui; do kill -0 -- "-$group" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for group in $api $ui; do kill -KILL -- "-$group" 2>/dev/null || true; done
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

# setsid: a process group (and session) of its own, so `stop` reaches every process a server started.
setsid "$BIN/python" -m gamerec_api --host "$API_HOST" --port "$API_PORT" &
api=$!
# The service first: the UI's webserver, daemon and code server each import the whole project, and starting them
# beside the API on a small machine delays the API by seconds. Wait until the API has loaded its model (or has none
# to load, or 30 s passed), then start the UI.
"$BIN/python" - "$API_HOST" "$API_PORT" "$api" <<'PY' || true
import json, os, sys, time, urllib.error, urllib.request

url = f"http://{sys.argv[1]}:{sys.argv[2]}/readyz"
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        os.kill(int(sys.argv[3]), 0)  # the API has not exited (a bad setting: its own error says)
    except OSError:
        break
    try:
        urllib.request.urlopen(url, timeout=1)
        break  # 200: ready
    except urllib.error.HTTPError as exc:  # 503: stop waiting unless it is still loading
        try:
            status = json.loads(exc.read() or b"{}").get("status")
        except ValueError:
            break  # not the API's answer
        if status != "loading":
            break
    except OSError:
        pass  # not listening yet
    time.sleep(0.2)
PY
kill -0 "$api" 2>/dev/null || { wait "$api" || status=$?; echo "gamerec: the API stopped (exit ${status:-0})" >&2; exit "${status:-1}"; }
echo "API:        http://$API_HOST:$API_PORT/"
# From DAGSTER_HOME, so that Dagster does not warn that the repo's ./dagster.yaml is not the one it uses; `dagster
# dev` is the documented one-process way to run webserver + daemon (its suggested `dg dev` needs another package).
# Its log formatter colours every line whatever the output is: sed takes the codes out.
cd "$DAGSTER_HOME"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's modules, whatever the working directory
export PYTHONWARNINGS="ignore:Function \`dev_command\` is superseded"
export UI_LOG UI_PORT BIN REPO
setsid bash -c 'set -o pipefail; "$BIN/dagster" dev -w "$REPO/workspace.yaml" -h 127.0.0.1 -p "$UI_PORT" 2>&1 \
  | sed -u -e "s/\x1b\[[0-9;]*[A-Za-z]//g" >>"$UI_LOG"' &
ui=$!
echo "Dagster UI: http://127.0.0.1:$UI_PORT/ (starting; its log: $UI_LOG)"
# Until Ctrl-C, or until one of them stops on its own (then the other is stopped too, and the script says which).
status=0
wait -n "$api" "$ui" || status=$?
if ! kill -0 "$api" 2>/dev/null; then
  echo "gamerec: the API stopped (exit $status); stopping the Dagster UI" >&2
else
  echo "gamerec: the Dagster UI stopped (exit $status); its log: $UI_LOG; stopping the API" >&2
fi
exit "$status"
