"""A count of the servers and workers the support modules start, so that the marker guard (`markers`) can tell a
test that started one, whatever fixture or helper it went through."""

from __future__ import annotations

_started: list[str] = []


def record(what: str) -> None:
    """Called by every support module when it starts a server, a worker or a database."""
    _started.append(what)


def since(mark: int) -> list[str]:
    """What was started after `mark` (a value of `count()`)."""
    return _started[mark:]


def count() -> int:
    return len(_started)
