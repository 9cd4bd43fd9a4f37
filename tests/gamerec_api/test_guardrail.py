from __future__ import annotations

import numpy as np

from gamerec_api.guardrail import CHECK_EVERY, MIN_ERRORS, Guardrail


def test_a_few_errors_at_the_production_rate_do_not_trip_it() -> None:
    g = Guardrail()
    rng = np.random.default_rng(0)
    for _ in range(4000):  # both arms fail 1 % of the time
        assert g.record(False, 0.001, rng.random() > 0.01) is None
        assert g.record(True, 0.001, rng.random() > 0.01) is None


def test_a_challenger_that_errors_trips_it_after_enough_evidence() -> None:
    g = Guardrail()
    for _ in range(500):
        g.record(False, 0.001, True)
    verdicts = [g.record(True, 0.001, False) for _ in range(MIN_ERRORS)]
    assert verdicts[:-1] == [None] * (MIN_ERRORS - 1)
    assert verdicts[-1] is not None and "error rate" in verdicts[-1]


def test_without_production_traffic_an_absolute_error_rate_decides() -> None:
    g = Guardrail()  # traffic 1.0: no production answers to compare with
    verdict = None
    for i in range(200):
        verdict = verdict or g.record(True, 0.001, i % 5 != 0)  # 20 % errors
    assert verdict is not None and "too little production traffic" in verdict


def test_a_slow_challenger_trips_it_and_a_slightly_slower_one_does_not() -> None:
    slow, close = Guardrail(), Guardrail()
    rng = np.random.default_rng(1)
    tripped_slow = tripped_close = None
    for _ in range(40 * CHECK_EVERY):
        base = float(rng.exponential(0.001))
        slow.record(False, base, True)
        close.record(False, base, True)
        tripped_slow = tripped_slow or slow.record(True, base * 30 + 0.01, True)
        tripped_close = tripped_close or close.record(True, base * 1.5, True)
    assert tripped_slow is not None and "p99 latency" in tripped_slow
    assert tripped_close is None
