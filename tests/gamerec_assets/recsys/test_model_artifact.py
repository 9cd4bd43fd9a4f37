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
