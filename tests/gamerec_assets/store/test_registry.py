import threading

import boto3
import numpy as np
import pytest
import scipy.sparse as sp

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


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    bucket = request.getfixturevalue("s3_bucket")
    return S3ArtifactStore(boto3.client("s3", endpoint_url=bucket["endpoint"]), bucket["bucket"], "gamerec")


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
    v1 = registry.publish(model(1), "v1")
    v2 = registry.publish(model(2), "v2")
    assert [v.version for v in registry.versions()] == ["v1", "v2"]
    registry.promote(v1)
    registry.promote(v2)
    assert registry.production() == "v2"
    loaded = registry.load(registry.production())
    assert loaded.version == "v2" and loaded.similarity.shape == (12, 12)
    state = registry.rollback()
    assert state["version"] == "v1" and registry.production() == "v1"
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback()
    assert registry.production() == "v1"


def test_promote_unknown_version_leaves_alias(store: ArtifactStore) -> None:
    registry = ModelRegistry(store)
    registry.promote(registry.publish(model(), "v1"))
    with pytest.raises(RegistryError, match="does not exist"):
        registry.promote("v404")
    assert registry.production() == "v1"


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
    from botocore.config import Config

    client = boto3.client(
        "s3", endpoint_url=s3_fault_proxy.url, config=Config(retries={"max_attempts": 2, "mode": "standard"})
    )
    registry = ModelRegistry(S3ArtifactStore(client, s3_bucket["bucket"], "gamerec"))
    registry.promote(registry.publish(model(1), "v1"))
    s3_fault_proxy.fail.append(("PUT", "manifest.json"))
    with pytest.raises(ArtifactStoreError, match="put_object"):
        registry.promote(registry.publish(model(2), "v2"))
    assert s3_fault_proxy.failed >= 1
    assert registry.production() == "v1"
    assert [v.version for v in registry.versions()] == ["v1"]  # the half-written v2 is never listed
    with pytest.raises(RegistryError):
        registry.promote("v2")
