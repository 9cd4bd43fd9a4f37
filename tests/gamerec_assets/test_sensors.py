"""The sensor `retrain_on_new_events` against a real (ephemeral) Dagster instance, a real SQLite table database with
appended events and a real local registry: below N it skips saying why, at N it requests one refresh_all run, never
twice for the same events, and never while a refresh is in progress."""

from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import scipy.sparse as sp
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.utils import make_new_run_id

from gamerec_assets.recsys import ItemCF, ModelArtifact
from gamerec_assets.recsys.feedback import check_event
from gamerec_assets.resources.storage import LocalArtifactsResource, TablesResource
from gamerec_assets.sensors import build_retrain_sensor
from gamerec_assets.store.registry import MODEL_NAME

N = 5


@pytest.fixture
def resources(tmp_path: Path) -> dict[str, object]:
    return {
        "tables": TablesResource(url=f"sqlite:///{tmp_path / 'gamerec.db'}"),
        "artifacts": LocalArtifactsResource(root=str(tmp_path / "artifacts")),
    }


@pytest.fixture
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


def append(
    tables: TablesResource, n: int, start: int = 0, every_us: int = 60_000_000, keys: tuple[str, ...] = ()
) -> int:
    """n events of n users, one every `every_us` (default a minute: each in its own arrival window, i.e. source);
    with `keys`, event i is sent by keys[i % len(keys)] (one append per key), else by no one (NULL)."""
    events = [
        check_event(
            user_id=f"u{i}",
            game_id=1 + i % 3,
            type="play",
            value=None,
            timestamp=None,
            received_us=10**15 + i * every_us,
        )
        for i in range(start, start + n)
    ]
    store = tables.events()
    if not keys:
        return store.append(events).last_seq
    for k, key in enumerate(keys):
        last = store.append(events[k :: len(keys)], key_name=key).last_seq
    return last


def tick(
    instance: dg.DagsterInstance,
    resources: dict[str, object],
    cursor: str | None = None,
    sensor: dg.SensorDefinition | None = None,
) -> dg.SensorResult:
    sensor = sensor or build_retrain_sensor(N)
    # a `with` block closes the resources it built (else their context lingers into later tests)
    with dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor) as context:
        return sensor(context)


def promote_model_trained_until(artifacts: LocalArtifactsResource, seq: int) -> str:
    fitted = ItemCF("cosine", 5).fit(sp.random(20, 6, density=0.4, random_state=0, format="csr"))
    manifest = {"parameters": fitted.params, "data": {"events": {"until_seq": seq, "count": seq, "until": None}}}
    registry = artifacts.registry(MODEL_NAME)
    version = registry.publish(ModelArtifact(np.arange(6), fitted.similarity, np.ones(6), manifest))
    registry.promote(version)
    return version


def test_below_n_it_skips_and_at_n_it_requests_one_refresh(instance, resources) -> None:
    first = tick(instance, resources)
    assert not first.run_requests and "0 new events after seq 0 (no model yet)" in first.skip_reason.skip_message
    assert not first.asset_events  # nothing observed yet: no events table

    append(resources["tables"], N - 1)
    below = tick(instance, resources, first.cursor)
    assert not below.run_requests and f"{N - 1} new events after seq 0" in below.skip_reason.skip_message
    assert f"a refresh at {N}" in below.skip_reason.skip_message
    observed = below.asset_events[0]
    assert observed.asset_key == dg.AssetKey("interaction_events") and observed.tags["dagster/data_version"] == "4"
    assert observed.metadata["new_events"].value == N - 1

    last = append(resources["tables"], 1, start=N - 1)
    at_n = tick(instance, resources, below.cursor)
    (request,) = at_n.run_requests
    assert request.job_name in (None, "refresh_all") and request.run_key == f"events-until-{last}"
    assert request.run_config["ops"]["raw_games"]["config"]["crawl_date"]  # the schedule's run config
    assert request.tags["gamerec/events_until"] == str(last)

    # the same events never request twice, even if the refresh's model was not promoted
    again = tick(instance, resources, at_n.cursor)
    assert not again.run_requests and f"0 new events after seq {last}" in again.skip_reason.skip_message


