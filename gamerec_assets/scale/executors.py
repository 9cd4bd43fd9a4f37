"""The executor of the scale location: multiprocess on one machine, or a cluster executor (GAMEREC_SCALE_EXECUTOR)."""

import importlib

import dagster as dg

from gamerec_assets.settings import SCALE_EXECUTORS

# Steps start in processes forked from a server that has imported this location (numba initialised, as in
# definitions.py): no step pays the import of dagster + scipy + numba again.
MULTIPROCESS = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["gamerec_assets.scale"]}}}
)
EXECUTORS = SCALE_EXECUTORS


def scale_executor(kind: str) -> dg.ExecutorDefinition:
    """The executor named by `ScaleSettings.executor`: multiprocess (default), k8s, celery, celery_k8s or dask.

    The cluster executors come from their integration packages (dagster-k8s, dagster-celery, dagster-celery-k8s,
    dagster-dask, same release line as dagster), imported only when selected; their settings (image, broker,
    scheduler address...) are run config, see the README.
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
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ImportError(f"GAMEREC_SCALE_EXECUTOR={kind} needs `pip install {module.replace('_', '-')}`") from exc
