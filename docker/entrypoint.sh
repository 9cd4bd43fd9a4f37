#!/bin/sh
# gamerec container entrypoint: webserver | daemon | api | materialize [SELECTION] | worker | anything else (exec'd).
# The webserver and the daemon load GAMEREC_WORKSPACE (/app/workspace.yaml: the main location; /app/workspace-scale.yaml:
# with the scale location too).
# State lives under /data (GAMEREC_HOME) unless the MySQL/S3 settings move it: tables, artifacts, offline W&B runs and
# the Dagster instance (DAGSTER_HOME=/data/dagster_home: run history, schedules' and sensors' state).
set -e
# The instance's dagster.yaml (MySQL through dagster-mysql when DAGSTER_MYSQL_HOST is set, else SQLite there): put on
# a fresh volume once; an operator's own copy on the volume is kept.
if [ -n "${DAGSTER_HOME:-}" ] && [ ! -f "$DAGSTER_HOME/dagster.yaml" ]; then
  mkdir -p "$DAGSTER_HOME"
  cp /app/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
fi
case "$1" in
  webserver)   shift; exec dagster-webserver -h 0.0.0.0 -p "${PORT:-3000}" -w "${GAMEREC_WORKSPACE:-/app/workspace.yaml}" "$@" ;;
  daemon)      shift; exec dagster-daemon run -w "${GAMEREC_WORKSPACE:-/app/workspace.yaml}" "$@" ;;
  api)         shift; exec python -m gamerec_api --host 0.0.0.0 --port "${PORT:-${GAMEREC_API_PORT:-8000}}" --workers "${GAMEREC_API_WORKERS:-2}" "$@" ;;
  # Dagster 1.13 calls `dagster asset materialize` superseded by `dg` (another package) at every call: noise here.
  materialize) shift; export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore:Function \`asset_materialize_command\` is superseded}"
               exec dagster asset materialize -m gamerec_assets.definitions --select "${1:-*}" ;;
  # A Celery worker for the scale location's block steps (needs GAMEREC_CELERY_BROKER); celery options follow.
  worker)      shift; exec python -m gamerec_assets.scale.worker "$@" ;;
  *)           exec "$@" ;;
esac
