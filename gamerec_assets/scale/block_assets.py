"""The two assets of the scale location: the normalised inputs, and the similarity fit as one run of block steps.

`item_similarity_merged` is a graph-backed asset, so that one materialization is one run with one step per item
block: `plan_blocks` fans out (a dynamic output per block), every `fit_block[NNN]` step computes its rows on its own
(under the celery executor: on whichever worker takes the task), and `merge_blocks` stacks them. A step executor
therefore has independent steps to spread, which a partition-per-run backfill never gives it.

The bodies are module-level functions (`item_cf_inputs`, `plan_blocks`, `fit_block`, `merge_blocks`), importable
and callable alone; `make_assets` wraps them in the Dagster definitions, whose `blocks` default is the location's.
"""

import hashlib
import inspect
import os
import socket
import time
from collections.abc import Iterator
from typing import Literal

import dagster as dg
import numpy as np

from gamerec_assets.recsys.event_trust import training_rows
from gamerec_assets.recsys.itemcf import (
    PreparedItems,
    item_blocks,
    item_similarity_block,
    merge_item_blocks,
    prepare_user_items,
)
from gamerec_assets.recsys.matrix import build_matrix, catalogue
from gamerec_assets.resources.storage import TablesResource
from gamerec_assets.scale.block_io import IO_MANAGER_KEY, Arrays, arrays_csr, csr_arrays


def block_keys(n_blocks: int) -> list[str]:
    """Block numbers zero-padded ("000", "001", ...): the mapping keys of the block steps, sorting in block order."""
    return [f"{b:03d}" for b in range(n_blocks)]


def inputs_fingerprint(prepared: PreparedItems, neighbors: int) -> str:
    """What a block was computed from, so the merge can refuse blocks of other inputs."""
    digest = hashlib.sha256()
    for arr in (prepared.by_user.indptr, prepared.by_user.indices, prepared.by_user.data, prepared.weights):
        digest.update(np.ascontiguousarray(arr).tobytes())
    digest.update(f"{prepared.similarity}/{neighbors}/{prepared.by_user.shape}".encode())
    return digest.hexdigest()[:16]


def where_am_i() -> dict[str, str | int]:
    """The host, process and working directory a step runs in: step metadata that shows where the work went."""
    return {"worker_host": socket.gethostname(), "worker_pid": os.getpid(), "worker_dir": os.getcwd()}


class ItemCFInputsConfig(dg.Config):
    similarity: Literal["cosine", "jaccard"] = "cosine"
    neighbors: int = 100


class FitBlockConfig(dg.Config):
    # Seconds a block step waits before its work, for tests that must stop a worker in the middle of a block;
    # always 0 in production.
    hold_s: float = 0.0


class PlanBlocksConfig(dg.Config):
    blocks: int = 8  # GAMEREC_SCALE_BLOCKS' default; `make_assets` makes the location's own the default


def item_cf_inputs(config: ItemCFInputsConfig, tables: TablesResource) -> dg.Output[Arrays]:
    """The users × items matrix of `user_logs` over the catalogue, normalised once for every block."""
    store = tables.store()
    user_logs = store.read("user_logs")
    game_features = store.read("game_features")
    item_ids = catalogue(game_features, user_logs)
    matrix = build_matrix(training_rows(user_logs), item_ids).matrix  # held-back rows never train
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
            **where_am_i(),
        },
    )


def plan_blocks(config: PlanBlocksConfig, item_cf_inputs: Arrays) -> Iterator[dg.DynamicOutput[Arrays]]:
    """One dynamic output per item range: each becomes its own `fit_block` step, free to run anywhere."""
    if config.blocks < 1:
        raise dg.Failure(description=f"blocks must be >= 1, got {config.blocks}")
    n_items = int(item_cf_inputs["shape"][1])
    for key, (start, stop) in zip(block_keys(config.blocks), item_blocks(n_items, config.blocks), strict=True):
        spec = {
            "start": np.asarray(start, np.int64),
            "stop": np.asarray(stop, np.int64),
            "blocks": np.asarray(config.blocks, np.int64),
        }
        yield dg.DynamicOutput(spec, mapping_key=key)


