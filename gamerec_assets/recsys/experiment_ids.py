"""Request ids that carry their experiment: an event quoting one is attributed to the arm and model version that
answered, with nothing kept by the service and nothing else sent by the client.

    <base>                                      no experiment running
    <base>~<experiment>~p~<version>             A/B, the production arm answered with <version>
    <base>~<experiment>~c~<version>             A/B, the challenger arm answered with <version>
    <base>~<experiment>~i~<production>~<challenger>   interleaved: both versions made the list

`<base>` is the worker's unique id (answer_tokens); no field contains "~" or "." ("." separates an event token's
fields). Which model contributed each game of an interleaved list is kept by the service (`experiment_answers`),
since a list of game ids would not fit the events table's 128-character request_id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Arm = Literal["production", "challenger", "interleave"]
_CODES: dict[str, Arm] = {"p": "production", "c": "challenger", "i": "interleave"}
LETTER: dict[Arm, str] = {arm: code for code, arm in _CODES.items()}  # the arm's letter in ids and tables
_FIELD = re.compile(r"[A-Za-z0-9-]{1,40}")
MAX_LENGTH = 128  # the events table's request_id column


@dataclass(frozen=True)
class Attribution:
    experiment: str
    arm: Arm
    version: str  # the version that answered (interleave: production's)
    challenger_version: str | None = None  # interleave only


def tag(base: str, attribution: Attribution) -> str:
    """The request id of an answer given under `attribution`."""
    parts = [base, attribution.experiment, LETTER[attribution.arm], attribution.version]
    if attribution.arm == "interleave":
        if attribution.challenger_version is None:
            raise ValueError("an interleaved answer names both versions")
        parts.append(attribution.challenger_version)
    if not all(_FIELD.fullmatch(p) for p in parts[1:]) or "~" in base or "." in base:
        raise ValueError(f"cannot tag request id with {attribution}: fields must match {_FIELD.pattern}")
    out = "~".join(parts)
    if len(out) > MAX_LENGTH:
        raise ValueError(f"request id {out!r} is longer than {MAX_LENGTH} characters")
    return out


def parse(request_id: str | None) -> Attribution | None:
    """The attribution a request id carries; None for an id outside any experiment or one not made by `tag`."""
    if not request_id or "~" not in request_id:
        return None
    parts = request_id.split("~")
    if len(parts) not in (4, 5) or not all(_FIELD.fullmatch(p) for p in parts[1:]):
        return None
    arm = _CODES.get(parts[2])
    if arm is None or (arm == "interleave") != (len(parts) == 5):
        return None
    return Attribution(parts[1], arm, parts[3], parts[4] if arm == "interleave" else None)
