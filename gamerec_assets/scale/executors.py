"""The executor of the scale location: multiprocess on one machine, or a cluster executor (GAMEREC_SCALE_EXECUTOR)."""

import importlib
from typing import Any

import dagster as dg

from gamerec_assets.settings import SCALE_EXECUTORS

# Steps start in processes forked from a server that has imported this location (numba initialised, as in
# definitions.py): no step pays the import of dagster + scipy + numba again.
MULTIPROCESS = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["gamerec_assets.scale"]}}}
)
EXECUTORS = SCALE_EXECUTORS

# --- moves into settings.py (ScaleSettings.celery_broker) at merge --------------------------------------------------
# The broker is resolved by Dagster's config system from GAMEREC_CELERY_BROKER when a run starts (and when a worker
# starts): nothing in this package reads the environment outside settings.py, and a missing variable is an error
# that names it.
CELERY_BROKER: dict[str, str] | str = {"env": "GAMEREC_CELERY_BROKER"}
# --------------------------------------------------------------------------------------------------------------------

# One Celery configuration for the run's executor and for every worker (`gamerec_assets.scale.worker`).
# Acks late + reject on worker loss: a task is acknowledged only once its step has finished, so a worker that dies
# in the middle of a block (killed, OOM, machine lost) leaves the task on the broker and another worker runs the
# step again; steps are idempotent (they overwrite their own object). One task prefetched per process, so an idle
# worker is never starved by a busy one holding tasks it has not started.
CELERY_APP_CONFIG: dict[str, Any] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
}


def celery_config(broker: dict[str, str] | str = CELERY_BROKER) -> dict[str, Any]:
    """The `celery_executor` config (broker, rpc result backend, the app settings above)."""
    return {"broker": broker, "backend": "rpc://", "config_source": dict(CELERY_APP_CONFIG)}


def scale_executor(kind: str) -> dg.ExecutorDefinition:
    """The executor named by `ScaleSettings.executor`: multiprocess (default), k8s, celery, celery_k8s or dask.

    The cluster executors come from their integration packages (dagster-k8s, dagster-celery, dagster-celery-k8s,
    dagster-dask, same release line as dagster), imported only when selected. Celery is configured here (broker
    from GAMEREC_CELERY_BROKER, acks late); the others' settings (image, scheduler address...) are run config, see
    the README. Only multiprocess and celery are tested.
    """
    if kind not in EXECUTORS:
        raise ValueError(f"GAMEREC_SCALE_EXECUTOR must be one of {EXECUTORS}, got {kind!r}")
    if kind == "multiprocess":
        return MULTIPROCESS
    module, name = {
        "k8s": ("dagster_k8s", "k8s_job_executor"),
        "celery": ("dagster_celery", "celery_executor"),
        "celery_k8s": ("dagster_celery_k8s", "celery_k8s_job_executor"),
        "dask": ("dagster_dask", "dask_executor"),
    }[kind]
    try:
        executor: dg.ExecutorDefinition = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ImportError(f"GAMEREC_SCALE_EXECUTOR={kind} needs `pip install {module.replace('_', '-')}`") from exc
    if kind == "celery":
        return executor.configured(celery_config(), name="celery")
    return executor
