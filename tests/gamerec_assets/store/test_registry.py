import hashlib
import io
import json
import threading

import numpy as np
import pytest
import scipy.sparse as sp

from gamerec_assets import backends
from gamerec_assets.recsys import ItemCF, ModelArtifact
from gamerec_assets.store import (
    ArtifactNotFound,
    ArtifactStore,
    ArtifactStoreError,
    LocalArtifactStore,
    ModelRegistry,
    RegistryError,
    S3ArtifactStore,
)
from gamerec_assets.store.registry import InvalidVersion, new_version

V1, V2, V3 = "v20260101T000000-000001", "v20260102T000000-000002", "v20260103T000000-000003"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    bucket = request.getfixturevalue("s3_bucket")
    return S3ArtifactStore(backends.s3_client(bucket["endpoint"]), bucket["bucket"], "gamerec")


def model(seed: int = 0) -> ModelArtifact:
    x = sp.random(40, 12, density=0.3, random_state=seed, format="csr")
    fitted = ItemCF("cosine", 5).fit(x)
    return ModelArtifact(np.arange(12), fitted.similarity, np.ones(12), {"parameters": fitted.params})


def test_objects_are_write_once(store: ArtifactStore) -> None:
    store.put("raw_games/v1/page-0001.json.gz", b"one")
    with pytest.raises(ArtifactStoreError, match="immutable"):
        store.put("raw_games/v1/page-0001.json.gz", b"two")
    assert store.get("raw_games/v1/page-0001.json.gz") == b"one"
    store.replace("raw_games/_latest.json", b"a")
    store.replace("raw_games/_latest.json", b"b")
    assert store.get("raw_games/_latest.json") == b"b"
    assert store.list("raw_games") == ["raw_games/_latest.json", "raw_games/v1/page-0001.json.gz"]
    with pytest.raises(ArtifactNotFound):
        store.get("raw_games/v2/page-0001.json.gz")
    with pytest.raises(ArtifactStoreError, match="invalid"):
        store.put("../escape", b"x")


def test_publish_promote_rollback(store: ArtifactStore) -> None:
    registry = ModelRegistry(store)
    assert registry.production() is None
    v1 = registry.publish(model(1), V1)
    v2 = registry.publish(model(2), V2)
    assert [v.version for v in registry.versions()] == [V1, V2]
    registry.promote(v1)
    registry.promote(v2)
    assert registry.production() == V2
    loaded = registry.load(registry.production())
    assert loaded.version == V2 and loaded.similarity.shape == (12, 12)
    state = registry.rollback()
    assert state["version"] == V1 and registry.production() == V1
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback()
    assert registry.production() == V1


def test_promote_unknown_version_leaves_alias(store: ArtifactStore) -> None:
    registry = ModelRegistry(store)
    registry.promote(registry.publish(model(), V1))
    with pytest.raises(RegistryError, match="does not exist"):
        registry.promote(V2)
    assert registry.production() == V1


