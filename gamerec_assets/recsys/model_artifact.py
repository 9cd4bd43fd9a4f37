"""The model artifact: numpy/scipy arrays in one .npz plus a JSON manifest. Never a pickle.

Files of one version:
- `similarity.npz`: item_ids (int64), popularity (float64, interactions per item in the training data) and the
  CSR neighbour matrix (data, indices, indptr, shape); loaded with `allow_pickle=False`.
- `cards.jsonl`: what the API serves with the model, one catalogue card per model item in item order (name, slug,
  genres, rating, released, background image; a game only the play log knows keeps the log's title);
- `serving.npz`: the histories the model was trained on (users × items CSR, users keyed by the string form of
  their id: a sorted UTF-8 blob + offsets) and the search box's order; `allow_pickle=False`;
- for a matrix-factorisation version (format `gamerec.item_factors/1`), `similarity.npz` also holds
  `item_factors` (items × f, float32), `fold_gram` (f × f, float64: YᵀY + λI) and `fold_alpha` (one float64, the
  confidence of a played game): what the fold-in of a history needs (`factors.FoldIn`); its CSR matrix is then each
  item's nearest items by factor cosine, so neighbour lookups read it as for any model;
- `manifest.json`: format, version, created_at, parameters, training-data fingerprint, metrics, the sha256 and
  size of every other file, so a loader can tell a complete artifact from a partial or corrupted one, and the
  array sizes (`arrays`: items, nnz; `serving`: users, interactions).

`cards.jsonl` and `serving.npz` make a version a consistent whole: the API serves a version from its own files
only, never from the current tables, so a rollback brings back that version's catalogue and histories too. They
are optional in the format (versions written before them load, for the batch asset and champion comparisons),
and the API refuses to serve a version without them (`ModelArtifact.serving is None`).

A checksum only proves the bytes are the ones written, not that they make a model: the compiled kernels index
with these arrays unchecked, so an out-of-range index is an out-of-bounds read. `validate_arrays` checks the
structure every time an artifact is written or read.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np
import polars as pl
import scipy.sparse as sp

from gamerec_assets.recsys.factors import FoldIn

FORMAT = "gamerec.item_similarity/1"
FACTORS_FORMAT = "gamerec.item_factors/1"  # an MF version: the item-item arrays plus FACTOR_ARRAYS
FORMATS = (FORMAT, FACTORS_FORMAT)
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


FACTOR_ARRAYS = ("item_factors", "fold_gram", "fold_alpha")


def validate_factors(arrays: Mapping[str, np.ndarray], n_items: int, manifest: Mapping[str, Any] | None = None) -> None:
    """Refuse factor arrays the fold-in would compute garbage (or read out of bounds) from: one finite float row of
    factors per item, a finite symmetric positive definite f × f Gram matrix, one finite α >= 1 (α < 1 could make
    the fold-in's matrix indefinite), and the factor count the manifest recorded. Raises ArtifactError."""
    missing = [name for name in FACTOR_ARRAYS if name not in arrays]
    if missing:
        raise ArtifactError(f"invalid model artifact: missing factor arrays {missing}")
    y, gram, alpha = (np.asarray(arrays[name]) for name in FACTOR_ARRAYS)
    problems: list[str] = []
    for name, arr, ndim in (("item_factors", y, 2), ("fold_gram", gram, 2), ("fold_alpha", alpha, 1)):
        if arr.ndim != ndim:
            problems.append(f"{name}: expected a {ndim}-d array, got shape {arr.shape}")
        if arr.dtype.kind != "f":
            problems.append(f"{name}: expected floating dtype, got {arr.dtype}")
    if problems:
        raise ArtifactError("invalid model artifact: " + "; ".join(problems))
    f = y.shape[1]
    if y.shape[0] != n_items or f < 1:
        problems.append(f"item_factors: shape {y.shape}, expected ({n_items}, f >= 1) for {n_items} items")
    elif not np.isfinite(y).all():
        problems.append(f"item_factors: {_count(int((~np.isfinite(y)).sum()), 'entry', 'entries')} not finite")
    if gram.shape != (f, f):
        problems.append(f"fold_gram: shape {gram.shape}, expected ({f}, {f})")
    elif not np.isfinite(gram).all():
        problems.append("fold_gram: not finite")
    elif not np.allclose(gram, gram.T, rtol=1e-6, atol=1e-8):
        problems.append("fold_gram: not symmetric")
    else:
        try:
            np.linalg.cholesky(gram)
        except np.linalg.LinAlgError:
            problems.append("fold_gram: not positive definite")
    if alpha.shape != (1,) or not np.isfinite(alpha).all() or float(alpha[0]) < 1.0:
        problems.append(f"fold_alpha: expected one finite value >= 1, got {alpha.tolist()}")
    recorded = (manifest or {}).get("arrays", {}).get("factors")
    if recorded is not None and recorded != f:
        problems.append(f"manifest records {recorded} factors, the arrays hold {f}")
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
    serving: ServingData | None = None  # cards + histories; None in versions written before them
    factors: FoldIn | None = None  # an MF version's item factors and fold-in; None for item-item versions

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
            **(self.factor_arrays() if self.factors is not None else {}),
        }

    def factor_arrays(self) -> dict[str, np.ndarray]:
        """An MF version's fold-in arrays as stored (float32 factors, float64 Gram matrix and α)."""
        assert self.factors is not None
        return {
            "item_factors": np.asarray(self.factors.item_factors, np.float32),
            "fold_gram": np.asarray(self.factors.gram, np.float64),
            "fold_alpha": np.asarray([self.factors.alpha], np.float64),
        }

    def with_serving(self, user_logs: pl.DataFrame, game_features: pl.DataFrame) -> ModelArtifact:
        """This artifact with the cards and histories of the tables it was fit on (`build_serving_data`)."""
        self.serving = build_serving_data(user_logs, game_features, np.asarray(self.item_ids, np.int64))
        return self

    def validate(self) -> None:
        """ArtifactError unless the arrays, as they would be written, form a servable model."""
        arrays = self.arrays()
        validate_arrays(arrays, self.manifest)
        if self.factors is not None:
            validate_factors(arrays, len(arrays["item_ids"]), self.manifest)

    def to_files(self) -> dict[str, bytes]:
        """Serialise; refuses (ArtifactError) a structurally invalid model, so none is ever written."""
        arrays_in = self.arrays()
        validate_arrays(arrays_in, self.manifest)
        if self.factors is not None:
            validate_factors(arrays_in, len(arrays_in["item_ids"]), self.manifest)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays_in)  # type: ignore[arg-type]
        files = {ARRAYS: buf.getvalue()}
        manifest = {
            **self.manifest,
            "format": FORMAT if self.factors is None else FACTORS_FORMAT,
            "arrays": {"items": len(arrays_in["item_ids"]), "nnz": len(arrays_in["indices"])},
        }
        if self.factors is not None:
            manifest["arrays"]["factors"] = int(arrays_in["item_factors"].shape[1])
        if self.serving is not None:
            serving = self.serving.arrays()
            validate_serving(serving, len(arrays_in["item_ids"]))
            ids = np.fromiter((c.game_id for c in self.serving.cards), np.int64, len(self.serving.cards))
            if not np.array_equal(ids, arrays_in["item_ids"]):
                raise ArtifactError("invalid serving data: the cards are not the model's items in item order")
            buf = io.BytesIO()
            np.savez_compressed(buf, **serving)  # type: ignore[arg-type]
            files[SERVING] = buf.getvalue()
            files[CARDS] = self.serving.cards_jsonl()
            manifest["serving"] = {"users": self.serving.n_users, "interactions": len(serving["hist_indices"])}
        manifest["files"] = {name: hashlib.sha256(raw).hexdigest() for name, raw in files.items()}
        manifest["sizes"] = {name: len(raw) for name, raw in files.items()}
        manifest.setdefault("created_at", datetime.now(UTC).isoformat(timespec="seconds"))
        return {**files, MANIFEST: json.dumps(manifest, indent=2, sort_keys=True).encode()}

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
        if manifest.get("format") not in FORMATS:
            raise ArtifactError(f"unknown artifact format {manifest.get('format')!r}, expected one of {FORMATS}")
        expected = (manifest.get("files") or {}).get(ARRAYS)
        if hashlib.sha256(files[ARRAYS]).hexdigest() != expected:
            raise ArtifactError(f"{ARRAYS} does not match the sha256 in the manifest (partial or corrupted)")
        try:
            with np.load(io.BytesIO(files[ARRAYS]), allow_pickle=False) as npz:
                wanted = (*ARRAY_DTYPES, *FACTOR_ARRAYS)
                arrays = {name: npz[name] for name in npz.files if name in wanted}
        except (OSError, ValueError, KeyError) as exc:  # zip or npy headers that do not parse
            raise ArtifactError(f"{ARRAYS} is not a readable npz archive: {exc}") from exc
        validate_arrays(arrays, manifest)  # before scipy or a kernel touches them
        factors = None
        if manifest["format"] == FACTORS_FORMAT:
            validate_factors(arrays, len(arrays["item_ids"]), manifest)
            factors = FoldIn(
                np.ascontiguousarray(arrays["item_factors"], np.float32),
                np.ascontiguousarray(arrays["fold_gram"], np.float64),
                float(arrays["fold_alpha"][0]),
            )
        shape = (int(arrays["shape"][0]), int(arrays["shape"][1]))
        similarity = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape)
        serving = _serving(files, manifest, arrays)
        return cls(arrays["item_ids"], similarity, arrays["popularity"], manifest, serving, factors)


