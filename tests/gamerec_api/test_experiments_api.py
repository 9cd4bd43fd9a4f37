"""Online experiments in serving: routing by a salted hash, the variant and tagged request id of every answer,
interleaved lists, attributed events, the answers logged for the online evaluation, promote without a failed
request, and the guardrail (a challenger that errors, one that fails to load).

A real server (uvicorn in a thread, the app's own holder polling the record every RELOAD_S), real registry and
experiment record writes on the local artifact store, real tables (SQLite)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import numpy as np
import pytest
from litestar import Litestar

from gamerec_api.app import create_app
from gamerec_api.holder import ModelHolder
from gamerec_assets.recsys import experiment_ids
from gamerec_assets.recsys.traffic_split import Splitter
from gamerec_assets.store.experiment_answers import ExperimentAnswers
from gamerec_assets.store.experiments import ExperimentStore
from tests.gamerec_api.support import ADMIN_TOKEN, Home, serve, wait_ready
from tests.gamerec_api.test_hot_swap import publish_second_model

pytestmark = pytest.mark.integration  # a uvicorn server and the home's SQLite tables

RELOAD_S = 0.2
USERS = [str(u) for u in range(120)]


def experiments(home: Home) -> ExperimentStore:
    registry = home.registry()
    return ExperimentStore(registry.store, registry.name)


def start(home: Home, name: str, challenger: str, traffic: float, mode: str = "ab") -> None:
    registry = home.registry()
    experiments(home).start(name, challenger, registry.production() or "", traffic, mode, by="test")
    registry.set_challenger(challenger, reason=f"experiment {name} started")


def until(check: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@contextmanager
def running(home: Home) -> Iterator[tuple[httpx.Client, ModelHolder]]:
    app: Litestar = create_app(home.settings, reload_interval=RELOAD_S, admin_token=ADMIN_TOKEN, env={})
    with serve(app) as base, httpx.Client(base_url=base, timeout=30) as c:
        wait_ready(c)
        yield c, app.state.holder


def predict(c: httpx.Client, user: str, k: int = 10) -> dict:
    r = c.post("/predict", json={"user_id": user, "k": k})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def two_versions(fresh_home: Home) -> tuple[Home, str, str]:
    v1 = fresh_home.seeded.version
    v2 = publish_second_model(fresh_home)
    return fresh_home, v1, v2


def test_ab_routes_each_user_by_the_salted_hash_and_tags_every_answer(two_versions: tuple[Home, str, str]) -> None:
    home, v1, v2 = two_versions
    with running(home) as (c, holder):
        plain = predict(c, "7")
        assert plain["variant"] == "production" and "~" not in plain["request_id"]
        start(home, "ab-1", v2, 0.3)
        until(lambda: holder.experiment is not None, what="the worker to load the challenger")
        split = Splitter("ab-1")
        treated = {u for u in USERS if split.treated(u.encode(), 0.3)}
        assert 15 < len(treated) < 60
        for u in USERS:
            answer = predict(c, u)
            a = experiment_ids.parse(answer["request_id"])
            assert a is not None and a.experiment == "ab-1"
            if u in treated:
                assert (answer["variant"], answer["model_version"], a.arm, a.version) == (
                    "challenger",
                    v2,
                    "challenger",
                    v2,
                )
            else:
                assert (answer["variant"], answer["model_version"], a.arm, a.version) == (
                    "production",
                    v1,
                    "production",
                    v1,
                )
            assert predict(c, u)["variant"] == answer["variant"]  # the same user, the same variant
        status = c.get("/admin/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()["experiment"]
        assert (status["name"], status["mode"], status["challenger"], status["production"]) == ("ab-1", "ab", v2, v1)
        assert status["answers"]["treated"] >= 2 * len(treated) and status["errors"] == {"production": 0, "treated": 0}

        # an event quoting a challenger answer's request id is attributed to the challenger, from the id alone
        u = sorted(treated)[0]
        answer = predict(c, u)
        game = answer["items"][0]["game_id"]
        posted = c.post(
            "/events",
            json={"events": [{"user_id": u, "game_id": game, "type": "click", "request_id": answer["request_id"]}]},
            headers={"Authorization": f"Bearer {answer['event_token']}"},
        )
        assert posted.status_code == 202 and posted.json()["accepted"] == 1, posted.text
        metrics = c.get("/metrics").text
        assert _has_series(
            metrics,
            "gamerec_events_attributed_total",
            experiment="ab-1",
            variant="challenger",
            version=v2,
            type="click",
        )
        assert _has_series(
            metrics, "gamerec_variant_requests_total", experiment="ab-1", variant="challenger", version=v2
        )

        # every answer is logged for the online evaluation, with its arm and games
        tables = holder.tables()
        until(lambda: len(ExperimentAnswers(tables).frame("ab-1")) >= 2 * len(USERS), what="experiment_answers rows")
        rows = ExperimentAnswers(tables).frame("ab-1")
        mine = rows.filter(rows["request_id"] == answer["request_id"]).row(0, named=True)
        assert mine["arm"] == "c" and mine["version"] == v2 and mine["user_id"] == u
        assert mine["game_ids"] == [i["game_id"] for i in answer["items"]] and set(mine["teams"]) == {"c"}

        # raising the traffic only adds users; stopping sends everyone back to production
        experiments(home).set_traffic(0.6, by="test")
        until(lambda: holder.experiment is not None and holder.experiment.record.traffic == 0.6, what="traffic")
        assert all(predict(c, u)["variant"] == "challenger" for u in treated)
        experiments(home).end("test over", by="test")
        until(lambda: holder.experiment is None, what="the stop")
        answer = predict(c, u)
        assert answer["variant"] == "production" and "~" not in answer["request_id"]


def _has_series(metrics: str, name: str, **labels: str) -> bool:
    for line in metrics.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1]) > 0
    return False


def test_interleave_merges_both_lists_and_credits_each_game(two_versions: tuple[Home, str, str]) -> None:
    home, v1, v2 = two_versions
    with running(home) as (c, holder):
        start(home, "il-1", v2, 1.0, mode="interleave")
        until(lambda: holder.experiment is not None, what="the challenger")
        registry = home.registry()
        from gamerec_assets.recsys.served_model import ServingModel

        models = {v: ServingModel(registry.load(v)) for v in (v1, v2)}
        for u in USERS[:40]:
            answer = predict(c, u, k=10)
            assert answer["variant"] == "interleave" and answer["model_version"] == v1
            a = experiment_ids.parse(answer["request_id"])
            assert a == experiment_ids.Attribution("il-1", "interleave", v1, v2)
            ids = [i["game_id"] for i in answer["items"]]
            assert len(ids) == len(set(ids)) == 10
        tables = holder.tables()
        until(lambda: len(ExperimentAnswers(tables).frame("il-1")) >= 40, what="experiment_answers rows")
        rows = ExperimentAnswers(tables).frame("il-1")
        assert set(rows["arm"]) == {"i"} and set(rows["challenger_version"]) == {v2}
        both = 0
        for row in rows.iter_rows(named=True):
            teams = row["teams"]
            assert len(teams) == len(row["game_ids"]) and abs(teams.count("p") - teams.count("c")) <= 1
            # each game is one its team's model recommends to that user
            for game, team in zip(row["game_ids"], teams, strict=True):
                assert models[v1 if team == "p" else v2].item_index(game) >= 0
            both += "p" in teams and "c" in teams
        assert both == len(rows)


def test_promote_under_load_has_no_failed_request(two_versions: tuple[Home, str, str]) -> None:
    home, v1, v2 = two_versions
    failures: list[str] = []
    versions: list[str] = []
    stop = threading.Event()

    def hammer(base: str, seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=base, timeout=30) as h:
            while not stop.is_set():
                r = h.post("/predict", json={"user_id": str(rng.integers(0, 200)), "k": 10})
                if r.status_code != 200:
                    failures.append(r.text)
                else:
                    versions.append(r.json()["model_version"])

    with running(home) as (c, holder):
        threads = [threading.Thread(target=hammer, args=(str(c.base_url), n)) for n in range(4)]
        for t in threads:
            t.start()
        try:
            start(home, "promo", v2, 0.5)
            until(lambda: holder.experiment is not None, what="the challenger")
            time.sleep(0.5)
            registry = home.registry()
            registry.promote(v2, reason="experiment promo promoted")
            experiments(home).end("challenger promoted", status="promoted", by="test", only="promo")
            registry.set_challenger(None, reason="promoted")
            until(
                lambda: holder.experiment is None and holder.state is not None and holder.state.version == v2,
                what="the promote",
            )
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert not failures, failures[:3]
    assert v1 in versions and v2 in versions
    assert versions[-1] == v2


def test_the_guardrail_stops_a_challenger_that_errors(two_versions: tuple[Home, str, str]) -> None:
    home, _, v2 = two_versions
    with running(home) as (c, holder):
        start(home, "bad-1", v2, 0.5)
        until(lambda: holder.experiment is not None, what="the challenger")
        exp = holder.experiment
        assert exp is not None
        # the challenger's loaded histories break (a fault in memory): every treated known user's answer raises
        object.__setattr__(exp.challenger, "hist_indptr", np.zeros(1, np.int64))
        treated = [u for u in (str(i) for i in range(300)) if exp.treated(u.encode())]
        statuses = [c.post("/predict", json={"user_id": u, "k": 5}).status_code for u in treated[:60]]
        assert set(statuses) == {200}  # the failed challenger answers were served by production
        until(lambda: experiments(home).current() is None, what="the guardrail to end the experiment")
        ended = experiments(home).all()[0]
        assert ended.status == "stopped" and ended.reason is not None
        assert "guardrail" in ended.reason and "error rate" in ended.reason, ended.reason
        assert home.registry().challenger() is None
        assert holder.experiment is None
        assert _has_series(c.get("/metrics").text, "gamerec_experiment_guardrail_trips_total", experiment="bad-1")
        assert predict(c, treated[0])["variant"] == "production"


def test_the_guardrail_stops_a_challenger_that_fails_to_load(two_versions: tuple[Home, str, str]) -> None:
    home, v1, v2 = two_versions
    registry = home.registry()
    # a version damaged after it was published (an operator's CLI validates before it records; this record names
    # the version directly, as another tool could): the worker's own validation refuses it
    store = registry.store
    key = next(k for k in store.list(f"{registry.name}/{v2}") if k.endswith("similarity.npz"))
    store.replace(key, b"not an array")
    with running(home) as (c, holder):
        experiments(home).start("noload", v2, v1, 0.5, "ab", by="test")
        until(lambda: experiments(home).current() is None, what="the guardrail")
        ended = experiments(home).all()[0]
        assert "failed to load" in (ended.reason or ""), ended.reason
        assert holder.experiment is None
        assert predict(c, "7")["model_version"] == v1


def test_a_liked_game_the_challenger_does_not_know_is_answered_by_production(fresh_home: Home) -> None:
    from gamerec_api.demo import fit_artifact
    from gamerec_assets.recsys import SimulationParams, simulate_user_logs

    home = fresh_home
    features = home.seeded.features
    missing = int(features["game_id"][0])
    smaller = features.filter(features["game_id"] != missing)  # an older catalogue, without that game
    logs = simulate_user_logs(smaller, SimulationParams(n_users=200, seed=3))
    v2 = home.registry().publish(fit_artifact(smaller, logs))
    with running(home) as (c, holder):
        start(home, "older", v2, 1.0)
        until(lambda: holder.experiment is not None, what="the challenger")
        assert holder.experiment is not None and holder.experiment.challenger.model.item_index(missing) < 0
        r = c.post("/predict", json={"user_id": "guest-1", "k": 5, "liked_game_ids": [missing]})
        assert r.status_code == 200, r.text
        assert r.json()["variant"] == "production" and "~" not in r.json()["request_id"]
        assert holder.experiment is not None and holder.experiment.guard.treated.errors == 0  # not its error
        assert predict(c, "guest-1")["variant"] == "challenger"  # without that game, the challenger answers
