"""Which users an experiment gives the challenger (A/B) or interleaved lists: a salted hash, the same everywhere.

A user's bucket is a number in [0, 1) from BLAKE2b keyed with the experiment's name over the user id's UTF-8 bytes:
every API worker, host and the offline tools compute the same bucket with no shared state, a user keeps their
variant for the life of the experiment, and another experiment (another salt) draws an independent split. A user is
in the challenger's share when their bucket is below the traffic, so raising the traffic (a canary at 0.01, then
0.2) only adds users: nobody who saw the challenger goes back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

_PERSON = b"gamerec-split"  # BLAKE2b's personalisation: these buckets are not any other hash of the same bytes
_SCALE = 2.0**-64


def _salt(experiment: str) -> bytes:
    return hashlib.sha256(experiment.encode()).digest()  # any name length fits BLAKE2b's 64-byte key


class Splitter:
    """`bucket` with the experiment's key prepared once: the API asks it per request (about a microsecond)."""

    __slots__ = ("_hasher", "experiment")

    def __init__(self, experiment: str) -> None:
        self.experiment = experiment
        self._hasher = hashlib.blake2b(digest_size=8, key=_salt(experiment), person=_PERSON)

    def bucket(self, user_key: bytes) -> float:
        h = self._hasher.copy()
        h.update(user_key)
        return int.from_bytes(h.digest(), "big") * _SCALE

    def treated(self, user_key: bytes, traffic: float) -> bool:
        """True when the user is in the challenger's share `traffic`."""
        return self.bucket(user_key) < traffic

    def buckets(self, user_ids: Iterable[str]) -> np.ndarray:
        """Every user's bucket (float64), for offline tools: a replay, the shares a traffic would give."""
        return np.fromiter((self.bucket(u.encode()) for u in user_ids), np.float64)


def bucket(experiment: str, user_key: bytes) -> float:
    """The user's bucket in [0, 1) for `experiment` (user_key: the user id's UTF-8 bytes)."""
    return Splitter(experiment).bucket(user_key)
