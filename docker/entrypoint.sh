#!/bin/sh
# gamerec container entrypoint: webserver | daemon | api | materialize | worker | anything else (exec'd as is).
set -e
case "$1" in
  webserver)   shift; exec dagster-webserver -h 0.0.0.0 -p "${PORT:-3000}" -w /app/workspace.yaml "$@" ;;
  daemon)      shift; exec dagster-daemon run -w /app/workspace.yaml "$@" ;;
  api)         shift; exec python -m gamerec_api --host 0.0.0.0 --port "${PORT:-8000}" --workers "${GAMEREC_API_WORKERS:-2}" "$@" ;;
  materialize) shift; exec dagster asset materialize -m gamerec_assets.definitions --select "${1:-*}" ;;
  # A Celery worker for the scale location's block steps (needs GAMEREC_CELERY_BROKER); celery options follow.
  worker)      shift; exec python -m gamerec_assets.scale.worker "$@" ;;
  *)           exec "$@" ;;
esac
