import hashlib
import io
import json

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from gamerec_assets.recsys import ArtifactError, ItemCF, ModelArtifact, fingerprint
from gamerec_assets.recsys.matrix import catalogue
from gamerec_assets.recsys.model_artifact import ARRAYS, CARDS, MANIFEST, SERVING


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


# -- the serving data: cards and histories a version carries ---------------------------------------------------------


def tables_for_serving() -> tuple[pl.DataFrame, pl.DataFrame]:
    features = pl.DataFrame(
        {
            "game_id": [100, 101, 102],
            "name": ["Alpha", "Beta", "Gamma"],
            "slug": ["alpha", "beta", "gamma"],
            "genres": [["RPG"], [], ["Action", "Indie"]],
            "rating": [4.5, None, 3.0],
            "released": ["2015-05-18", None, "2020-01-01"],
            "background_image": ["https://x/a.jpg", None, ""],
            "added": [10.0, 30.0, 20.0],
        }
    )
    logs = pl.DataFrame(
        {
            "user_id": ["7", "7", "10", "alice", "alice", "ünï", "7"],
            "game_id": [100, 10**12 + 5, 101, 102, 100, 101, 100],  # a duplicate pair, a log-only game
            "title": [None, "Portal 2 (Steam)", None, None, None, None, None],
        }
    )
    return features, logs


def serving_artifact() -> ModelArtifact:
    features, logs = tables_for_serving()
    item_ids = catalogue(features, logs)
    sim = sp.csr_matrix((len(item_ids), len(item_ids)), dtype=np.float32)
    return ModelArtifact(item_ids, sim, np.ones(len(item_ids)), {"version": "v1"}).with_serving(logs, features)


def test_serving_data_roundtrip_cards_and_string_keyed_histories() -> None:
    files = serving_artifact().to_files()
    assert set(files) == {ARRAYS, MANIFEST, CARDS, SERVING}
    manifest = json.loads(files[MANIFEST])
    assert set(manifest["files"]) == {ARRAYS, CARDS, SERVING} and manifest["serving"] == {"users": 4, "interactions": 6}
    back = ModelArtifact.from_files(files).serving
    assert back is not None
    ids = [back.user_id(r) for r in range(back.n_users)]
    assert ids == ["10", "7", "alice", "ünï"]  # UTF-8 byte order
    item_ids = [100, 101, 102, 10**12 + 5]
    rows = {
        u: [item_ids[j] for j in back.hist_indices[back.hist_indptr[r] : back.hist_indptr[r + 1]]]
        for r, u in enumerate(ids)
    }
    assert rows == {"10": [101], "7": [100, 10**12 + 5], "alice": [100, 102], "ünï": [101]}
    cards = {c.game_id: c for c in back.cards}
    assert cards[10**12 + 5].name == "Portal 2 (Steam)" and cards[10**12 + 5].genres == []  # the log's title
    assert cards[101].rating == 0.0 and cards[101].background_image == "" and cards[100].released == "2015-05-18"
    # search: named games, most played first, then RAWG "added"; the log-only title is searchable too
    assert [item_ids[i] for i in back.search_order] == [101, 100, 102, 10**12 + 5]  # 2, 2 (added 30 > 10), 1, 1


def test_integer_user_ids_are_their_decimal_strings() -> None:
    features, logs = tables_for_serving()
    numeric = logs.filter(pl.col("user_id").str.contains(r"^\d+$")).with_columns(pl.col("user_id").cast(pl.Int64))
    a = ModelArtifact(np.array([100, 101, 102, 10**12 + 5]), sp.csr_matrix((4, 4)), np.ones(4)).with_serving(
        numeric, features
    )
    b = ModelArtifact(np.array([100, 101, 102, 10**12 + 5]), sp.csr_matrix((4, 4)), np.ones(4)).with_serving(
        numeric.with_columns(pl.col("user_id").cast(pl.Utf8)), features
    )
    assert a.serving is not None and b.serving is not None
    for name, x in a.serving.arrays().items():
        np.testing.assert_array_equal(x, b.serving.arrays()[name], err_msg=name)