def test_counts_from_the_production_models_events(instance, resources) -> None:
    last = append(resources["tables"], N + 2)
    version = promote_model_trained_until(resources["artifacts"], last - 2)
    result = tick(instance, resources)
    assert not result.run_requests
    assert f"2 new events after seq {last - 2} (production {version}" in result.skip_reason.skip_message
    append(resources["tables"], N, start=100)
    assert len(tick(instance, resources, result.cursor).run_requests) == 1


def test_a_burst_from_few_sources_does_not_request_a_refresh(instance, resources) -> None:
    # 3 N events of 3 N users within a second: one arrival window, i.e. one source, counted as N / 5 at most
    append(resources["tables"], 3 * N, every_us=1)
    burst = tick(instance, resources)
    assert not burst.run_requests
    message = burst.skip_reason.skip_message
    assert f"{3 * N} new events after seq 0" in message and "from 1 source(s) (15 users)" in message
    assert "they count as 1 (at most 1 per source" in message  # ceil(5 / 5) per source
    # the same number again, spread over minutes (many sources): now it does
    append(resources["tables"], N, start=100)
    (request,) = tick(instance, resources, burst.cursor).run_requests
    assert request.tags["gamerec/event_sources"] == str(1 + N)


@pytest.mark.parametrize("n_keys", [1, 2])
def test_many_windows_from_few_keys_do_not_request_a_refresh(instance, resources, n_keys) -> None:
    # 3 x 20 events, one a minute (60 arrival windows), all sent with one or two write keys: 1-2 sources, each
    # counted at most ceil(20 / 4) = 5, so 5-10 effective events, below 20
    sensor = build_retrain_sensor(20, min_sources=4)
    keys = tuple(f"partner-{k}" for k in range(n_keys))
    append(resources["tables"], 60, keys=keys)
    result = tick(instance, resources, sensor=sensor)
    assert not result.run_requests
    message = result.skip_reason.skip_message
    assert f"60 new events after seq 0 (no model yet), but from {n_keys} source(s) (60 users)" in message
    assert f"they count as {5 * n_keys} (at most 5 per source" in message


@pytest.mark.parametrize("n_keys", [4, 6])
def test_the_same_events_from_enough_keys_request_a_refresh(instance, resources, n_keys) -> None:
    # the same 60 events, but from at least min_sources keys, within one second (a single arrival window): the
    # senders count, not the windows
    sensor = build_retrain_sensor(20, min_sources=4)
    last = append(resources["tables"], 60, every_us=1, keys=tuple(f"site-{k}" for k in range(n_keys)))
    (request,) = tick(instance, resources, sensor=sensor).run_requests
    assert request.run_key == f"events-until-{last}" and request.tags["gamerec/event_sources"] == str(n_keys)


def test_events_without_a_sender_count_by_arrival_window_beside_keyed_ones(instance, resources) -> None:
    sensor = build_retrain_sensor(20, min_sources=4)
    append(resources["tables"], 30, keys=("partner-a",))  # one key over 30 minutes: 5 effective
    append(resources["tables"], 10, start=100, every_us=1)  # no sender, one second: one window, 5 effective
    skipped = tick(instance, resources, sensor=sensor)
    assert not skipped.run_requests and "from 2 source(s)" in skipped.skip_reason.skip_message
    append(resources["tables"], 10, start=200)  # no sender, ten minutes: 10 windows, 10 effective -> 20
    (request,) = tick(instance, resources, skipped.cursor, sensor=sensor).run_requests
    assert request.tags["gamerec/event_sources"] == "12"


def test_no_second_refresh_while_one_runs(instance, resources) -> None:
    append(resources["tables"], N)
    run = DagsterRun(job_name="refresh_all", run_id=make_new_run_id(), status=dg.DagsterRunStatus.STARTED)
    instance.add_run(run)
    busy = tick(instance, resources)
    assert not busy.run_requests
    assert f"refresh_all run {run.run_id} is started: not starting a second refresh" in busy.skip_reason.skip_message
    instance.report_run_failed(run)  # the refresh ended: the next tick requests one
    assert len(tick(instance, resources, busy.cursor).run_requests) == 1