def _serving(
    files: Mapping[str, bytes], manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
) -> ServingData | None:
    """The version's cards and histories, checksum-verified and validated; None when the version has none."""
    recorded = manifest.get("files") or {}
    if CARDS not in recorded and SERVING not in recorded:
        return None
    for name in (CARDS, SERVING):
        if name not in files:
            raise ArtifactError(f"the manifest lists {name} but it is missing (half-written version)")
        if hashlib.sha256(files[name]).hexdigest() != recorded.get(name):
            raise ArtifactError(f"{name} does not match the sha256 in the manifest (partial or corrupted)")
    try:
        with np.load(io.BytesIO(files[SERVING]), allow_pickle=False) as npz:
            data = {name: npz[name] for name in npz.files if name in SERVING_DTYPES}
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{SERVING} is not a readable npz archive: {exc}") from exc
    item_ids = arrays["item_ids"]
    validate_serving(data, len(item_ids), manifest)
    cards = decode_cards(files[CARDS], item_ids)
    return ServingData(cards, *(data[name] for name in SERVING_DTYPES))


# -- what the API serves with the model: the catalogue cards and the user histories --------------------------------

CARDS = "cards.jsonl"
SERVING = "serving.npz"
MAX_USER_ID_CHARS = 128  # the API's limit; an id is at most 4 UTF-8 bytes per character
SERVING_DTYPES: dict[str, str] = {
    "user_blob": "u",  # uint8: the users' ids, UTF-8, sorted by bytes, concatenated
    "user_offsets": "i",  # int64, users + 1: id r is user_blob[user_offsets[r]:user_offsets[r + 1]]
    "hist_indptr": "i",  # int64, users + 1: the users × items history CSR
    "hist_indices": "i",  # int32: model item indices, strictly increasing within each user
    "search_order": "i",  # int32: items with a real name, most popular first (the search box's order)
}
_CHUNK = 20_000  # users per step of a Python-level loop, so a loader thread never holds the GIL for long
_CARD_CHUNK = 1_000  # cards per msgspec decode call (~5 ms of GIL at most)


