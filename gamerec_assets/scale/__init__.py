"""Beyond one machine: the item-item similarity fit as one run of parallel block steps, in its own code location.

    dagster dev -m gamerec_assets.scale          # alone, or next to the main location in a workspace.yaml

The fit splits into independent item blocks: block b holds the top-K neighbours of the items of one range, the rows
of X_blockᵀ X (`gamerec_assets.recsys.itemcf.item_similarity_block`). Each row is computed on its own, in a fixed
order, so the merged matrix equals a single `ItemCF.fit` on the same data exactly, whatever the block count.

- `item_cf_inputs`: the users × items matrix of the main location's `user_logs` and catalogue (`game_features`),
  read from the same table store, normalised once (`prepare_user_items`).
- `item_similarity_merged`: a graph-backed asset; `plan_blocks` fans out one dynamic output per block
  (GAMEREC_SCALE_BLOCKS by default, `blocks` in run config), one `fit_block[NNN]` step per block, `merge_blocks`
  stacks them. One materialization is one run, and the executor spreads its block steps: processes on one machine
  (multiprocess), Celery workers on many (GAMEREC_SCALE_EXECUTOR=celery, `python -m gamerec_assets.scale.worker`).

`batch_recommendations_sharded_job` (`batch_shards`) scores `batch_recommendations` by user shard: `plan_shards`
fans out one `score_shard[NNN]` step per shard (GAMEREC_SCALE_BLOCKS by default, `shards` in run config), and
`publish_batch` publishes every shard's rows as the main location's table in one atomic swap, equal to the main
asset's table exactly.

The job `item_similarity_fit_job` materializes both. Objects go through `ScaleIOManager` to the artifact store the
main location uses (a folder under GAMEREC_HOME, or S3 with GAMEREC_S3_BUCKET, which is what separate machines
need), numpy arrays only (never a pickle). The merge checks that the blocks tile the items and come from the same
inputs.

This is a separate code location so that the main location stays a plain `--select '*'` graph and the cluster
executor is a choice of this location only.

Threads: each step uses GAMEREC_THREADS threads (default all cores), applied when the location loads. With several
block steps at once on one machine (multiprocess, or a worker with `-c` > 1), set GAMEREC_THREADS to cores / steps.

Modules: `block_io` (the IO manager and the npz layout), `block_assets` (the assets and the block ops),
`batch_shards` (the sharded scoring job), `jobs`. Every asset and op body is a module-level function
(`item_cf_inputs`, `plan_blocks`, `fit_block`, `merge_blocks`; `plan_shards`, `score_shard`, `publish_batch`) that
can be called alone; `make_assets` and `make_score_job` only wrap and wire them.
`executors` (and the shared Celery configuration), `worker` (the Celery worker), `location` (the Definitions, `defs`,
and the entry points below, re-exported here).
"""

from gamerec_assets.scale.batch_shards import (
    PlanShardsConfig,
    ScoreShardConfig,
    make_score_job,
    plan_shards,
    publish_batch,
    score_shard,
    user_shards,
)
from gamerec_assets.scale.block_assets import (
    FitBlockConfig,
    ItemCFInputsConfig,
    PlanBlocksConfig,
    block_keys,
    fit_block,
    inputs_fingerprint,
    item_cf_inputs,
    make_assets,
    merge_blocks,
    plan_blocks,
)
from gamerec_assets.scale.block_io import ScaleIOManager, arrays_csr, csr_arrays, merged_similarity
from gamerec_assets.scale.executors import CELERY_APP_CONFIG, EXECUTORS, MULTIPROCESS, celery_config, scale_executor
from gamerec_assets.scale.jobs import FIT_JOB, SCORE_JOB, make_jobs
from gamerec_assets.scale.location import build_scale_definitions, defs, fit_job, read_merged, score_job

__all__ = [
    "CELERY_APP_CONFIG",
    "EXECUTORS",
    "FIT_JOB",
    "MULTIPROCESS",
    "SCORE_JOB",
    "FitBlockConfig",
    "ItemCFInputsConfig",
    "PlanBlocksConfig",
    "PlanShardsConfig",
    "ScaleIOManager",
    "ScoreShardConfig",
    "arrays_csr",
    "block_keys",
    "build_scale_definitions",
    "celery_config",
    "csr_arrays",
    "defs",
    "fit_block",
    "fit_job",
    "inputs_fingerprint",
    "item_cf_inputs",
    "make_assets",
    "make_jobs",
    "make_score_job",
    "merge_blocks",
    "merged_similarity",
    "plan_blocks",
    "plan_shards",
    "publish_batch",
    "read_merged",
    "scale_executor",
    "score_job",
    "score_shard",
    "user_shards",
]