def _refiled(files: dict, name: str, change) -> dict:  # type: ignore[no-untyped-def]
    """`files` with one serving array changed and the manifest's sha256 updated (checksum-valid, malformed)."""
    if name == "cards":
        target = CARDS
        raw = change(files[target])
    else:
        target = SERVING
        with np.load(io.BytesIO(files[SERVING]), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays[name] = change(arrays[name])
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        raw = buf.getvalue()
    manifest = json.loads(files[MANIFEST])
    manifest["files"][target] = hashlib.sha256(raw).hexdigest()
    return {**files, target: raw, MANIFEST: json.dumps(manifest).encode()}


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("hist_indices", lambda a: a + 1000, "out of range"),
        ("hist_indices", lambda a: a[::-1].copy(), "strictly increasing"),
        ("hist_indptr", lambda a: a[:-1], "hist_indptr"),
        ("user_blob", lambda a: a[::-1].copy(), "not UTF-8|strictly increasing"),
        ("user_offsets", lambda a: a * 2, "user_offsets"),
        ("search_order", lambda a: np.zeros_like(a), "repeats"),
        ("user_blob", lambda a: a.astype(np.int64), "uint8"),
        ("cards", lambda raw: raw.replace(b'"game_id":100', b'"game_id":999'), "item order"),
        ("cards", lambda raw: raw.replace(b'"rating":4.5', b'"rating":"high"'), "Expected `float`"),
        ("cards", lambda raw: raw.rsplit(b"\n", 1)[0], "3 cards for 4 items"),
    ],
)
def test_checksum_valid_but_malformed_serving_data_is_refused(name: str, change, message: str) -> None:  # type: ignore[no-untyped-def]
    files = serving_artifact().to_files()
    with pytest.raises(ArtifactError, match=message):
        ModelArtifact.from_files(_refiled(files, name, change))


def test_serving_files_are_covered_by_the_manifest() -> None:
    files = serving_artifact().to_files()
    for name in (CARDS, SERVING):
        with pytest.raises(ArtifactError, match="sha256"):
            ModelArtifact.from_files({**files, name: files[name] + b" "})
        with pytest.raises(ArtifactError, match="missing"):
            ModelArtifact.from_files({k: v for k, v in files.items() if k != name})


def test_versions_without_serving_data_still_load() -> None:
    """Written before versions carried cards and histories: the batch asset and champion comparisons read them."""
    assert ModelArtifact.from_files(artifact().to_files()).serving is None


@pytest.mark.parametrize("n", [2, 3, 100_001, 200_000])
def test_ids_of_one_length_are_checked_in_steps(n: int) -> None:
    """Equal-length ids (Steam's) take the vectorised path: sorted ones pass, a swap anywhere is caught."""
    from gamerec_assets.recsys.model_artifact import validate_serving

    ids = "".join(f"{76561197960265728 + i}" for i in range(n)).encode()
    data = {
        "user_blob": np.frombuffer(ids, np.uint8).copy(),
        "user_offsets": np.arange(n + 1, dtype=np.int64) * 17,
        "hist_indptr": np.zeros(n + 1, np.int64),
        "hist_indices": np.zeros(0, np.int32),
        "search_order": np.zeros(0, np.int32),
    }
    validate_serving(data, 1)
    blob = data["user_blob"].reshape(n, 17)
    blob[[n - 2, n - 1]] = blob[[n - 1, n - 2]]  # the last two ids swapped
    with pytest.raises(ArtifactError, match="strictly increasing"):
        validate_serving(data, 1)


def test_serving_problems_of_ids_histories_and_manifest_are_reported_together() -> None:
    """One refusal names every part that is wrong: ids of many lengths out of order, histories, the manifest."""
    from gamerec_assets.recsys.model_artifact import validate_serving

    ids = [b"bb", b"a", b"ccc"]  # of many lengths: the chunked walk, which finds "bb" > "a"
    data = {
        "user_blob": np.frombuffer(b"".join(ids), np.uint8).copy(),
        "user_offsets": np.asarray([0, 2, 3, 6], np.int64),
        "hist_indptr": np.asarray([0, 2, 2, 3], np.int64),
        "hist_indices": np.asarray([1, 0, 5], np.int32),
        "search_order": np.asarray([0, 1], np.int32),
    }
    with pytest.raises(ArtifactError) as refused:
        validate_serving(data, 3, {"serving": {"users": 3, "interactions": 4}})
    message = str(refused.value)
    assert "user ids: not strictly increasing" in message
    assert "hist_indices: entries out of range [0, 3)" in message
    assert "hist_indices: not strictly increasing within a user" in message
    assert "manifest records 4 interactions, the serving data holds 3" in message
    assert "users" not in message.split("manifest records")[1]  # the user count matches
    ids[0] = b"b\x00"
    data["user_blob"] = np.frombuffer(b"".join(ids), np.uint8).copy()
    data["hist_indptr"] = np.asarray([0, 1, 2], np.int64)  # one entry short
    with pytest.raises(ArtifactError, match=r"NUL character; hist_indptr: 3 entries, expected users \+ 1 = 4"):
        validate_serving(data, 3)
    data["hist_indptr"] = np.asarray([0, 2, 2, 3], np.int64)
    data["hist_indices"] = np.asarray([0, 1, 2], np.int32)
    data["user_blob"] = np.frombuffer(b"a" + b"bb" + b"ccc", np.uint8).copy()
    data["user_offsets"] = np.asarray([0, 1, 3, 6], np.int64)
    validate_serving(data, 3, {"serving": {"users": 3, "interactions": 3}})
