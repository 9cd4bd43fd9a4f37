"""The model artifact: numpy/scipy arrays in one .npz plus a JSON manifest. Never a pickle.

Files of one version:
- `similarity.npz`: item_ids (int64), popularity (float64, interactions per item in the training data) and the
  CSR neighbour matrix (data, indices, indptr, shape); loaded with `allow_pickle=False`.
- `manifest.json`: format, version, created_at, parameters, training-data fingerprint, metrics, the sha256 and
  size of every other file, so a loader can tell a complete artifact from a partial or corrupted one, and the
  array sizes (`arrays`: items, nnz).

A checksum only proves the bytes are the ones written, not that they make a model: the compiled kernels index
with these arrays unchecked, so an out-of-range index is an out-of-bounds read. `validate_arrays` checks the
structure every time an artifact is written or read.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
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


ARRAY_DTYPES: dict[str, str] = {
    "item_ids": "i",
    "popularity": "f",
    "data": "f",
    "indices": "i",
    "indptr": "i",
    "shape": "i",
}  # numpy dtype kinds; `to_files` writes int64, float64, float32, int32, int64, int64


def _count(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"


def validate_arrays(arrays: Mapping[str, np.ndarray], manifest: Mapping[str, Any] | None = None) -> None:
    """Refuse arrays that the kernels would read out of bounds or the lookups would answer wrongly.

    Checks dtypes and shapes, the CSR structure (`indptr` starts at 0, never decreases and ends at nnz; every
    index in [0, items)), finite values, item ids strictly increasing (ids are looked up by binary search), one
    popularity per item, and the sizes the manifest recorded. Raises ArtifactError listing every problem.
    """
    problems: list[str] = []
    missing = [name for name in ARRAY_DTYPES if name not in arrays]
    if missing:
        raise ArtifactError(f"invalid model artifact: missing arrays {missing}")
    a = {name: np.asarray(arrays[name]) for name in ARRAY_DTYPES}
    for name, kind in ARRAY_DTYPES.items():
        if a[name].ndim != 1:
            problems.append(f"{name}: expected a 1-d array, got shape {a[name].shape}")
        if a[name].dtype.kind not in (kind, "u" if kind == "i" else kind):
            expected = "integer" if kind == "i" else "floating"
            problems.append(f"{name}: expected {expected} dtype, got {a[name].dtype}")
    if problems:
        raise ArtifactError("invalid model artifact: " + "; ".join(problems))
    item_ids, popularity, data, indices, indptr, shape = (a[name] for name in ARRAY_DTYPES)
    n = len(item_ids)
    if len(shape) != 2 or tuple(int(v) for v in shape) != (n, n):
        problems.append(f"similarity.shape: {shape.tolist()} is not ({n}, {n}) for {n} item ids")
    if len(popularity) != n:
        problems.append(f"popularity: {len(popularity)} values for {n} items")
    elif not np.isfinite(popularity).all():
        problems.append(f"popularity: {_count(int((~np.isfinite(popularity)).sum()), 'entry', 'entries')} not finite")
    if n > 1:
        steps = np.diff(item_ids)
        if (steps == 0).any():
            problems.append(f"item_ids: {_count(int((steps == 0).sum()), 'duplicate', 'duplicates')}")
        if (steps < 0).any():
            problems.append("item_ids: not sorted ascending (ids are looked up by binary search)")
    nnz = len(indices)
    if len(data) != nnz:
        problems.append(f"similarity.data: {len(data)} values for {nnz} indices")
    if len(indptr) != n + 1:
        problems.append(f"similarity.indptr: {len(indptr)} entries, expected items + 1 = {n + 1}")
    elif len(indptr):
        if int(indptr[0]) != 0:
            problems.append(f"similarity.indptr: starts at {int(indptr[0])}, not 0")
        if int(indptr[-1]) != nnz:
            problems.append(f"similarity.indptr: ends at {int(indptr[-1])}, not at nnz = {nnz}")
        if (np.diff(indptr) < 0).any():
            problems.append(f"similarity.indptr: decreases {_count(int((np.diff(indptr) < 0).sum()), 'time', 'times')}")
    bad = int(((indices < 0) | (indices >= n)).sum()) if nnz else 0
    if bad:
        problems.append(f"similarity.indices: {_count(bad, 'entry', 'entries')} out of range [0, {n})")
    if len(data) and not np.isfinite(data).all():
        problems.append(f"similarity.data: {_count(int((~np.isfinite(data)).sum()), 'entry', 'entries')} not finite")
    manifest = manifest or {}
    recorded = dict(manifest.get("arrays") or {})
    training_items = (manifest.get("training_data") or {}).get("items")
    if training_items is not None:
        recorded.setdefault("items", training_items)
    for key, actual in (("items", n), ("nnz", nnz)):
        if key in recorded and recorded[key] != actual:
            problems.append(f"manifest records {recorded[key]} {key}, the arrays hold {actual}")
    if problems:
        raise ArtifactError("invalid model artifact: " + "; ".join(problems))


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

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays exactly as `to_files` stores them (the casts included, so validation sees what is written)."""
        sim = sp.csr_matrix(self.similarity)
        return {
            "item_ids": np.asarray(self.item_ids, np.int64),
            "popularity": np.asarray(self.popularity, np.float64),
            "data": sim.data.astype(np.float32),
            "indices": sim.indices.astype(np.int32),
            "indptr": sim.indptr.astype(np.int64),
            "shape": np.asarray(sim.shape, np.int64),
        }

    def validate(self) -> None:
        """ArtifactError unless the arrays, as they would be written, form a servable model."""
        validate_arrays(self.arrays(), self.manifest)

    def to_files(self) -> dict[str, bytes]:
        """Serialise; refuses (ArtifactError) a structurally invalid model, so none is ever written."""
        arrays_in = self.arrays()
        validate_arrays(arrays_in, self.manifest)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays_in)  # type: ignore[arg-type]
        arrays = buf.getvalue()
        manifest = {
            **self.manifest,
            "format": FORMAT,
            "files": {ARRAYS: hashlib.sha256(arrays).hexdigest()},
            "sizes": {ARRAYS: len(arrays)},
            "arrays": {"items": len(arrays_in["item_ids"]), "nnz": len(arrays_in["indices"])},
        }
        manifest.setdefault("created_at", datetime.now(UTC).isoformat(timespec="seconds"))
        return {ARRAYS: arrays, MANIFEST: json.dumps(manifest, indent=2, sort_keys=True).encode()}

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> ModelArtifact:
        if MANIFEST not in files or ARRAYS not in files:
            raise ArtifactError(f"artifact needs {MANIFEST} and {ARRAYS}, got {sorted(files)}")
        try:
            manifest = json.loads(files[MANIFEST])
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{MANIFEST} is not JSON (truncated or corrupted): {exc}") from exc
        if not isinstance(manifest, dict):
            raise ArtifactError(f"{MANIFEST} is not a JSON object")
        if manifest.get("format") != FORMAT:
            raise ArtifactError(f"unknown artifact format {manifest.get('format')!r}, expected {FORMAT}")
        expected = (manifest.get("files") or {}).get(ARRAYS)
        if hashlib.sha256(files[ARRAYS]).hexdigest() != expected:
            raise ArtifactError(f"{ARRAYS} does not match the sha256 in the manifest (partial or corrupted)")
        try:
            with np.load(io.BytesIO(files[ARRAYS]), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files if name in ARRAY_DTYPES}
        except (OSError, ValueError, KeyError) as exc:  # zip or npy headers that do not parse
            raise ArtifactError(f"{ARRAYS} is not a readable npz archive: {exc}") from exc
        validate_arrays(arrays, manifest)  # before scipy or a kernel touches them
        shape = (int(arrays["shape"][0]), int(arrays["shape"][1]))
        similarity = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape)
        return cls(arrays["item_ids"], similarity, arrays["popularity"], manifest)
