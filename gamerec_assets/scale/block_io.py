"""The scale location's objects in the artifact store: dicts of numpy arrays, as `.npz` objects.

Assets go to `scale/<asset>/all.npz` (replaced by each materialization); the outputs of the fit's inner steps
(block specs and blocks) to `scale/runs/<run id>/<step key>/<output>[/<mapping key>].npz`, where any worker of the
run can read them: under a cluster executor each step may run on another machine, so nothing passes through memory
or a local disk.
numpy arrays only, loaded with `allow_pickle=False` (never a pickle); a CSR matrix is stored as its four arrays.
"""

import io
from collections.abc import Mapping

import dagster as dg
import numpy as np
import scipy.sparse as sp

from gamerec_assets.resources.storage import ArtifactsResource
from gamerec_assets.store.artifact_store import ArtifactStore

PREFIX = "scale"
IO_MANAGER_KEY = "scale_io_manager"
Arrays = dict[str, np.ndarray]


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


def object_key(asset_key: dg.AssetKey, partition: str | None = None) -> str:
    """`scale/<asset>/<partition>.npz` (`all` for an unpartitioned asset)."""
    return f"{PREFIX}/{'/'.join(asset_key.path)}/{partition or 'all'}.npz"


def step_output_key(context: dg.OutputContext) -> str:
    """`scale/runs/<run id>/<step key>/<output>[/<mapping key>].npz` for an output that is no asset.

    A dynamic output's mapping key is part of the identifier: each block spec of `plan_blocks` is its own object.
    """
    return f"{PREFIX}/runs/{'/'.join(context.get_identifier())}.npz"


class ScaleIOManager(dg.ConfigurableIOManager):
    """dict-of-arrays outputs <-> `.npz` objects in the artifact store (atomic replace), for assets and inner steps."""

    artifacts: ArtifactsResource

    def handle_output(self, context: dg.OutputContext, obj: Arrays) -> None:
        buf = io.BytesIO()
        np.savez(buf, **obj)
        key = object_key(context.asset_key) if context.has_asset_key else step_output_key(context)
        store = self.artifacts.store()
        store.replace(key, buf.getvalue())
        context.add_output_metadata({"path": dg.MetadataValue.text(f"{store.describe()}/{key}")})

    def load_input(self, context: dg.InputContext) -> Arrays:
        if context.has_asset_key:
            key = object_key(context.asset_key)
        else:
            assert context.upstream_output is not None, "an op input without an upstream output"
            key = step_output_key(context.upstream_output)
        return read_object(self.artifacts.store(), key)


def merged_similarity(arrays: Mapping[str, np.ndarray]) -> sp.csr_matrix:
    """The CSR matrix of an `item_similarity_merged` object."""
    return arrays_csr(arrays)


def read_object(store: ArtifactStore, key: str) -> Arrays:
    with np.load(io.BytesIO(store.get(key)), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def read_arrays(store: ArtifactStore, asset_key: dg.AssetKey, partition: str | None = None) -> Arrays:
    """One stored asset, read without Dagster's IO machinery (for callers outside a run)."""
    return read_object(store, object_key(asset_key, partition))