def fit_block(
    context: dg.OpExecutionContext, config: FitBlockConfig, item_cf_inputs: Arrays, spec: Arrays
) -> dg.Output[Arrays]:
    """The top-K neighbours of one range of items (rows of X_blockᵀ X), as a CSR block.

    The step's metadata names the host, pid and directory it ran in, so a run shows which worker did which block.
    """
    start, stop = int(spec["start"]), int(spec["stop"])
    here = where_am_i()
    context.log.info(
        f"block [{start}, {stop}) on {here['worker_host']} pid {here['worker_pid']} in {here['worker_dir']}"
    )
    if config.hold_s > 0:
        time.sleep(config.hold_s)
    prepared = PreparedItems.from_arrays(item_cf_inputs)
    started = time.perf_counter()
    block = item_similarity_block(prepared, start, stop, int(item_cf_inputs["neighbors"]))
    seconds = time.perf_counter() - started
    return dg.Output(
        {**csr_arrays(block), **spec, "fingerprint": item_cf_inputs["fingerprint"]},
        metadata={
            "items": f"[{start}, {stop})",
            "neighbour_pairs": int(block.nnz),
            "seconds": round(seconds, 3),
            **here,
        },
    )


def merge_blocks(blocks: list[Arrays], item_cf_inputs: Arrays) -> dg.Output[Arrays]:
    """Every block stacked in item order: the items × items matrix a single `ItemCF.fit` would produce."""
    fingerprint = str(item_cf_inputs["fingerprint"])
    parts = sorted(blocks, key=lambda b: int(b["start"]))
    if any(str(b["fingerprint"]) != fingerprint for b in parts):
        raise dg.Failure(description="some blocks were computed from other inputs")
    counts = {int(b["blocks"]) for b in parts}
    if counts != {len(parts)}:
        raise dg.Failure(description=f"blocks come from block counts {sorted(counts)}, got {len(parts)} blocks")
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
        metadata={"items": n_items, "blocks": len(parts), "neighbour_pairs": int(merged.nnz), **where_am_i()},
    )


def make_assets(n_blocks: int) -> list[dg.AssetsDefinition]:
    """The two assets, thin wrappers of the functions above; `n_blocks` (GAMEREC_SCALE_BLOCKS) is the default of
    `plan_blocks`' `blocks` run config."""

    class LocationPlanBlocksConfig(PlanBlocksConfig):
        blocks: int = n_blocks

    @dg.asset(
        name="item_cf_inputs",
        description=inspect.getdoc(item_cf_inputs),
        group_name="scale",
        kinds={"scipy"},
        io_manager_key=IO_MANAGER_KEY,
        deps=[dg.AssetKey("user_logs"), dg.AssetKey("game_features")],
    )
    def inputs_asset(config: ItemCFInputsConfig, tables: TablesResource) -> dg.Output[Arrays]:
        return item_cf_inputs(config, tables)

    @dg.op(
        name="plan_blocks", description=inspect.getdoc(plan_blocks), out=dg.DynamicOut(io_manager_key=IO_MANAGER_KEY)
    )
    def plan_blocks_op(config: LocationPlanBlocksConfig, item_cf_inputs: Arrays) -> Iterator[dg.DynamicOutput[Arrays]]:
        yield from plan_blocks(config, item_cf_inputs)

    @dg.op(name="fit_block", description=inspect.getdoc(fit_block), out=dg.Out(io_manager_key=IO_MANAGER_KEY))
    def fit_block_op(
        context: dg.OpExecutionContext, config: FitBlockConfig, item_cf_inputs: Arrays, spec: Arrays
    ) -> dg.Output[Arrays]:
        return fit_block(context, config, item_cf_inputs, spec)

    @dg.op(name="merge_blocks", description=inspect.getdoc(merge_blocks), out=dg.Out(io_manager_key=IO_MANAGER_KEY))
    def merge_blocks_op(blocks: list[Arrays], item_cf_inputs: Arrays) -> dg.Output[Arrays]:
        return merge_blocks(blocks, item_cf_inputs)

    @dg.graph_asset(group_name="scale", kinds={"numba"})
    def item_similarity_merged(item_cf_inputs: Arrays) -> Arrays:
        """The item-item matrix of a single `ItemCF.fit`, computed as one run of parallel item-block steps."""
        fitted = plan_blocks_op(item_cf_inputs).map(lambda spec: fit_block_op(item_cf_inputs, spec))
        return merge_blocks_op(fitted.collect(), item_cf_inputs)

    return [inputs_asset, item_similarity_merged]
