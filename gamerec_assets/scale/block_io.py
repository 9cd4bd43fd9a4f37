"""The scale location's objects in the artifact store: dicts of numpy arrays as `scale/<asset>/<partition>.npz`.

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


def object_key(asset_key: dg.AssetKey, partition: str | None) -> str:
    """`scale/<asset>/<partition>.npz` (`all` for an unpartitioned asset)."""
    return f"{PREFIX}/{'/'.join(asset_key.path)}/{partition or 'all'}.npz"


class ScaleIOManager(dg.ConfigurableIOManager):
    """dict-of-arrays outputs <-> `scale/<asset>/<partition>.npz` in the artifact store (atomic replace)."""

    artifacts: ArtifactsResource

    def handle_output(self, context: dg.OutputContext, obj: Arrays) -> None:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        buf = io.BytesIO()
        np.savez(buf, **obj)
        key = object_key(context.asset_key, partition)
        store = self.artifacts.store()
        store.replace(key, buf.getvalue())
        context.add_output_metadata({"path": dg.MetadataValue.text(f"{store.describe()}/{key}")})

    def _load(self, asset_key: dg.AssetKey, partition: str | None) -> Arrays:
        return read_arrays(self.artifacts.store(), asset_key, partition)

    def load_input(self, context: dg.InputContext) -> Arrays | dict[str, Arrays]:
        if context.has_asset_partitions:  # an unpartitioned consumer of a partitioned asset: every partition
            return {key: self._load(context.asset_key, key) for key in sorted(context.asset_partition_keys)}
        return self._load(context.asset_key, None)


def merged_similarity(arrays: Mapping[str, np.ndarray]) -> sp.csr_matrix:
    """The CSR matrix of an `item_similarity_merged` object."""
    return arrays_csr(arrays)


def read_arrays(store: ArtifactStore, asset_key: dg.AssetKey, partition: str | None = None) -> Arrays:
    """One stored object, read without Dagster's IO machinery (for callers outside a run)."""
    data = store.get(object_key(asset_key, partition))
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}
