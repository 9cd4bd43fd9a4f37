"""recsys.online_evaluation: Wilson intervals, the mSPRT under daily peeking (A/A type-I error, power), attribution
by request id, the 24 h conversion window, team-draft interleaving credit, verdicts and the impressions still needed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
import pytest

from gamerec_assets.recsys.experiment_ids import parse
from gamerec_assets.recsys.online_evaluation import (
    DAY_US,
    METRICS_SCHEMA,
    TOTAL,
    VERDICT_SCHEMA,
    OnlineParams,
    ab_path,
    attribute,
    evaluate,
    interleave_path,
    msprt_log_lr,
    needed_scale,
    wilson,
)
from gamerec_assets.store.event_store import FRAME_SCHEMA
from gamerec_assets.store.experiment_answers import SCHEMA as ANSWERS_SCHEMA

T0 = 1_780_000_000_000_000  # 2026-05-28T19:06:40Z
HOUR = 3_600_000_000
P, C = "v20260101T000000-aaaaaa", "v20260102T000000-bbbbbb"


def answer(rid: str, games: list[int], teams: str, served_us: int = T0, arm: str = "i") -> dict[str, object]:
    exp = rid.split("~")[1]
    return {
        "request_id": rid,
        "experiment": exp,
        "arm": arm,
        "version": P if arm != "c" else C,
        "challenger_version": C if arm == "i" else "",
        "user_id": "u",
        "served_us": served_us,
        "game_ids": games,
        "teams": teams,
    }


def events(*rows: tuple[str | None, int, str, int]) -> pl.DataFrame:
    """(request_id, game_id, type, timestamp_us) rows as an interaction_events frame."""
    return pl.DataFrame(
        [
            {
                "seq": n,
                "event_id": f"e{n}",
                "user_id": "u",
                "game_id": game,
                "type": kind,
                "value": None,
                "timestamp_us": ts,
                "received_us": ts,
                "request_id": rid,
            }
            for n, (rid, game, kind, ts) in enumerate(rows, 1)
        ],
        schema=FRAME_SCHEMA,
    )


def answers(*rows: dict[str, object]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=ANSWERS_SCHEMA)


# -- statistics --------------------------------------------------------------------------------------------------


def test_wilson_known_answers() -> None:
    # Newcombe (1998), Stat. Med. 17:857, table I, method 3 (score interval without continuity correction)
    low, high = wilson(np.array([81, 15, 0, 1]), np.array([263, 148, 20, 29]))
    np.testing.assert_allclose(low, [0.2553, 0.0624, 0.0, 0.0061], atol=5e-5)
    np.testing.assert_allclose(high, [0.3662, 0.1605, 0.1611, 0.1718], atol=5e-5)
    # 8 of 10 at 95 %: (0.4902, 0.9433); at 99 % wider; no trials: no interval
    low, high = wilson(np.array([8, 8, 0]), np.array([10, 10, 0]), alpha=np.array(0.05))
    assert (round(low[0], 4), round(high[0], 4)) == (0.4902, 0.9433)
    low99, high99 = wilson(np.array([8]), np.array([10]), alpha=0.01)
    assert low99[0] < low[0] and high99[0] > high[0]
    assert np.isnan(low[2]) and np.isnan(high[2])


def test_msprt_type_one_error_stays_below_alpha_under_daily_peeking() -> None:
    """A/A: 400 experiments, looked at every day for 30 days. The always-valid p-value stays above alpha in at least
    95 % of them; a fixed-horizon z-test read every day does not (the reason for the mSPRT)."""
    rng = np.random.default_rng(7)
    runs, days, per_day = 400, 30, 2_000
    params = OnlineParams(alpha=0.05)
    n = np.cumsum(np.full((runs, days), per_day, dtype=np.float64), axis=1)
    for rate in (0.02, 0.05, 0.2):
        x_p = np.cumsum(rng.binomial(per_day, rate, (runs, days)), axis=1)
        x_c = np.cumsum(rng.binomial(per_day, rate, (runs, days)), axis=1)
        effect, var, p, taken = ab_path(x_p, n, x_c, n, params)
        assert taken.all() and np.all(np.diff(p, axis=1) <= 0)  # always valid: it never goes back up
        rejected = (p[:, -1] <= params.alpha).mean()
        assert rejected <= params.alpha, (rate, rejected)
        naive = (np.abs(effect) / np.sqrt(var) > 1.96).any(axis=1).mean()
        assert naive > 2 * params.alpha, (rate, naive)  # peeking at a fixed-horizon test: many false alarms

    # interleaving: a fair coin per decisive answer, looked at every 100 answers
    coin = rng.integers(0, 2, (runs, 3_000))
    wins_c, wins_p = np.cumsum(coin, axis=1)[:, 99::100], np.cumsum(1 - coin, axis=1)[:, 99::100]
    _share, _var, p, _taken = interleave_path(wins_p, wins_c, params)
    assert (p[:, -1] <= params.alpha).mean() <= params.alpha


def test_msprt_power_on_a_clear_difference() -> None:
    rng = np.random.default_rng(11)
    runs, days, per_day = 200, 30, 2_000
    params = OnlineParams()
    n = np.cumsum(np.full((runs, days), per_day, dtype=np.float64), axis=1)
    x_p = np.cumsum(rng.binomial(per_day, 0.05, (runs, days)), axis=1)
    x_c = np.cumsum(rng.binomial(per_day, 0.06, (runs, days)), axis=1)  # +1 point of CTR, 20 % relative
    effect, _var, p, _taken = ab_path(x_p, n, x_c, n, params)
    rejected = p[:, -1] <= params.alpha
    assert rejected.mean() >= 0.9 and (effect[rejected, -1] > 0).all()

    coin = rng.random((runs, 3_000)) < 0.55  # the challenger wins 55 % of decisive answers
    wins_c, wins_p = np.cumsum(coin, axis=1)[:, 99::100], np.cumsum(~coin, axis=1)[:, 99::100]
    share, _var, p, _taken = interleave_path(wins_p, wins_c, params)
    assert (p[:, -1] <= params.alpha).mean() >= 0.9 and (share[p[:, -1] <= params.alpha, -1] > 0.5).all()


def test_needed_scale_is_where_the_msprt_crosses_alpha() -> None:
    tau2, alpha = 1e-4, 0.05
    scale = needed_scale(0.004, 1e-5, tau2, alpha)
    assert scale is not None and scale > 1
    assert float(msprt_log_lr(np.array(0.004), np.array(1e-5 / scale), tau2)) == pytest.approx(math.log(1 / alpha))
    assert needed_scale(0.0, 1e-5, tau2, alpha) is None  # no observed effect: no extrapolation
    assert needed_scale(0.5, 1e-6, tau2, alpha) == 1.0  # already there


# -- attribution ------------------------------------------------------------------------------------------------


def test_vectorised_attribution_agrees_with_parse() -> None:
    ids = [
        f"b~exp-1~p~{P}",
        f"b~exp-1~c~{C}",
        f"b~x~i~{P}~{C}",
        "plain",
        "a~b~p",
        "a~b~z~v1",
        "a~b~i~v1",
        "a~b~p~v1~v2",
        "a~b c~p~v1",
        "a~~p~v1",
        "a~" + "e" * 41 + "~p~v1",
    ]
    frame = events(*((rid, 1, "click", T0) for rid in ids)).vstack(events((None, 1, "click", T0)))
    got = {r["request_id"]: r for r in attribute(frame).iter_rows(named=True)}
    for rid in ids:
        parsed = parse(rid)
        if parsed is None:
            assert rid not in got
        else:
            row = got[rid]
            assert (row["experiment"], row["arm"], row["version"]) == (
                parsed.experiment,
                rid.split("~")[2],
                parsed.version,
            )
            assert row["challenger_version"] == parsed.challenger_version


def test_conversions_count_within_24_hours_of_the_answer_only() -> None:
    rid = f"b1~ab~p~{P}"
    frame = events(
        (rid, 1, "play", T0 + 2 * HOUR),  # converts
        (rid, 2, "purchase", T0 + DAY_US - 1),  # converts, just inside
        (rid, 3, "play", T0 + DAY_US + HOUR),  # 25 h later: not counted
        (rid, 4, "play", T0 - 2 * HOUR),  # before the answer (beyond the clock allowance): not counted
        (rid, 5, "click", T0 + 3 * DAY_US),  # a click counts whenever it comes
        (rid, 99, "play", T0 + HOUR),  # a game the answer did not show: ignored
    )
    result = evaluate(frame, answers(answer(rid, [1, 2, 3, 4, 5, 6], "pppppp", arm="p")))
    total = result.metrics.filter(pl.col("day") == TOTAL).row(0, named=True)
    assert (total["impressions"], total["conversions"], total["clicks"]) == (6, 2, 1)
    assert total["conversion_rate"] == pytest.approx(2 / 6) and total["ctr"] == pytest.approx(1 / 6)
    assert total["conversion_low"] < 2 / 6 < total["conversion_high"]
    assert result.verdict("ab")["outside_answer"] == 1  # type: ignore[index]


def test_interleaving_credit_on_a_hand_built_example() -> None:
    """Team-draft credit: a click or a play on a game is a win for the model that drafted it."""
    r1, r2, r3, r4, r5 = (f"r{n}~mix~i~{P}~{C}" for n in range(1, 6))
    rows = answers(
        answer(r1, [10, 11, 12, 13], "pccp"),  # clicks on 11 (c) and 12 (c), a play on 10 (p): challenger 2-1
        answer(r2, [10, 11, 12, 13], "cppc"),  # a click on 11 (p): production
        answer(r3, [20, 21], "pc"),  # a click on each: tie
        answer(r4, [20, 21], "cp"),  # nothing: counts for neither
        answer(r5, [30, 31], "cp", served_us=T0 + DAY_US),  # the next day: a play on 30 (c) and its click (one game)
    )
    frame = events(
        (r1, 11, "click", T0 + 1),
        (r1, 12, "click", T0 + 2),
        (r1, 10, "play", T0 + HOUR),
        (r2, 11, "click", T0 + 1),
        (r3, 20, "click", T0 + 1),
        (r3, 21, "click", T0 + 1),
        (r5, 30, "click", T0 + DAY_US + 1),
        (r5, 30, "play", T0 + DAY_US + 2),
        (f"r6~mix~i~{P}~{C}", 40, "click", T0 + 5),  # no answer row: cannot be credited
    )
    result = evaluate(frame, rows, catalogue_size=100)
    total = result.metrics.filter(pl.col("day") == TOTAL)
    by_team = {r["team"]: r for r in total.iter_rows(named=True)}
    assert set(by_team) == {"production", "challenger"} and set(total["variant"]) == {"interleave"}
    assert (by_team["challenger"]["wins"], by_team["production"]["wins"], by_team["challenger"]["ties"]) == (2, 1, 1)
    assert by_team["challenger"]["preference_share"] == pytest.approx(2 / 3)
    assert by_team["production"]["preference_share"] == pytest.approx(1 / 3)
    assert by_team["challenger"]["model_version"] == C and by_team["production"]["model_version"] == P
    # impressions per team: the games each drafted (7 and 7), clicks on them
    assert (by_team["challenger"]["impressions"], by_team["challenger"]["clicks"]) == (7, 4)
    assert (by_team["production"]["impressions"], by_team["production"]["clicks"]) == (7, 2)
    # coverage: the distinct games each model put in front of players, over the catalogue
    assert by_team["production"]["coverage"] == pytest.approx(len({10, 13, 11, 12, 20, 21, 31}) / 100)
    assert by_team["challenger"]["coverage"] == pytest.approx(len({11, 12, 10, 13, 21, 20, 30}) / 100)
    days = result.metrics.filter((pl.col("day") != TOTAL) & (pl.col("team") == "challenger"))
    assert days["wins"].to_list() == [1, 1]
    verdict = result.verdict("mix")
    assert verdict is not None and verdict["mode"] == "interleave" and verdict["decisive_answers"] == 3
    assert verdict["unattributed_events"] == 1
    assert verdict["verdict"] == "not yet significant"  # 3 decisive answers prove nothing

    # under an interleaving experiment the API splits /games/{id}/similar A/B: those answers get rows of their own,
    # and the verdict stays the interleaved answers'
    similar = f"s1~mix~c~{C}"
    mixed = evaluate(
        frame.vstack(events((similar, 50, "click", T0 + 1))),
        rows.vstack(answers(answer(similar, [50, 51], "cc", arm="c"))),
    )
    challenger_rows = mixed.metrics.filter((pl.col("day") == TOTAL) & (pl.col("variant") == "challenger"))
    assert challenger_rows.select("mode", "impressions", "clicks").row(0) == ("ab", 2, 1)
    assert mixed.verdicts.drop("outside_answer").equals(result.verdicts.drop("outside_answer"))


def _ab_data(n: int, ctr_p: float, ctr_c: float, days: int = 4) -> tuple[pl.DataFrame, pl.DataFrame]:
    """n answers of 5 games per arm and day, the first round(ctr × 5n) games of each day's arm clicked."""
    rows, evs = [], []
    for day in range(days):
        served = T0 + day * DAY_US
        for arm, ctr, version in (("p", ctr_p, P), ("c", ctr_c, C)):
            clicks = round(ctr * 5 * n)
            for a in range(n):
                rid = f"d{day}a{a}~ab~{arm}~{version}"
                rows.append(answer(rid, [1, 2, 3, 4, 5], arm * 5, served, arm=arm))
                evs += [(rid, g, "click", served + 1) for g in range(1, 6) if a * 5 + g - 1 < clicks]
    return events(*evs), answers(*rows)


