"""Request ids that carry their experiment: tag and parse round-trip; anything else parses to None."""

from __future__ import annotations

import pytest

from gamerec_assets.recsys.experiment_ids import MAX_LENGTH, Attribution, parse, tag

V1, V2 = "v20261203T225700-abc123", "v20261204T010203-def456"


@pytest.mark.parametrize(
    "attribution",
    [
        Attribution("canary-1", "production", V1),
        Attribution("canary-1", "challenger", V2),
        Attribution("x", "interleave", V1, V2),
    ],
)
def test_round_trip(attribution: Attribution) -> None:
    rid = tag("3fa9c1d20b7e1f", attribution)
    assert "." not in rid and len(rid) <= MAX_LENGTH
    assert parse(rid) == attribution


@pytest.mark.parametrize(
    "rid", [None, "", "3fa9c1d20b7e1f", "a~b~p", "a~b~z~v1", "a~b~i~v1", "a~b~p~v1~v2", "a~b c~p~v1", "a~~p~v1"]
)
def test_ids_outside_an_experiment_parse_to_none(rid: str | None) -> None:
    assert parse(rid) is None


def test_refuses_what_it_could_not_parse_back() -> None:
    with pytest.raises(ValueError, match="both versions"):
        tag("b", Attribution("e", "interleave", V1))
    with pytest.raises(ValueError, match="fields"):
        tag("b", Attribution("bad~name", "production", V1))
    with pytest.raises(ValueError, match="longer"):
        tag("b" * 100, Attribution("e" * 24, "interleave", V1, V2))
