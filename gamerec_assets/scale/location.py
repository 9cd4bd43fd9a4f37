"""The scale code location: its Definitions for the environment's settings, and entry points outside a run.

Resources come from the same `build_resources` as the main location (same table database, same artifact store),
plus the scale IO manager over the chosen artifact store.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg
import numpy as np
import scipy.sparse as sp

from gamerec_assets import backends
from gamerec_assets.resources.from_settings import build_resources
from gamerec_assets.scale.batch_shards import make_score_job
from gamerec_assets.scale.block_assets import make_assets
from gamerec_assets.scale.block_io import IO_MANAGER_KEY, ScaleIOManager, merged_similarity, read_arrays
from gamerec_assets.scale.executors import scale_executor
from gamerec_assets.scale.jobs import FIT_JOB, SCORE_JOB, SCORE_TAG, make_jobs
from gamerec_assets.settings import Settings


def scale_resources(settings: Settings) -> dict[str, Any]:
    """The tables and artifacts `build_resources` chose, and the scale IO manager over those artifacts."""
    shared = build_resources(settings)
    return {
        "tables": shared["tables"],
        "artifacts": shared["artifacts"],
        IO_MANAGER_KEY: ScaleIOManager(artifacts=shared["artifacts"]),
    }


def build_scale_definitions(env: Mapping[str, str] | None = None) -> dg.Definitions:
    """The scale code location for the environment `env` (None: this process's; the same variables as the main one)."""
    settings = Settings.from_env(env)
    settings.threads.apply()
    return dg.Definitions(
        assets=make_assets(settings.scale.blocks),
        jobs=[*make_jobs(), make_score_job(settings.scale.blocks, SCORE_JOB, SCORE_TAG)],
        resources=scale_resources(settings),
        executor=scale_executor(settings.scale.executor),
    )


def fit_job() -> dg.JobDefinition:
    """The fit job of this environment's definitions: the reconstructable entry point a worker rebuilds the run from
    (`dg.build_reconstructable_job("gamerec_assets.scale.location", "fit_job")`)."""
    return build_scale_definitions().resolve_job_def(FIT_JOB)


def score_job() -> dg.JobDefinition:
    """The sharded `batch_recommendations` job of this environment's definitions, rebuilt the same way."""
    return build_scale_definitions().resolve_job_def(SCORE_JOB)


def read_merged(env: Mapping[str, str] | None = None) -> tuple[np.ndarray, sp.csr_matrix]:
    """(item_ids, similarity) of the last merge, from the artifact store of `env` (None: this process's)."""
    store = backends.artifact_store(Settings.from_env(env).storage)
    arrays = read_arrays(store, dg.AssetKey("item_similarity_merged"))
    return arrays["item_ids"], merged_similarity(arrays)


defs = build_scale_definitions()
