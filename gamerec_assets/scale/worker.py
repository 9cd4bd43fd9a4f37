"""A Celery worker for the scale location's steps: `python -m gamerec_assets.scale.worker [celery worker options]`.

`make worker` and the image's `worker` entrypoint run this, in the foreground, with the machine's environment (the
same variables as everywhere: GAMEREC_CELERY_BROKER, GAMEREC_MYSQL_URL, GAMEREC_S3_BUCKET, AWS_ENDPOINT_URL,
DAGSTER_MYSQL_*, GAMEREC_THREADS...). It is dagster-celery's own worker app (`dagster_celery.app`: the same task
names, the `dagster` queue) built from the configuration the run's executor uses (`executors.celery_config`), so the
two sides cannot disagree on broker or acknowledgement, and it runs `celery` in this interpreter rather than the
first `celery` on PATH. The worker imports the scale location before forking its pool, so every task starts with
dagster, numba and the location loaded. Options after the command go to `celery worker`, e.g. `-c 2 -n blocks@%h`.
"""

import sys
from collections.abc import Sequence
from typing import Any

from celery import Celery
from dagster._config import process_config
from dagster_celery.executor import CeleryExecutor, celery_executor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task, create_task

from gamerec_assets.scale.executors import celery_config


def worker_app(config: dict[str, Any] | None = None) -> Celery:
    """dagster-celery's worker app for `config` (default: the scale executor's), the environment resolved by Dagster."""
    processed = process_config(celery_executor.config_schema.config_type, config or celery_config())
    if not processed.success:
        raise ValueError("; ".join(error.message for error in processed.errors or []))
    value = processed.value or {}
    executor = CeleryExecutor.for_cli(
        broker=value.get("broker"), backend=value.get("backend"), config_source=value.get("config_source")
    )
    celery_app = make_app(executor.app_args())
    create_task(celery_app)
    create_execute_job_task(celery_app)
    create_resume_job_task(celery_app)
    return celery_app


app = worker_app()  # the target of `celery -A gamerec_assets.scale.worker`


def worker_argv(extra: Sequence[str]) -> list[str]:
    """`celery worker` arguments: one task per pool process at a time, the location preloaded, then `extra`."""
    return ["worker", "--loglevel=INFO", "--prefetch-multiplier=1", "--include=gamerec_assets.scale", *extra]


def main(argv: Sequence[str] | None = None) -> None:
    app.worker_main(worker_argv(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
