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
cluster executor (see `executor_from_env`). Blocks are separate runs (one partition per run), so on a cluster it is
the run launcher or the executor that spreads them over machines; every machine then needs the same table database
(GAMEREC_MYSQL_URL) and artifact store (GAMEREC_S3_BUCKET).

Threads: each block uses GAMEREC_THREADS threads (default all cores). With the multiprocess executor running
several blocks at once on one machine, set GAMEREC_THREADS to cores / max_concurrent.
"""

import hashlib
import importlib
import io
import os
import time
from collections.abc import Mapping
from typing import Any, Literal

import dagster as dg
import numpy as np
import scipy.sparse as sp

from gamerec_assets.recsys.itemcf import (
    PreparedItems,
    item_blocks,
    item_similarity_block,
    merge_item_blocks,
    prepare_user_items,
)
from gamerec_assets.recsys.matrix import build_matrix
from gamerec_assets.resources import ArtifactsResource, LocalArtifactsResource, S3ArtifactsResource, TablesResource
from gamerec_assets.store.settings import StorageSettings

DEFAULT_BLOCKS = 8
PREFIX = "scale"
Arrays = dict[str, np.ndarray]


def block_count(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    raw = env.get("GAMEREC_SCALE_BLOCKS", "") or str(DEFAULT_BLOCKS)
    count = int(raw)
    if count < 1:
        raise ValueError(f"GAMEREC_SCALE_BLOCKS must be >= 1, got {raw!r}")
    return count


def partition_keys(n_blocks: int) -> list[str]:
    return [f"{b:03d}" for b in range(n_blocks)]


def csr_arrays(m: sp.csr_matrix, prefix: str = "") -> Arrays:
    m = sp.csr_matrix(m)
    return {
        f"{prefix}data": m.data,
        f"{prefix}indices": m.indices,
        f"{prefix}indptr": m.indptr,
        f"{prefix}shape": np.asarray(m.shape, np.int64),
    }


def arrays_csr(arrays: Mapping[str, np.ndarray], prefix: str = "") -> sp.csr_matrix:
    shape = tuple(int(v) for v in arrays[f"{prefix}shape"])
    m = sp.csr_matrix((arrays[f"{prefix}data"], arrays[f"{prefix}indices"], arrays[f"{prefix}indptr"]), shape=shape)
    m.has_sorted_indices = True
    return m


def inputs_fingerprint(prepared: PreparedItems, neighbors: int) -> str:
    digest = hashlib.sha256()
    for arr in (prepared.by_user.indptr, prepared.by_user.indices, prepared.by_user.data, prepared.weights):
        digest.update(np.ascontiguousarray(arr).tobytes())
    digest.update(f"{prepared.similarity}/{neighbors}/{prepared.by_user.shape}".encode())
    return digest.hexdigest()[:16]


class ScaleIOManager(dg.ConfigurableIOManager):
    """dict-of-arrays outputs <-> `scale/<asset>/<partition>.npz` in the artifact store (atomic replace)."""

    artifacts: ArtifactsResource

    @staticmethod
    def _key(asset_key: dg.AssetKey, partition: str | None) -> str:
        return f"{PREFIX}/{'/'.join(asset_key.path)}/{partition or 'all'}.npz"

    def handle_output(self, context: dg.OutputContext, obj: Arrays) -> None:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        buf = io.BytesIO()
        np.savez(buf, **obj)
        key = self._key(context.asset_key, partition)
        store = self.artifacts.store()
        store.replace(key, buf.getvalue())
        context.add_output_metadata({"path": dg.MetadataValue.text(f"{store.describe()}/{key}")})

    def _load(self, asset_key: dg.AssetKey, partition: str | None) -> Arrays:
        data = self.artifacts.store().get(self._key(asset_key, partition))
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}

    def load_input(self, context: dg.InputContext) -> Arrays | dict[str, Arrays]:
        if context.has_asset_partitions:  # an unpartitioned consumer of a partitioned asset: every partition
            return {key: self._load(context.asset_key, key) for key in sorted(context.asset_partition_keys)}
        return self._load(context.asset_key, None)


class ItemCFInputsConfig(dg.Config):
    similarity: Literal["cosine", "jaccard"] = "cosine"
    neighbors: int = 100


def make_assets(n_blocks: int) -> list[dg.AssetsDefinition]:
    """The three assets, with `n_blocks` item blocks (the static partitions of `item_similarity_blocks`)."""

    @dg.asset(
        group_name="scale",
        kinds={"scipy"},
        io_manager_key="scale_io_manager",
        deps=[dg.AssetKey("user_logs"), dg.AssetKey("game_features")],
    )
    def item_cf_inputs(config: ItemCFInputsConfig, tables: TablesResource) -> dg.Output[Arrays]:
        """The users × items matrix of `user_logs` over the catalogue, normalised once for every block."""
        store = tables.store()
        user_logs = store.read("user_logs")
        game_features = store.read("game_features")
        item_ids = np.union1d(game_features["game_id"].to_numpy(), user_logs["game_id"].unique().to_numpy())
        matrix = build_matrix(user_logs, item_ids).matrix
        prepared = prepare_user_items(matrix, config.similarity)
        arrays = {
            **prepared.to_arrays(),
            "item_ids": np.asarray(item_ids, np.int64),
            "neighbors": np.asarray(config.neighbors, np.int64),
            "fingerprint": np.asarray(inputs_fingerprint(prepared, config.neighbors)),
        }
        return dg.Output(
            arrays,
            metadata={
                "users": int(matrix.shape[0]),
                "items": int(matrix.shape[1]),
                "interactions": int(matrix.nnz),
                "similarity": config.similarity,
                "neighbors": config.neighbors,
                "fingerprint": str(arrays["fingerprint"]),
            },
        )

    @dg.asset(
        group_name="scale",
        kinds={"numba"},
        io_manager_key="scale_io_manager",
        partitions_def=dg.StaticPartitionsDefinition(partition_keys(n_blocks)),
    )
    def item_similarity_blocks(context: dg.AssetExecutionContext, item_cf_inputs: Arrays) -> dg.Output[Arrays]:
        """The top-K neighbours of one range of items (rows of X_blockᵀ X), as a CSR block."""
        keys = context.assets_def.partitions_def.get_partition_keys()  # type: ignore[union-attr]
        index = keys.index(context.partition_key)
        prepared = PreparedItems.from_arrays(item_cf_inputs)
        start, stop = item_blocks(prepared.n_items, len(keys))[index]
        neighbors = int(item_cf_inputs["neighbors"])
        started = time.perf_counter()
        block = item_similarity_block(prepared, start, stop, neighbors)
        seconds = time.perf_counter() - started
        return dg.Output(
            {
                **csr_arrays(block),
                "start": np.asarray(start, np.int64),
                "stop": np.asarray(stop, np.int64),
                "blocks": np.asarray(len(keys), np.int64),
                "fingerprint": item_cf_inputs["fingerprint"],
            },
            metadata={"items": f"[{start}, {stop})", "neighbour_pairs": int(block.nnz), "seconds": round(seconds, 3)},
        )

    @dg.asset(group_name="scale", kinds={"scipy"}, io_manager_key="scale_io_manager")
    def item_similarity_merged(item_similarity_blocks: dict[str, Arrays], item_cf_inputs: Arrays) -> dg.Output[Arrays]:
        """Every block stacked in item order: the items × items matrix a single `ItemCF.fit` would produce."""
        fingerprint = str(item_cf_inputs["fingerprint"])
        parts = [item_similarity_blocks[key] for key in sorted(item_similarity_blocks)]
        stale = sorted(k for k, b in item_similarity_blocks.items() if str(b["fingerprint"]) != fingerprint)
        if stale:
            raise dg.Failure(description=f"blocks {stale} were computed from other inputs: rematerialize them")
        counts = {int(b["blocks"]) for b in parts}
        if counts != {len(parts)}:
            raise dg.Failure(description=f"blocks come from block counts {sorted(counts)}, expected {len(parts)}")
        ranges = [(int(b["start"]), int(b["stop"])) for b in parts]
        n_items = int(item_cf_inputs["shape"][1])
        if ranges != item_blocks(n_items, len(parts)):
            raise dg.Failure(description=f"block ranges {ranges} do not tile [0, {n_items})")
        merged = merge_item_blocks([arrays_csr(b) for b in parts], n_items)
        return dg.Output(
            {
                **csr_arrays(merged),
                "item_ids": item_cf_inputs["item_ids"],
                "fingerprint": item_cf_inputs["fingerprint"],
            },
            metadata={"items": n_items, "blocks": len(parts), "neighbour_pairs": int(merged.nnz)},
        )

    return [item_cf_inputs, item_similarity_blocks, item_similarity_merged]


def make_jobs() -> list[Any]:
    return [
        dg.define_asset_job(
            "item_similarity_blocks_job",
            selection=["item_similarity_blocks"],
            description="One item block per run: a backfill of this job over all partitions is the distributed fit.",
        ),
        dg.define_asset_job("item_similarity_merge_job", selection=["item_similarity_merged"]),
        dg.define_asset_job("item_cf_inputs_job", selection=["item_cf_inputs"]),
    ]


# Steps start in processes forked from a server that has imported this module (numba initialised, as in
# definitions.py): no step pays the import of dagster + scipy + numba again.
MULTIPROCESS = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["gamerec_assets.scale"]}}}
)
EXECUTORS = ("multiprocess", "k8s", "celery", "celery_k8s", "dask")


def executor_from_env(env: Mapping[str, str]) -> dg.ExecutorDefinition:
    """GAMEREC_SCALE_EXECUTOR: multiprocess (default), k8s, celery, celery_k8s or dask.

    The cluster executors come from their integration packages (dagster-k8s, dagster-celery, dagster-celery-k8s,
    dagster-dask, same release line as dagster), imported only when selected; their settings (image, broker,
    scheduler address...) are run config, see the README.
    """
    kind = (env.get("GAMEREC_SCALE_EXECUTOR") or "multiprocess").strip().lower()
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


def build_resources(settings: StorageSettings) -> dict[str, Any]:
    artifacts: ArtifactsResource
    if settings.s3_bucket:
        from dagster_aws.s3 import S3Resource

        artifacts = S3ArtifactsResource(
            s3=S3Resource(endpoint_url=settings.s3_endpoint_url), bucket=settings.s3_bucket, prefix=settings.s3_prefix
        )
    else:
        artifacts = LocalArtifactsResource(root=str(settings.artifact_root))
    return {
        "tables": TablesResource(url=settings.table_url),
        "artifacts": artifacts,
        "scale_io_manager": ScaleIOManager(artifacts=artifacts),
    }


def build_scale_definitions(env: Mapping[str, str] | None = None) -> dg.Definitions:
    """The scale code location for the backends `env` selects (the same variables as definitions.py)."""
    env = dict(os.environ if env is None else env)
    return dg.Definitions(
        assets=make_assets(block_count(env)),
        jobs=make_jobs(),
        resources=build_resources(StorageSettings.from_env(env)),
        executor=executor_from_env(env),
    )


def blocks_job() -> dg.JobDefinition:
    """The blocks job of this environment's definitions (a reconstructable entry point for out-of-process runs)."""
    return build_scale_definitions().resolve_job_def("item_similarity_blocks_job")


def merged_similarity(arrays: Mapping[str, np.ndarray]) -> sp.csr_matrix:
    """The CSR matrix of an `item_similarity_merged` object."""
    return arrays_csr(arrays)


def read_merged(env: Mapping[str, str] | None = None) -> tuple[np.ndarray, sp.csr_matrix]:
    """(item_ids, similarity) of the last merge, from the artifact store of `env`."""
    artifacts = build_resources(StorageSettings.from_env(dict(os.environ if env is None else env)))["artifacts"]
    data = artifacts.store().get(ScaleIOManager._key(dg.AssetKey("item_similarity_merged"), None))
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    return arrays["item_ids"], merged_similarity(arrays)


defs = build_scale_definitions()

__all__ = ["ScaleIOManager", "build_scale_definitions", "defs", "make_assets"]
