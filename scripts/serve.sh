#!/usr/bin/env bash
# Serve the API (127.0.0.1:8000) next to the Dagster UI and daemon (127.0.0.1:3000); Ctrl-C stops both.
# GAMEREC_API_HOST, GAMEREC_API_PORT and DAGSTER_PORT move them: their defaults here are settings.py's (ApiSettings)
# and the README's Configuration table (tests/test_readme_tables.py checks that the three agree).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
: "${GAMEREC_HOME:=$PWD/.gamerec}" "${DAGSTER_HOME:=$GAMEREC_HOME/dagster_home}"
export GAMEREC_HOME DAGSTER_HOME
mkdir -p "$DAGSTER_HOME"
"$BIN/python" -m gamerec_api --host "${GAMEREC_API_HOST:-127.0.0.1}" --port "${GAMEREC_API_PORT:-8000}" &
api=$!
trap 'kill $api 2>/dev/null || true' EXIT INT TERM
echo "API:       http://${GAMEREC_API_HOST:-127.0.0.1}:${GAMEREC_API_PORT:-8000}/"
echo "Dagster UI: http://127.0.0.1:${DAGSTER_PORT:-3000}/"
"$BIN/dagster" dev -w workspace.yaml -h 127.0.0.1 -p "${DAGSTER_PORT:-3000}"
