from __future__ import annotations

import numpy as np

from gamerec_assets.recsys.interleaving import credit, outcome, team_draft


def test_team_draft_alternates_and_credits_each_game_to_its_drafter() -> None:
    a, b = [1, 2, 3, 4, 5], [3, 6, 1, 7, 8]
    for seed in range(50):
        merged, teams = team_draft(a, b, 6, seed)
        assert len(merged) == len(set(merged)) == 6
        assert abs(teams.count("p") - teams.count("c")) <= 1
        for game, team in zip(merged, teams, strict=True):
            assert game in (a if team == "p" else b)
        # each team's picks appear in its own ranking's order
        for team, ranked in (("p", a), ("c", b)):
            picked = [g for g, t in zip(merged, teams, strict=True) if t == team]
            assert picked == sorted(picked, key=ranked.index)


def test_team_draft_is_fair_on_the_first_pick_and_deterministic_per_seed() -> None:
    firsts = [team_draft([1, 2], [3, 4], 2, seed)[1][0] for seed in range(400)]
    assert 160 < firsts.count("p") < 240
    assert team_draft([1, 2, 3], [4, 5, 6], 3, 9) == team_draft([1, 2, 3], [4, 5, 6], 3, 9)


def test_identical_lists_keep_their_order_and_a_short_list_is_filled_by_the_other() -> None:
    merged, _ = team_draft([5, 6, 7, 8], [5, 6, 7, 8], 4, 3)
    assert merged == [5, 6, 7, 8]
    merged, teams = team_draft([1], [2, 3, 4], 4, 0)
    assert sorted(merged) == [1, 2, 3, 4] and teams.count("c") == 3


def test_clicks_credit_the_drafting_team() -> None:
    assert credit("pcpc", np.array([True, False, False, True])) == (1, 1)
    assert outcome("pcpc", np.array([True, False, False, True])) == "tie"
    assert outcome("pcpc", np.array([False, True, False, False])) == "c"
    assert outcome("pcpc", np.array([True, False, True, False])) == "p"
    assert outcome("pcpc", np.zeros(4, bool)) == ""
