"""The three assets of the scale location: normalised inputs, one item block per partition, the merge."""

import hashlib
import time
from typing import Literal

import dagster as dg
import numpy as np

from gamerec_assets.recsys.itemcf import (
    PreparedItems,
    item_blocks,
    item_similarity_block,
    merge_item_blocks,
    prepare_user_items,
)
from gamerec_assets.recsys.matrix import build_matrix, catalogue
from gamerec_assets.resources.storage import TablesResource
from gamerec_assets.scale.block_io import Arrays, arrays_csr, csr_arrays


def partition_keys(n_blocks: int) -> list[str]:
    """Block numbers zero-padded ("000", "001", ...) so that the keys sort in block order."""
    return [f"{b:03d}" for b in range(n_blocks)]


def inputs_fingerprint(prepared: PreparedItems, neighbors: int) -> str:
    """What a block was computed from, so the merge can refuse blocks of other inputs."""
    digest = hashlib.sha256()
    for arr in (prepared.by_user.indptr, prepared.by_user.indices, prepared.by_user.data, prepared.weights):
        digest.update(np.ascontiguousarray(arr).tobytes())
    digest.update(f"{prepared.similarity}/{neighbors}/{prepared.by_user.shape}".encode())
    return digest.hexdigest()[:16]


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
        item_ids = catalogue(game_features, user_logs)
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
