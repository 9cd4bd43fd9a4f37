from __future__ import annotations

import subprocess
import sys

import numpy as np

from gamerec_assets.recsys.traffic_split import Splitter, bucket


def test_the_same_user_gets_the_same_bucket_in_another_process() -> None:
    here = [bucket("exp-1", f"user-{i}".encode()) for i in range(5)]
    code = (
        "from gamerec_assets.recsys.traffic_split import bucket; "
        "print([bucket('exp-1', f'user-{i}'.encode()) for i in range(5)])"
    )
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert repr(here) == there.strip()
    assert Splitter("exp-1").bucket(b"user-3") == here[3]


def test_buckets_are_uniform_and_shares_match_the_traffic() -> None:
    users = [str(i) for i in range(40_000)]
    b = Splitter("canary").buckets(users)
    assert ((b >= 0) & (b < 1)).all()
    counts, _ = np.histogram(b, bins=10, range=(0, 1))
    assert np.abs(counts - 4000).max() < 250  # ~4 sigma of a binomial(40000, 0.1)
    for traffic in (0.01, 0.1, 0.5):
        assert abs((b < traffic).mean() - traffic) < 4 * np.sqrt(traffic * (1 - traffic) / len(users))


def test_raising_the_traffic_only_adds_users_and_another_experiment_splits_independently() -> None:
    s = Splitter("ramp")
    users = [f"u{i}" for i in range(5000)]
    small = {u for u in users if s.treated(u.encode(), 0.05)}
    large = {u for u in users if s.treated(u.encode(), 0.2)}
    assert small < large
    other = Splitter("ramp-2").buckets(users) < 0.2
    mine = s.buckets(users) < 0.2
    # independent draws: the overlap is about 0.2 * 0.2 of the users, not 0.2
    assert abs((other & mine).mean() - 0.04) < 0.015