class GameCard(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """One game as the page shows it; the API converts these into its own `GameCard` once per version at load.

    `gc=False`: a card never takes part in a reference cycle, and 50,000 cards the cyclic collector need not walk
    are 50,000 fewer objects in every full collection of a serving process. `tags` and `platforms` feed the
    request-time filters (`item_filter`), not the page; empty ones are not written (`omit_defaults`), so a card
    without them is the same line as before they existed, and older versions' cards decode with both empty."""

    game_id: int
    name: str
    slug: str
    genres: list[str]
    rating: float
    released: str | None
    background_image: str
    tags: list[str] = msgspec.field(default_factory=list)
    platforms: list[str] = msgspec.field(default_factory=list)


@dataclass(frozen=True, eq=False)
class ServingData:
    """What a version serves besides its similarity, so that no endpoint needs the current tables: one card per
    model item (in item order) and the histories the model was trained on, keyed by the user id's string form.

    Ids are strings because real logs name users by strings; an integer id is its decimal string. They are stored
    as one sorted UTF-8 blob with offsets (compact, no pickle, no fixed width that one long id would blow up).
    """

    cards: tuple[GameCard, ...]
    user_blob: np.ndarray
    user_offsets: np.ndarray
    hist_indptr: np.ndarray
    hist_indices: np.ndarray
    search_order: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.user_offsets) - 1

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "user_blob": np.asarray(self.user_blob, np.uint8),
            "user_offsets": np.asarray(self.user_offsets, np.int64),
            "hist_indptr": np.asarray(self.hist_indptr, np.int64),
            "hist_indices": np.asarray(self.hist_indices, np.int32),
            "search_order": np.asarray(self.search_order, np.int32),
        }

    def user_id(self, row: int) -> str:
        lo, hi = self.user_offsets[row : row + 2].tolist()
        return self.user_blob[lo:hi].tobytes().decode()

    def user_keys(self, lo: int = 0, hi: int | None = None) -> list[bytes]:
        """The UTF-8 ids of users lo..hi (one bytes copy, then slices)."""
        hi = self.n_users if hi is None else hi
        offsets = self.user_offsets[lo : hi + 1].tolist()
        blob = self.user_blob[offsets[0] : offsets[-1]].tobytes()
        base = offsets[0]
        return [blob[a - base : b - base] for a, b in itertools.pairwise(offsets)]

    def cards_jsonl(self) -> bytes:
        encode = msgspec.json.encode
        return b"\n".join([encode(c) for c in self.cards])