def test_ab_verdicts_and_the_impressions_still_needed() -> None:
    @dataclass
    class Exp:
        name: str = "ab"
        mode: str = "ab"
        production: str = P
        challenger: str = C

    frame, rows = _ab_data(400, 0.05, 0.08)
    better = evaluate(frame, rows, [Exp()])
    v = better.verdict("ab")
    assert v is not None and v["verdict"] == "challenger better" and v["p_value"] <= 0.05
    assert v["impressions_needed"] is None and v["looks"] == 4 and v["impressions"] == 2 * 4 * 400 * 5
    assert v["challenger_value"] == pytest.approx(0.08) and v["production_value"] == pytest.approx(0.05)
    assert better.looks["p_value"].to_list() == sorted(better.looks["p_value"].to_list(), reverse=True)

    worse = evaluate(*_ab_data(400, 0.08, 0.05), [Exp()]).verdict("ab")
    assert worse is not None and worse["verdict"] == "challenger worse"

    close = evaluate(*_ab_data(100, 0.05, 0.056, days=2), [Exp()]).verdict("ab")
    assert close is not None and close["verdict"] == "not yet significant"
    needed, seen = close["impressions_needed"], close["impressions"]
    assert isinstance(needed, int) and isinstance(seen, int) and needed > 0
    # the same rates k times over (exact counts): significant from the extrapolated size on, not before
    k = math.ceil((seen + needed) / seen)
    assert evaluate(*_ab_data(100 * k, 0.05, 0.056, days=2)).verdict("ab")["verdict"] == "challenger better"  # type: ignore[index]
    assert evaluate(*_ab_data(100 * (k - 1), 0.05, 0.056, days=2)).verdict("ab")["verdict"] == "not yet significant"  # type: ignore[index]