def test_concurrent_publishes_never_point_at_partial_artifacts(store: ArtifactStore) -> None:
    registry = ModelRegistry(store)
    errors: list[BaseException] = []

    def publish_and_promote(seed: int) -> None:
        try:
            for _ in range(3):
                registry.promote(registry.publish(model(seed)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish_and_promote, args=(s,)) for s in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(registry.versions()) == 6
    assert registry.load(registry.production()).version == registry.production()


def test_failed_s3_put_keeps_production_alias(s3_bucket: dict, s3_fault_proxy) -> None:
    """The manifest PUT fails on the wire (HTTP 500 from a proxy in front of moto): the alias stays put."""
    client = backends.s3_client(s3_fault_proxy.url)
    registry = ModelRegistry(S3ArtifactStore(client, s3_bucket["bucket"], "gamerec"))
    registry.promote(registry.publish(model(1), V1))
    s3_fault_proxy.fail.append(("PUT", "manifest.json"))
    with pytest.raises(ArtifactStoreError, match="put_object"):
        registry.promote(registry.publish(model(2), V2))
    assert s3_fault_proxy.failed >= 1
    assert registry.production() == V1
    assert [v.version for v in registry.versions()] == [V1]  # the half-written v2 is never listed
    with pytest.raises(RegistryError):
        registry.promote(V2)


def put_malformed(store: ArtifactStore, version: str) -> None:
    """A version whose files pass the sha256 check but whose CSR indices point past the 12-item catalogue."""
    registry = ModelRegistry(store)
    files = model(5).to_files()
    with np.load(io.BytesIO(files["similarity.npz"]), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["indices"] = arrays["indices"].copy()
    arrays["indices"][:3] = 400
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    manifest = json.loads(files["manifest.json"])
    manifest.update(version=version, files={"similarity.npz": hashlib.sha256(buf.getvalue()).hexdigest()})
    store.put(f"{registry.name}/{version}/similarity.npz", buf.getvalue())
    store.put(f"{registry.name}/{version}/manifest.json", json.dumps(manifest).encode())


def test_malformed_version_is_refused_at_publish_promote_and_load(store: ArtifactStore) -> None:
    registry = ModelRegistry(store)
    registry.promote(registry.publish(model(1), V1))
    bad = model(2)
    bad.similarity.indices[:3] = 400
    with pytest.raises(InvalidVersion, match=r"similarity\.indices: 3 entries out of range \[0, 12\)"):
        registry.publish(bad, V3)
    assert not store.list(f"{registry.name}/{V3}")  # nothing written
    put_malformed(store, V2)
    with pytest.raises(InvalidVersion, match=r"similarity\.indices: 3 entries out of range \[0, 12\)"):
        registry.promote(V2)
    assert registry.alias()["version"] == V1 and registry.alias()["previous"] == []
    with pytest.raises(InvalidVersion, match="out of range"):
        registry.load(V2)


def test_half_written_version_is_never_promoted(store: ArtifactStore) -> None:
    registry = ModelRegistry(store)
    registry.promote(registry.publish(model(1), V1))
    files = model(2).to_files()
    manifest = json.loads(files["manifest.json"])
    manifest["version"] = V2
    store.put(f"{registry.name}/{V2}/similarity.npz", files["similarity.npz"][:100])
    store.put(f"{registry.name}/{V2}/manifest.json", json.dumps(manifest).encode())
    store.put(f"{registry.name}/{V3}/manifest.json", json.dumps({**manifest, "version": V3}).encode())
    for version, message in ((V2, "sha256"), (V3, "missing")):
        with pytest.raises(InvalidVersion, match=message):
            registry.promote(version)
    assert registry.production() == V1
    problems = {v.version: v.problem for v in registry.versions()}
    assert problems[V1] is None
    assert "truncated" in problems[V2] and "missing" in problems[V3]


def test_load_serving_falls_back_along_the_history(store: ArtifactStore) -> None:
    registry = ModelRegistry(store)
    with pytest.raises(RegistryError, match="no production"):
        registry.load_serving()
    registry.promote(registry.publish(model(1), V1))
    registry.promote(registry.publish(model(2), V2))
    artifact, skipped = registry.load_serving()
    assert artifact.version == V2 and skipped == []
    put_malformed(store, V3)
    # production moved by hand (or by an older writer) to a version that does not validate
    store.replace(registry._alias_key(), json.dumps({"version": V3, "previous": [V2, V1]}).encode())
    artifact, skipped = registry.load_serving()
    assert artifact.version == V2
    assert [v for v, _ in skipped] == [V3] and "out of range [0, 12)" in skipped[0][1]
    store.replace(registry._alias_key(), json.dumps({"version": V3, "previous": []}).encode())
    with pytest.raises(RegistryError, match="no servable"):
        registry.load_serving()


@pytest.mark.parametrize("bad", ["v1", "_latest.json", "x" * 5000, "../v20260101T000000-000001", "", "a/b"])
def test_version_names_are_checked_before_storage(store: ArtifactStore, bad: str) -> None:
    registry = ModelRegistry(store)
    for op in (registry.promote, registry.load, registry.manifest):
        with pytest.raises(RegistryError, match="invalid model version name"):
            op(bad)
    with pytest.raises(RegistryError, match="invalid model version name"):
        registry.publish(model(), bad or "?")
    assert store.list(registry.name) == []


def test_new_version_matches_the_pattern() -> None:
    from gamerec_assets.store.registry import VERSION_PATTERN

    assert VERSION_PATTERN.fullmatch(new_version())


def test_truncated_alias_is_a_registry_error(store: ArtifactStore) -> None:
    registry = ModelRegistry(store)
    registry.promote(registry.publish(model(1), V1))
    registry.publish(model(2), V2)
    store.replace(registry._alias_key(), b'{"version": "v2026')
    for op in (registry.production, lambda: registry.promote(V2), registry.rollback, registry.load_serving):
        with pytest.raises(RegistryError, match="unreadable"):
            op()
    assert store.get(registry._alias_key()) == b'{"version": "v2026'


def test_history_has_no_duplicates(store: ArtifactStore) -> None:
    registry = ModelRegistry(store)
    for v in (V1, V2, V3):
        registry.publish(model(), v)
    for v in (V1, V2, V1, V3, V2, V1):
        registry.promote(v)
    assert registry.alias()["version"] == V1 and registry.alias()["previous"] == [V2, V3]
    assert registry.rollback()["version"] == V2 and registry.alias()["previous"] == [V3]


def test_concurrent_promotes_lose_no_version(store: ArtifactStore) -> None:
    """Many writers move the alias at once: each promoted version ends up current or in the history, once."""
    registry = ModelRegistry(store)
    versions = [f"v20260101T0000{i:02d}-{i:06x}" for i in range(8)]
    for v in versions:
        registry.publish(model(), v)
    barrier = threading.Barrier(len(versions))
    errors: list[BaseException] = []

    def promote(version: str) -> None:
        try:
            barrier.wait()
            ModelRegistry(store).promote(version)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    state = registry.alias()
    seen = [state["version"], *state["previous"]]
    assert sorted(seen) == sorted(versions), state


def test_write_once_put_is_enforced_by_the_backend(store: ArtifactStore) -> None:
    """Concurrent puts of one key: exactly one wins, the rest are refused (no check-then-put window)."""
    n = 8
    barrier = threading.Barrier(n)
    outcomes: list[str] = []

    def put(i: int) -> None:
        barrier.wait()
        try:
            store.put("raw_games/v1/index.json", f"writer {i}".encode())
            outcomes.append("won")
        except ArtifactStoreError as exc:
            outcomes.append("immutable" if "immutable" in str(exc) else str(exc))

    threads = [threading.Thread(target=put, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["immutable"] * (n - 1) + ["won"], outcomes


def test_s3_client_bounds_a_silent_endpoint() -> None:
    """An endpoint that accepts connections and never answers: a timeout within seconds, naming endpoint and bucket."""
    import socket
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        client = backends.s3_client(endpoint, connect_timeout=1, read_timeout=1)
        store = S3ArtifactStore(client, "models-bucket", "gamerec")
        start = time.monotonic()
        with pytest.raises(
            ArtifactStoreError, match=rf"s3://models-bucket/gamerec/a/b at {endpoint} failed: .*timeout"
        ):
            store.get("a/b")
        assert time.monotonic() - start < backends.s3_call_bound(1, 1) + 5
    finally:
        silent.close()


def _promote_in_child(root: str, version: str, barrier) -> None:
    barrier.wait(timeout=60)
    ModelRegistry(LocalArtifactStore(root)).promote(version)


def test_concurrent_promotes_from_processes_lose_no_version(tmp_path) -> None:
    """The local lock is a flock: it serialises separate processes (Dagster's multiprocess executor), not only
    threads."""
    import multiprocessing

    root = str(tmp_path / "artifacts")
    registry = ModelRegistry(LocalArtifactStore(root))
    versions = [f"v20260101T0001{i:02d}-{i:06x}" for i in range(6)]
    for v in versions:
        registry.publish(model(), v)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(versions))
    procs = [ctx.Process(target=_promote_in_child, args=(root, v, barrier)) for v in versions]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * len(versions)
    state = registry.alias()
    assert sorted([state["version"], *state["previous"]]) == sorted(versions), state


def test_rollback_to_an_unservable_version_is_refused(store: ArtifactStore) -> None:
    registry = ModelRegistry(store)
    registry.publish(model(1), V1)
    registry.publish(model(2), V2)
    put_malformed(store, V3)
    alias = json.dumps({"version": V2, "previous": [V3, V1]}).encode()
    store.replace(registry._alias_key(), alias)
    with pytest.raises(InvalidVersion, match="out of range"):
        registry.rollback()
    assert store.get(registry._alias_key()) == alias
