"""The model artifact: numpy/scipy arrays in one .npz plus a JSON manifest. Never a pickle.

Files of one version:
- `similarity.npz`: item_ids (int64), popularity (float64, interactions per item in the training data) and the
  CSR neighbour matrix (data, indices, indptr, shape); loaded with `allow_pickle=False`.
- `manifest.json`: format, version, created_at, parameters, training-data fingerprint, metrics, and the sha256 of
  every other file, so a loader can tell a complete artifact from a partial or corrupted one.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import scipy.sparse as sp

FORMAT = "gamerec.item_similarity/1"
ARRAYS = "similarity.npz"
MANIFEST = "manifest.json"


class ArtifactError(ValueError):
    """An artifact is incomplete, corrupted or of an unknown format."""


def fingerprint(user_items: sp.csr_matrix) -> str:
    """sha256 over the sparsity pattern and values of the training matrix."""
    m = sp.csr_matrix(user_items)
    m.sort_indices()
    digest = hashlib.sha256()
    digest.update(np.asarray(m.shape, np.int64).tobytes())
    for arr in (m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data.astype(np.float32)):
        digest.update(arr.tobytes())
    return digest.hexdigest()


@dataclass
class ModelArtifact:
    item_ids: np.ndarray
    similarity: sp.csr_matrix
    popularity: np.ndarray
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str | None:
        return self.manifest.get("version")

    def to_files(self) -> dict[str, bytes]:
        sim = sp.csr_matrix(self.similarity)
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            item_ids=np.asarray(self.item_ids, np.int64),
            popularity=np.asarray(self.popularity, np.float64),
            data=sim.data.astype(np.float32),
            indices=sim.indices.astype(np.int32),
            indptr=sim.indptr.astype(np.int64),
            shape=np.asarray(sim.shape, np.int64),
        )
        arrays = buf.getvalue()
        manifest = {
            **self.manifest,
            "format": FORMAT,
            "files": {ARRAYS: hashlib.sha256(arrays).hexdigest()},
        }
        manifest.setdefault("created_at", datetime.now(UTC).isoformat(timespec="seconds"))
        return {ARRAYS: arrays, MANIFEST: json.dumps(manifest, indent=2, sort_keys=True).encode()}

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> ModelArtifact:
        if MANIFEST not in files or ARRAYS not in files:
            raise ArtifactError(f"artifact needs {MANIFEST} and {ARRAYS}, got {sorted(files)}")
        try:
            manifest = json.loads(files[MANIFEST])
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{MANIFEST} is not JSON: {exc}") from exc
        if manifest.get("format") != FORMAT:
            raise ArtifactError(f"unknown artifact format {manifest.get('format')!r}, expected {FORMAT}")
        expected = manifest.get("files", {}).get(ARRAYS)
        if hashlib.sha256(files[ARRAYS]).hexdigest() != expected:
            raise ArtifactError(f"{ARRAYS} does not match the sha256 in the manifest (partial or corrupted)")
        with np.load(io.BytesIO(files[ARRAYS]), allow_pickle=False) as npz:
            shape = tuple(int(v) for v in npz["shape"])
            similarity = sp.csr_matrix((npz["data"], npz["indices"], npz["indptr"]), shape=shape)
            return cls(npz["item_ids"], similarity, npz["popularity"], manifest)
