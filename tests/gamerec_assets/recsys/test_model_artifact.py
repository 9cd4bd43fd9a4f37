import json

import numpy as np
import pytest
import scipy.sparse as sp

from gamerec_assets.recsys import ArtifactError, ItemCF, ModelArtifact, fingerprint
from gamerec_assets.recsys.model_artifact import ARRAYS, MANIFEST


def artifact() -> ModelArtifact:
    x = sp.random(50, 20, density=0.2, random_state=0, format="csr")
    model = ItemCF("cosine", 5).fit(x)
    return ModelArtifact(
        np.arange(100, 120),
        model.similarity,
        np.ones(20),
        {"version": "v1", "parameters": model.params, "training_data": {"fingerprint": fingerprint(x)}},
    )


def test_roundtrip_without_pickle() -> None:
    original = artifact()
    files = original.to_files()
    assert set(files) == {ARRAYS, MANIFEST}
    np.load(__import__("io").BytesIO(files[ARRAYS]), allow_pickle=False)  # loads with pickling disabled
    back = ModelArtifact.from_files(files)
    assert back.version == "v1"
    np.testing.assert_array_equal(back.item_ids, original.item_ids)
    assert (back.similarity != original.similarity).nnz == 0
    manifest = json.loads(files[MANIFEST])
    assert manifest["parameters"] == {"model": "ItemCF", "similarity": "cosine", "neighbors": 5}
    assert len(manifest["training_data"]["fingerprint"]) == 64 and "created_at" in manifest


def test_tampered_or_partial_artifacts_are_refused() -> None:
    files = artifact().to_files()
    with pytest.raises(ArtifactError, match="sha256"):
        ModelArtifact.from_files({**files, ARRAYS: files[ARRAYS][:-10]})
    with pytest.raises(ArtifactError, match="needs"):
        ModelArtifact.from_files({MANIFEST: files[MANIFEST]})
    with pytest.raises(ArtifactError, match="format"):
        ModelArtifact.from_files({**files, MANIFEST: json.dumps({"format": "pickle"}).encode()})


def test_fingerprint_tracks_data() -> None:
    x = sp.random(10, 5, density=0.5, random_state=0, format="csr")
    y = x.copy()
    y.data[0] += 1
    assert fingerprint(x) == fingerprint(x.copy()) != fingerprint(y)


def crafted(**override: np.ndarray) -> dict[str, bytes]:
    """Files of `artifact()` with some arrays replaced and a matching sha256: checksum-valid, maybe malformed."""
    import hashlib
    import io

    files = artifact().to_files()
    with np.load(io.BytesIO(files[ARRAYS]), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays.update(override)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    manifest = json.loads(files[MANIFEST])
    manifest["files"][ARRAYS] = hashlib.sha256(buf.getvalue()).hexdigest()
    manifest.pop("sizes")
    return {ARRAYS: buf.getvalue(), MANIFEST: json.dumps(manifest).encode()}


def good_arrays() -> dict[str, np.ndarray]:
    return artifact().arrays()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: {"indices": np.where(np.arange(len(a["indices"])) < 3, 20, a["indices"]).astype(np.int32)},
         r"similarity\.indices: 3 entries out of range \[0, 20\)"),
        (lambda a: {"indices": np.full_like(a["indices"], -1)}, r"similarity\.indices: \d+ entries out of range"),
        (lambda a: {"indptr": a["indptr"] + 1}, r"similarity\.indptr: starts at 1, not 0"),
        (lambda a: {"indptr": np.r_[a["indptr"][:-1], a["indptr"][-1] + 5]}, r"indptr: ends at \d+, not at nnz"),
        (lambda a: {"indptr": np.r_[0, a["indptr"][2], a["indptr"][1], a["indptr"][3:]]}, r"indptr: decreases 1 time"),
        (lambda a: {"indptr": a["indptr"][:-1]}, r"indptr: 20 entries, expected items \+ 1 = 21"),
        (lambda a: {"data": np.r_[np.nan, a["data"][1:]].astype(np.float32)}, r"similarity\.data: 1 entry not finite"),
        (lambda a: {"data": a["data"][:-1]}, r"similarity\.data: \d+ values for \d+ indices"),
        (lambda a: {"item_ids": np.r_[a["item_ids"][:1], a["item_ids"][:-1]]}, r"item_ids: 1 duplicate"),
        (lambda a: {"item_ids": a["item_ids"][::-1].copy()}, r"item_ids: not sorted ascending"),
        (lambda a: {"popularity": a["popularity"][:-1]}, r"popularity: 19 values for 20 items"),
        (lambda a: {"popularity": np.full(20, np.inf)}, r"popularity: 20 entries not finite"),
        (lambda a: {"shape": np.array([20, 21])}, r"similarity\.shape: \[20, 21\] is not \(20, 20\)"),
        (lambda a: {"indices": a["indices"].astype(np.float64)}, r"indices: expected integer dtype, got float64"),
        (lambda a: {"data": a["data"].reshape(1, -1)}, r"data: expected a 1-d array"),
    ],
)  # fmt: skip
def test_checksum_valid_but_malformed_arrays_are_refused(change, message: str) -> None:
    with pytest.raises(ArtifactError, match=message):
        ModelArtifact.from_files(crafted(**change(good_arrays())))


def test_sizes_must_match_the_manifest() -> None:
    files = crafted()
    manifest = json.loads(files[MANIFEST])
    manifest["arrays"]["items"] = 21
    with pytest.raises(ArtifactError, match="manifest records 21 items, the arrays hold 20"):
        ModelArtifact.from_files({**files, MANIFEST: json.dumps(manifest).encode()})
    with pytest.raises(ArtifactError, match="not JSON"):
        ModelArtifact.from_files({**files, MANIFEST: files[MANIFEST][:20]})


def test_a_malformed_model_is_never_written() -> None:
    bad = artifact()
    bad.similarity.indices[:2] = 400
    with pytest.raises(ArtifactError, match=r"similarity\.indices: 2 entries out of range \[0, 20\)"):
        bad.to_files()
    with pytest.raises(ArtifactError, match="2 entries out of range"):
        bad.validate()


def test_a_malformed_model_fails_to_load_instead_of_crashing_the_kernel(tmp_path) -> None:
    """Loaded and warmed up in a child process, as a server would: a clean ArtifactError, never a SIGSEGV."""
    import subprocess
    import sys
    from pathlib import Path

    files = crafted(indices=np.full(len(good_arrays()["indices"]), 2**30, np.int32))
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    code = (
        "import sys, pathlib, numpy as np\n"
        "from gamerec_assets.recsys.model_artifact import ModelArtifact, ArtifactError\n"
        "from gamerec_assets.recsys.served_model import ServingModel\n"
        "d = pathlib.Path(sys.argv[1])\n"
        "try:\n"
        "    a = ModelArtifact.from_files({p.name: p.read_bytes() for p in d.iterdir()})\n"
        "except ArtifactError as exc:\n"
        "    print('refused:', exc); sys.exit(3)\n"
        "m = ServingModel(a)\n"
        "m.recommend(m.history_matrix(np.zeros(20, np.int64), m.item_ids, 1), 10)\n"
        "print('served')\n"
    )
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 3, (out.returncode, out.stdout, out.stderr[-2000:])
    assert "similarity.indices: " in out.stdout and "out of range [0, 20)" in out.stdout