def validate_serving(data: Mapping[str, np.ndarray], n_items: int, manifest: Mapping[str, Any] | None = None) -> None:
    """Refuse histories the request path would index out of bounds or look up wrongly (ArtifactError).

    Checks dtypes, offsets (start at 0, never decrease, end at the blob's length), ids of 1..512 bytes, valid
    UTF-8, strictly increasing by bytes (ids are found by binary search and listed by prefix), the CSR structure
    with indices in [0, items) and strictly increasing within a user, the search order (distinct items), and the
    counts the manifest recorded. The id checks walk the ids in chunks, so a loader thread releases the GIL often.
    """
    missing = [name for name in SERVING_DTYPES if name not in data]
    if missing:
        raise ArtifactError(f"invalid serving data: missing arrays {missing}")
    a = {name: np.asarray(data[name]) for name in SERVING_DTYPES}
    problems: list[str] = []
    for name, kind in SERVING_DTYPES.items():
        ok = a[name].dtype.kind in ((kind,) if kind == "u" else ("i", "u"))
        if a[name].ndim != 1 or not ok or (kind == "u" and a[name].itemsize != 1):
            problems.append(
                f"{name}: expected a 1-d {'uint8' if kind == 'u' else 'integer'} array, got {a[name].dtype}"
            )
    if problems:
        raise ArtifactError("invalid serving data: " + "; ".join(problems))
    blob, offsets, indptr, indices, order = (a[name] for name in SERVING_DTYPES)
    n_users = len(offsets) - 1
    problems += _user_id_problems(blob, offsets, indptr, indices, order)
    problems += _history_problems(indptr, indices, n_users, n_items)
    if len(order):
        if int(order.min()) < 0 or int(order.max()) >= n_items:
            problems.append(f"search_order: entries out of range [0, {n_items})")
        elif len(np.unique(order)) != len(order):
            problems.append("search_order: repeats items")
    recorded = dict((manifest or {}).get("serving") or {})
    for key, actual in (("users", n_users), ("interactions", len(indices))):
        if key in recorded and recorded[key] != actual:
            problems.append(f"manifest records {recorded[key]} {key}, the serving data holds {actual}")
    if problems:
        raise ArtifactError("invalid serving data: " + "; ".join(problems))


