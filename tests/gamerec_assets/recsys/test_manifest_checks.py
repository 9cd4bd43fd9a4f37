"""manifest_checks: implausible acted-on manifest fields are refused at publish-time checks, promote and load."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from gamerec_assets.recsys import ItemCF, ModelArtifact
from gamerec_assets.recsys.feedback import check_event, now_us
from gamerec_assets.recsys.manifest_checks import manifest_problems
from gamerec_assets.store import LocalArtifactStore, ModelRegistry, RegistryError
from gamerec_assets.store.event_store import EventStore
from gamerec_assets.store.registry import InvalidVersion
from gamerec_assets.store.table_store import TableStore

GOOD = {
    "data": {"events": {"until_seq": 40, "count": 12, "until": None}},
    "metrics": {"validation": {"ndcg@10": 0.3, "precision@10": 0.1}, "validation_popularity": {"ndcg@10": 0.2}},
    "parameters": {"model": "ItemCF", "k": 50, "serving_neighbors": 300},
    "arrays": {"items": 12, "nnz": 30},
    "sizes": {"similarity.npz": 1000},
    "training_data": {"items": 12},
}


def test_a_plausible_manifest_passes() -> None:
    assert manifest_problems(GOOD, newest_event_seq=40) == []
    assert manifest_problems({}, newest_event_seq=0) == [], "older versions lack the fields"
    assert manifest_problems(GOOD) == [], "without the events table only types and signs count"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"data": {"events": {"until_seq": 10**15}}}, "beyond the newest interaction_events seq 40"),
        ({"data": {"events": {"until_seq": 1e15}}}, "until_seq: expected a non-negative integer"),
        ({"data": {"events": {"until_seq": -1}}}, "until_seq: expected a non-negative integer"),
        ({"data": {"events": {"until_seq": True}}}, "until_seq: expected a non-negative integer"),
        ({"data": {"events": {"until_seq": "40"}}}, "until_seq: expected a non-negative integer"),
        ({"data": {"events": {"until_seq": 40, "count": 41}}}, "count 41 exceeds data.events.until_seq 40"),
        ({"data": {"events": {"until_seq": 4, "count": -2}}}, "count: expected a non-negative integer"),
        ({"data": {"events": [1]}}, "data.events: expected an object"),
        ({"metrics": {"validation": {"ndcg@10": 7.0}}}, "metrics.validation.ndcg@10: expected a number in [0, 1]"),
        ({"metrics": {"validation": {"recall@10": float("inf")}}}, "recall@10"),
        ({"metrics": {"validation": {"ndcg@10": "0.3"}}}, "ndcg@10"),
        ({"parameters": {"k": 10**12}}, "parameters.k: expected an integer in 1..1000000"),
        ({"parameters": {"serving_neighbors": 0}}, "parameters.serving_neighbors"),
        ({"parameters": "ItemCF"}, "parameters: expected an object"),
        ({"arrays": {"items": -12}}, "arrays.items: expected a non-negative integer"),
        ({"sizes": {"similarity.npz": 1.5}}, "sizes.similarity.npz"),
        ({"training_data": {"items": -1}}, "training_data.items"),
    ],
)
def test_implausible_fields_are_named(change: dict, expected: str) -> None:
    problems = manifest_problems({**GOOD, **change}, newest_event_seq=40)
    assert any(expected in p for p in problems), problems


def model(until_seq: object) -> ModelArtifact:
    x = sp.random(40, 12, density=0.3, random_state=0, format="csr")
    fitted = ItemCF("cosine", 5).fit(x)
    manifest = {"parameters": fitted.params, "data": {"events": {"until_seq": until_seq, "count": 0}}}
    return ModelArtifact(np.arange(12), fitted.similarity, np.ones(12), manifest)


def test_the_registry_refuses_a_version_beyond_the_events_table(tmp_path) -> None:
    newest = {"seq": 100}
    registry = ModelRegistry(LocalArtifactStore(tmp_path), events_seq=lambda: newest["seq"])
    ok = registry.publish(model(100))
    registry.promote(ok)
    beyond = registry.publish(model(10**15))
    with pytest.raises(InvalidVersion, match=r"until_seq 1000000000000000 is beyond the newest .* seq 100"):
        registry.promote(beyond)
    assert registry.production() == ok, "a refused promote leaves the alias"
    with pytest.raises(InvalidVersion):
        registry.load(beyond)
    newest["seq"] = 10**15  # once the events exist, the version is plausible
    registry.promote(beyond)
    assert registry.production() == beyond


def test_negative_or_fractional_seqs_are_refused_without_the_events_table(tmp_path) -> None:
    registry = ModelRegistry(LocalArtifactStore(tmp_path))
    for bad in (-5, 2.5):
        version = registry.publish(model(bad))
        with pytest.raises(InvalidVersion, match="until_seq: expected a non-negative integer"):
            registry.promote(version)
    assert registry.production() is None


def test_an_unreadable_events_table_refuses_a_promote_and_says_why(tmp_path) -> None:
    def broken() -> int:
        raise RuntimeError("database at db:3306 is unreachable")

    registry = ModelRegistry(LocalArtifactStore(tmp_path), events_seq=broken)
    version = ModelRegistry(LocalArtifactStore(tmp_path)).publish(model(3))
    with pytest.raises(RegistryError, match="cannot read the newest event seq to check: database at db:3306"):
        registry.promote(version)


@pytest.fixture(params=["sqlite", "mysql"])
def events(request: pytest.FixtureRequest, tmp_path) -> EventStore:
    if request.param == "sqlite":
        return EventStore(TableStore(f"sqlite:///{tmp_path / 'db' / 'gamerec.db'}"))
    return EventStore(TableStore(request.getfixturevalue("mysql_db")["url"]))


def test_promotion_compares_with_the_real_events_table(events: EventStore, tmp_path) -> None:
    registry = ModelRegistry(LocalArtifactStore(tmp_path / "artifacts"), events_seq=events.last_seq)
    claims_one = registry.publish(model(1))
    with pytest.raises(InvalidVersion, match="beyond the newest interaction_events seq 0"):
        registry.promote(claims_one)  # no events table yet: nothing was trained on
    sent = [
        check_event(event_id=f"e{i}", user_id="alice", game_id=3, type="play", value=1.0, timestamp=None,
                    received_us=now_us())
        for i in range(5)
    ]  # fmt: skip
    newest = events.append(sent).last_seq
    registry.promote(claims_one)
    exact = registry.publish(model(newest))
    registry.promote(exact)
    beyond = registry.publish(model(newest + 1))
    with pytest.raises(InvalidVersion, match=f"until_seq {newest + 1} is beyond the newest interaction_events seq"):
        registry.promote(beyond)
    assert registry.production() == exact
