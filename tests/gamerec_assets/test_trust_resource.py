"""`EventTrustResource` and the production model the trust rules measure against, on a real local registry."""

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from gamerec_assets.recsys import ItemCF, ModelArtifact
from gamerec_assets.recsys.event_trust import Champion, TrustParams
from gamerec_assets.resources.storage import LocalArtifactsResource
from gamerec_assets.resources.trust import EventTrustResource, production_champion
from gamerec_assets.store.registry import MODEL_NAME


def publish(artifacts: LocalArtifactsResource, until_seq: int) -> str:
    fitted = ItemCF("cosine", 5).fit(sp.random(20, 6, density=0.4, random_state=0, format="csr"))
    manifest = {"parameters": fitted.params, "data": {"events": {"until_seq": until_seq, "count": 1, "until": None}}}
    registry = artifacts.registry(MODEL_NAME)
    popularity = np.array([5.0, 4, 3, 2, 1, 0])
    version = registry.publish(ModelArtifact(np.arange(10, 16), fitted.similarity, popularity, manifest))
    registry.promote(version)
    return version


def test_the_champion_is_the_production_models_data_and_audience(tmp_path: Path) -> None:
    artifacts = LocalArtifactsResource(root=str(tmp_path / "artifacts"))
    registry = artifacts.registry(MODEL_NAME)
    assert production_champion(registry) == (Champion(), None, None)  # no production model yet
    version = publish(artifacts, 41)
    champion, named, problem = production_champion(registry)
    assert (champion.until_seq, named, problem) == (41, version, None)
    assert champion.audience is not None
    assert dict(champion.audience.iter_rows()) == {10: 5.0, 11: 4.0, 12: 3.0, 13: 2.0, 14: 1.0, 15: 0.0}

    # an unreadable production version: the strict side (no champion), with the reason, never a failed refresh
    (tmp_path / "artifacts" / MODEL_NAME / version / "similarity.npz").unlink()
    champion, named, problem = production_champion(registry)
    assert champion.until_seq == 0 and champion.audience is None and named == version
    assert problem is not None and f"production {version} unreadable" in problem


def test_the_resource_gives_the_core_params() -> None:
    resource = EventTrustResource(min_events=2, burst_window_s=30, burst_new_users=8, game_growth=0.5, game_floor=3)
    assert resource.params() == TrustParams(2, 30.0, 8, 0.5, 3, True)
    assert not resource.params(enabled=False).enabled