def _user_id_problems(
    blob: np.ndarray, offsets: np.ndarray, indptr: np.ndarray, indices: np.ndarray, order: np.ndarray
) -> list[str]:
    """What is wrong with the user ids of the serving data (offsets, lengths, UTF-8, NUL, strict byte order)."""
    n_users = len(offsets) - 1
    if n_users < 0 or int(offsets[0]) != 0 or int(offsets[-1]) != len(blob):
        return ["user_offsets: must start at 0 and end at the length of user_blob"]
    lengths = np.diff(offsets)
    if n_users and (int(lengths.min()) < 1 or int(lengths.max()) > 4 * MAX_USER_ID_CHARS):
        return [f"user ids: every id must hold 1..{4 * MAX_USER_ID_CHARS} UTF-8 bytes"]
    bounds = [*offsets[:: _CHUNK * 5].tolist(), int(offsets[-1])]  # ~100,000 ids per step, at id boundaries
    for lo, hi in itertools.pairwise(bounds):
        chunk = blob[lo:hi].tobytes()
        try:
            chunk.decode()
        except UnicodeDecodeError as exc:
            return [f"user_blob: not UTF-8 ({exc})"]
        if b"\x00" in chunk:
            return ["user ids: hold a NUL character"]
    unsorted = ["user ids: not strictly increasing by UTF-8 bytes (duplicates or unsorted)"]
    if n_users > 1 and int(lengths.min()) == int(lengths.max()):
        fixed = blob.view(f"S{int(lengths[0])}")  # ids of one length (Steam's, or padded): vectorised comparisons
        step = _CHUNK * 5
        for lo in range(0, n_users - 1, step):  # in steps: numpy's string comparison keeps the GIL
            hi = min(lo + step, n_users - 1)
            if not (fixed[lo + 1 : hi + 1] > fixed[lo:hi]).all():
                return unsorted
        return []
    ds = ServingData((), blob, offsets, indptr, indices, order)
    previous = b""
    for lo in range(0, n_users, _CHUNK):  # ids of many lengths: a Python walk, in chunks
        keys = ds.user_keys(lo, min(lo + _CHUNK, n_users))
        if (lo and not previous < keys[0]) or not all(map(bytes.__lt__, keys[:-1], keys[1:])):
            return unsorted
        previous = keys[-1]
    return []


