"""Team-draft interleaving (Radlinski, Kurup & Joachims, CIKM 2008; Chapelle, Joachims, Radlinski & Yue, TOIS 2012):
one list made from two rankers' lists, each game credited to the ranker that drafted it.

At each step the team with fewer picks drafts next (a coin flip when both have as many), taking its highest-ranked
game not already in the list. A click or play on a game is a win for the team that drafted it; an answer's clicks
decide it for the team with more (equal: a tie). Every user sees one list, so the two rankers are compared on the
same user at the same moment: interleaving needs one to two orders of magnitude fewer users than an A/B test to find
the same preference (Chapelle et al.; Netflix reports the same).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

PRODUCTION, CHALLENGER = "p", "c"  # the team letters (experiment_answers.teams)


def team_draft(production: Sequence[int], challenger: Sequence[int], k: int, seed: int) -> tuple[list[int], str]:
    """(up to k game ids, their teams as one letter each: "p" or "c"). `seed`: the coin flips (the request's own, so
    the same request gives the same list). When one list runs out the other fills the rest."""
    rng = random.Random(seed)
    out: list[int] = []
    teams: list[str] = []
    seen: set[int] = set()
    lists = {PRODUCTION: production, CHALLENGER: challenger}
    at = {PRODUCTION: 0, CHALLENGER: 0}
    picks = {PRODUCTION: 0, CHALLENGER: 0}

    def next_of(team: str) -> int | None:
        ranked, i = lists[team], at[team]
        while i < len(ranked) and ranked[i] in seen:
            i += 1
        at[team] = i
        return ranked[i] if i < len(ranked) else None

    while len(out) < k:
        first = PRODUCTION if picks[PRODUCTION] < picks[CHALLENGER] else CHALLENGER
        if picks[PRODUCTION] == picks[CHALLENGER]:
            first = PRODUCTION if rng.random() < 0.5 else CHALLENGER
        team = first
        game = next_of(team)
        if game is None:
            team = CHALLENGER if first == PRODUCTION else PRODUCTION
            game = next_of(team)
            if game is None:
                break
        out.append(game)
        teams.append(team)
        seen.add(game)
        picks[team] += 1
    return out, "".join(teams)


def credit(teams: str, clicked: np.ndarray) -> tuple[int, int]:
    """(production's, challenger's) credited clicks of one answer; `clicked`: a bool per position."""
    letters = np.frombuffer(teams.encode(), np.uint8)
    hit = np.asarray(clicked, bool)[: letters.size]
    letters = letters[: hit.size]
    return int((hit & (letters == ord(PRODUCTION))).sum()), int((hit & (letters == ord(CHALLENGER))).sum())


def outcome(teams: str, clicked: np.ndarray) -> str:
    """ "p" or "c" (the team with more credited clicks wins the answer), "tie", or "" (no click: no outcome)."""
    p, c = credit(teams, clicked)
    if p == c == 0:
        return ""
    return PRODUCTION if p > c else CHALLENGER if c > p else "tie"
