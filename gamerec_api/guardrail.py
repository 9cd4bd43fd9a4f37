"""A worker's guardrail for a running experiment: stop it when the challenger is clearly worse at serving.

Each worker counts, per arm, its answers, server errors and latencies (the answer's own work) since it began
routing the experiment. "Treated" is the challenger's arm (A/B) or the interleaved answers, which need both models;
"production" the rest. The guardrail trips (and the holder ends the experiment for every worker, with the reason
recorded and logged) when either holds:

- errors: the treated arm has at least MIN_ERRORS server errors and its error rate is above production's by a
  one-sided two-proportion z-test at Z_ERRORS (about p < 0.001: a guardrail that trips on noise stops good
  experiments); with under MIN_BASELINE production answers (traffic near 1), an error rate above MAX_ERROR_RATE;
- latency: both arms have MIN_LATENCY_SAMPLES answers in their windows (the last WINDOW each) and the treated
  arm's p99 exceeds LATENCY_RATIO × production's p99 + LATENCY_SLACK_S (a slack, since a p99 of 0.2 ms doubling to
  0.4 ms hurts nobody).

A challenger that fails to load trips it too (the holder says so). A request whose challenger work raised is
answered by production (the player sees no error) and counted here as the challenger's error.
"""

from __future__ import annotations

import math

import numpy as np

MIN_ERRORS = 5
Z_ERRORS = 3.09  # one-sided p < 0.001
MIN_BASELINE = 50
MAX_ERROR_RATE = 0.05
WINDOW = 2048
MIN_LATENCY_SAMPLES = 200
LATENCY_RATIO = 2.0
LATENCY_SLACK_S = 0.005
CHECK_EVERY = 64  # the latency test runs once per this many treated answers


class _Arm:
    __slots__ = ("answers", "errors", "latency", "n_latency")

    def __init__(self) -> None:
        self.answers = 0
        self.errors = 0
        self.latency = np.zeros(WINDOW, np.float64)
        self.n_latency = 0

    def p99(self) -> float:
        n = min(self.n_latency, WINDOW)
        return float(np.quantile(self.latency[:n], 0.99))


class Guardrail:
    """Per worker and per experiment; the event loop is the only caller (no lock)."""

    def __init__(self) -> None:
        self.production = _Arm()
        self.treated = _Arm()

    def record(self, treated: bool, seconds: float, ok: bool) -> str | None:
        """Count one answer; the reason to stop the experiment when this one makes the challenger clearly worse."""
        arm = self.treated if treated else self.production
        arm.answers += 1
        if not ok:
            arm.errors += 1
        else:
            arm.latency[arm.n_latency % WINDOW] = seconds
            arm.n_latency += 1
        if not treated:
            return None
        if not ok:
            return self.error_verdict()
        if arm.n_latency % CHECK_EVERY == 0:
            return self.latency_verdict()
        return None

    def error_verdict(self) -> str | None:
        t, p = self.treated, self.production
        if t.errors < MIN_ERRORS:
            return None
        rate_t = t.errors / t.answers
        if p.answers < MIN_BASELINE:
            if rate_t > MAX_ERROR_RATE:
                return (
                    f"challenger error rate {rate_t:.1%} ({t.errors}/{t.answers}) above {MAX_ERROR_RATE:.0%} "
                    "(too little production traffic to compare)"
                )
            return None
        rate_p = p.errors / p.answers
        pooled = (t.errors + p.errors) / (t.answers + p.answers)
        se = math.sqrt(pooled * (1 - pooled) * (1 / t.answers + 1 / p.answers))
        z = (rate_t - rate_p) / se if se > 0 else 0.0
        if z > Z_ERRORS:
            return (
                f"challenger error rate {rate_t:.1%} ({t.errors}/{t.answers}) vs production {rate_p:.1%} "
                f"({p.errors}/{p.answers}), z = {z:.1f}"
            )
        return None

    def latency_verdict(self) -> str | None:
        t, p = self.treated, self.production
        if min(t.n_latency, p.n_latency) < MIN_LATENCY_SAMPLES:
            return None
        p99_t, p99_p = t.p99(), p.p99()
        if p99_t > LATENCY_RATIO * p99_p + LATENCY_SLACK_S:
            return f"challenger p99 latency {p99_t * 1e3:.1f} ms vs production {p99_p * 1e3:.1f} ms"
        return None