def _history_problems(indptr: np.ndarray, indices: np.ndarray, n_users: int, n_items: int) -> list[str]:
    """What is wrong with the histories' CSR structure (indptr, indices in range, strictly increasing per user)."""
    nnz = len(indices)
    if len(indptr) != n_users + 1:
        return [f"hist_indptr: {len(indptr)} entries, expected users + 1 = {n_users + 1}"]
    if len(indptr) and (int(indptr[0]) != 0 or int(indptr[-1]) != nnz or (np.diff(indptr) < 0).any()):
        return ["hist_indptr: must start at 0, never decrease and end at the number of interactions"]
    problems: list[str] = []
    if nnz:
        if int(indices.min()) < 0 or int(indices.max()) >= n_items:
            problems.append(f"hist_indices: entries out of range [0, {n_items})")
        steps = np.diff(indices.astype(np.int64))
        starts = indptr[1:-1]
        within = np.ones(max(nnz - 1, 0), bool)
        within[starts[(starts > 0) & (starts < nnz)] - 1] = False
        if (steps[within] <= 0).any():
            problems.append("hist_indices: not strictly increasing within a user")
    return problems


def decode_cards(raw: bytes, item_ids: np.ndarray) -> tuple[GameCard, ...]:
    """`cards.jsonl` (one card per model item, in item order) as structs; ArtifactError unless every line is a
    well-typed card of the item on that line. Decoded in chunks so a loader thread holds the GIL briefly."""
    # line ends found by numpy (no 50,000-object split in one call); JSON strings never hold a raw newline
    ends = [*np.flatnonzero(np.frombuffer(raw, np.uint8) == 10).tolist(), len(raw)] if raw else []
    if len(ends) != len(item_ids):
        raise ArtifactError(f"invalid serving data: {CARDS} holds {len(ends)} cards for {len(item_ids)} items")
    decoder = msgspec.json.Decoder(list[GameCard])
    cards: list[GameCard] = []
    starts = [0] + [e + 1 for e in ends[:-1]]
    for lo in range(0, len(ends), _CARD_CHUNK):
        part = raw[starts[lo] : ends[min(lo + _CARD_CHUNK, len(ends)) - 1]]
        try:
            cards += decoder.decode(b"[" + part.replace(b"\n", b",") + b"]")
        except msgspec.ValidationError as exc:
            raise ArtifactError(f"invalid serving data: {CARDS}: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise ArtifactError(f"invalid serving data: {CARDS} is not JSON lines: {exc}") from exc
    ids = np.fromiter((c.game_id for c in cards), np.int64, len(cards))
    if not np.array_equal(ids, np.asarray(item_ids, np.int64)):
        raise ArtifactError(f"invalid serving data: {CARDS} does not hold the model's items in item order")
    return tuple(cards)


def build_serving_data(user_logs: pl.DataFrame, game_features: pl.DataFrame, item_ids: np.ndarray) -> ServingData:
    """Cards and histories for a model over `item_ids`, from the tables it was trained on (offline, once).

    A game without catalogue metadata (a title only the play log knows) keeps the log's `title` when the log has
    that column, otherwise a placeholder name, and stays out of the search box. User ids are cast to strings, so
    integer and string `user_id` columns give the same histories; log rows outside `item_ids` are dropped.
    """
    item_ids = np.asarray(item_ids, np.int64)
    n_items = len(item_ids)
    logs = user_logs.select(pl.col("user_id").cast(pl.Utf8).alias("user"), pl.col("game_id").cast(pl.Int64))
    cols = np.searchsorted(item_ids, logs["game_id"].to_numpy())
    cols = np.clip(cols, 0, max(n_items - 1, 0))
    keep = (item_ids[cols] == logs["game_id"].to_numpy()) if n_items else np.zeros(logs.height, bool)
    users = sorted(set(logs["user"].filter(pl.Series(keep)).to_list()))  # str order is UTF-8 byte order
    if any("\x00" in u or len(u) > MAX_USER_ID_CHARS or not u for u in users):
        raise ValueError(f"user ids must be 1..{MAX_USER_ID_CHARS} characters without NUL")
    rows_of = pl.DataFrame(
        {"user": users, "row": np.arange(len(users), dtype=np.int64)}, schema_overrides={"user": pl.Utf8}
    )
    rows = logs.filter(pl.Series(keep)).join(rows_of, on="user", how="left", maintain_order="left")["row"].to_numpy()
    hist = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols[keep])), shape=(len(users), n_items))
    hist.sum_duplicates()
    hist.sort_indices()
    encoded = [u.encode() for u in users]
    offsets = np.zeros(len(users) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    blob = np.frombuffer(b"".join(encoded), np.uint8).copy()
    cards, named, added = _cards(game_features, user_logs, item_ids)
    popularity = np.bincount(hist.indices, minlength=n_items)
    order = np.lexsort((np.arange(n_items), -added, -popularity))
    order = order[named[order]].astype(np.int32)
    return ServingData(cards, blob, offsets, hist.indptr.astype(np.int64), hist.indices.astype(np.int32), order)


def _cards(
    features: pl.DataFrame, user_logs: pl.DataFrame, item_ids: np.ndarray
) -> tuple[tuple[GameCard, ...], np.ndarray, np.ndarray]:
    """(card per item, whether it has a real name, RAWG `added` for the search order)."""
    have = set(features.columns)

    def col(name: str, dtype: pl.DataType, default: Any) -> pl.Expr:  # catalogues without a column still serve
        return (pl.col(name).cast(dtype) if name in have else pl.lit(None, dtype)).fill_null(default).alias(name)

    cols = features.select(
        pl.col("game_id").cast(pl.Int64),
        pl.col("name").cast(pl.Utf8) if "name" in have else pl.lit(None, pl.Utf8).alias("name"),
        col("slug", pl.Utf8(), ""),
        col("genres", pl.List(pl.Utf8), pl.lit([], dtype=pl.List(pl.Utf8))),
        col("tags", pl.List(pl.Utf8), pl.lit([], dtype=pl.List(pl.Utf8))),
        col("platforms", pl.List(pl.Utf8), pl.lit([], dtype=pl.List(pl.Utf8))),
        col("rating", pl.Float64(), 0.0),
        pl.col("released").cast(pl.Utf8) if "released" in have else pl.lit(None, pl.Utf8).alias("released"),
        col("background_image", pl.Utf8(), ""),
        col("added", pl.Float64(), 0.0),
    ).unique(subset="game_id", keep="first")
    frame = pl.DataFrame({"game_id": item_ids}, schema={"game_id": pl.Int64}).join(
        cols, on="game_id", how="left", maintain_order="left"
    )
    if "title" in user_logs.columns:
        titles = (
            user_logs.select(pl.col("game_id").cast(pl.Int64), pl.col("title").cast(pl.Utf8))
            .drop_nulls()
            .filter(pl.col("title").str.strip_chars() != "")
            .unique(subset="game_id", keep="first", maintain_order=True)
        )
        frame = frame.join(titles, on="game_id", how="left", maintain_order="left")
        missing = pl.col("name").is_null() | (pl.col("name") == "")
        frame = frame.with_columns(pl.when(missing).then(pl.col("title")).otherwise(pl.col("name")).alias("name"))
    named = frame["name"].is_not_null().to_numpy() & (frame["name"].fill_null("") != "").to_numpy()
    cards = tuple(
        GameCard(
            game_id=g,
            name=n if ok else f"Game {g}",
            slug=s or "",
            genres=list(gs or []),
            rating=float(r or 0.0),
            released=d,
            background_image=b or "",
            tags=list(ts or []),
            platforms=list(ps or []),
        )
        for g, n, ok, s, gs, r, d, b, ts, ps in zip(
            frame["game_id"].to_list(),
            frame["name"].to_list(),
            named.tolist(),
            frame["slug"].to_list(),
            frame["genres"].to_list(),
            frame["rating"].to_list(),
            frame["released"].to_list(),
            frame["background_image"].to_list(),
            frame["tags"].to_list(),
            frame["platforms"].to_list(),
            strict=True,
        )
    )
    return cards, named, frame["added"].fill_null(0.0).to_numpy()
