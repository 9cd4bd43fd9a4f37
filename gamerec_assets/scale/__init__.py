"""Beyond one machine: the item-item similarity fit as a partitioned asset, in its own Dagster code location.

    dagster dev -m gamerec_assets.scale          # alone, or next to the main location in a workspace.yaml

The fit splits into independent item blocks: block b holds the top-K neighbours of the items of one range, the rows
of X_blockᵀ X (`gamerec_assets.recsys.itemcf.item_similarity_block`). Each row is computed on its own, in a fixed
order, so the merged matrix equals a single `ItemCF.fit` on the same data exactly, whatever the block count.

- `item_cf_inputs` (unpartitioned): the users × items matrix of the main location's `user_logs` and catalogue
  (`game_features`), read from the same table store, normalised once (`prepare_user_items`).
- `item_similarity_blocks` (partitioned, `GAMEREC_SCALE_BLOCKS` static partitions "000", "001", ...): one block per
  partition; a backfill runs one run per partition, each anywhere the run launcher / executor puts it.
- `item_similarity_merged` (unpartitioned): stacks every block into the items × items CSR matrix.

Objects go through `ScaleIOManager` to the artifact store the main location uses (a folder under GAMEREC_HOME, or
S3 with GAMEREC_S3_BUCKET, which is what separate machines need), as `scale/<asset>/<partition>.npz`, numpy arrays
only (never a pickle). Each block records the fingerprint of the inputs it was computed from; the merge refuses a
mix of blocks from different inputs or block counts.

This is a separate code location because a partitioned asset in `gamerec_assets.definitions` would make
`dagster asset materialize -m gamerec_assets.definitions --select '*'` require `--partition`.

Executors: the multiprocess executor by default; GAMEREC_SCALE_EXECUTOR=k8s|celery|celery_k8s|dask selects a
cluster executor (see `executors.scale_executor`). Blocks are separate runs (one partition per run), so on a cluster
it is the run launcher or the executor that spreads them over machines; every machine then needs the same table database
(GAMEREC_MYSQL_URL) and artifact store (GAMEREC_S3_BUCKET).

Threads: each block uses GAMEREC_THREADS threads (default all cores), applied when the location loads. With the
multiprocess executor running several blocks at once on one machine, set GAMEREC_THREADS to cores / max_concurrent.

Modules: `block_io` (the IO manager and the npz layout), `block_assets` (the three assets), `jobs`, `executors`,
`location` (the Definitions, `defs`, and the entry points below, re-exported here).
"""

from gamerec_assets.scale.block_assets import ItemCFInputsConfig, inputs_fingerprint, make_assets, partition_keys
from gamerec_assets.scale.block_io import ScaleIOManager, arrays_csr, csr_arrays, merged_similarity
from gamerec_assets.scale.executors import EXECUTORS, MULTIPROCESS, scale_executor
from gamerec_assets.scale.jobs import make_jobs
from gamerec_assets.scale.location import blocks_job, build_scale_definitions, defs, read_merged

__all__ = [
    "EXECUTORS",
    "MULTIPROCESS",
    "ItemCFInputsConfig",
    "ScaleIOManager",
    "arrays_csr",
    "blocks_job",
    "build_scale_definitions",
    "csr_arrays",
    "defs",
    "inputs_fingerprint",
    "make_assets",
    "make_jobs",
    "merged_similarity",
    "partition_keys",
    "read_merged",
    "scale_executor",
]