def test_ab_events_without_their_answer_row_are_attributed_by_the_id() -> None:
    rp, rc = f"x1~ab~p~{P}", f"x2~ab~c~{C}"
    frame = events(
        (rp, 1, "impression", T0),
        (rp, 2, "impression", T0),
        (rp, 2, "click", T0 + 5),
        (rc, 3, "impression", T0),
        (rc, 3, "play", T0 + HOUR),
        (None, 3, "play", T0),  # outside any experiment
        ("plain-id", 3, "click", T0),
    )
    result = evaluate(frame, answers())
    total = {r["variant"]: r for r in result.metrics.filter(pl.col("day") == TOTAL).iter_rows(named=True)}
    assert total["production"]["model_version"] == P and total["challenger"]["model_version"] == C
    assert (total["production"]["impressions"], total["production"]["clicks"]) == (2, 1)
    assert (total["challenger"]["impressions"], total["challenger"]["conversions"]) == (1, 1)
    verdict = result.verdict("ab")
    assert verdict is not None and verdict["answers_without_row"] == 2 and verdict["production"] == P


def test_no_experiment_no_rows_and_a_recorded_experiment_without_data() -> None:
    empty = evaluate(events(), answers())
    assert empty.empty and empty.metrics.schema == pl.Schema(METRICS_SCHEMA)
    assert empty.verdicts.schema == pl.Schema(VERDICT_SCHEMA)

    @dataclass
    class Exp:
        name: str = "fresh"
        mode: str = "interleave"
        production: str = P
        challenger: str = C

    waiting = evaluate(events(), answers(), [Exp()])
    v = waiting.verdict("fresh")
    assert v is not None and v["verdict"] == "not yet significant" and v["impressions"] == 0
    assert v["impressions_needed"] is None and waiting.metrics.height == 0


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="alpha"):
        OnlineParams(alpha=1.5)
    with pytest.raises(ValueError, match="tau2"):
        OnlineParams(tau2_ab=0)
