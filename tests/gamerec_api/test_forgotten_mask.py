"""The parts of forgetting a player inside a worker: the overlay drops the user and ignores their events up to the
forget (a late commit too), the served state hides them from the index, the answer cache and the listing (pages
stay whole), and a version trained after the forget is not masked."""

from __future__ import annotations

from dataclasses import replace

from gamerec_api.forgotten_mask import ForgottenMask
from gamerec_api.state import build_state
from gamerec_assets.recsys.served_model import ServingModel
from tests.gamerec_api.support import Home
from tests.gamerec_api.test_overlay import aligned, frame


def test_the_overlay_drops_a_forgotten_user_and_ignores_their_events_up_to_the_forget() -> None:
    overlay = aligned(0)
    overlay.apply(frame((1, "gone", 10, "play"), (2, "gone", 11, "dislike"), (3, "kept", 10, "play")))
    assert b"gone" in overlay.users and overlay.entries() == 3
    overlay.forget("gone", until_seq=5)
    assert b"gone" not in overlay.users and b"kept" in overlay.users and overlay.entries() == 1
    # seq 4 committed late (before the forget), seq 6 is the player coming back
    overlay.apply(frame((4, "gone", 12, "play"), (6, "gone", 13, "play"), (7, "gone ", 14, "play")))
    assert overlay.users[b"gone"].added == (13,) and overlay.users[b"gone "].added == (14,)


def test_a_masked_user_is_unknown_to_the_state_and_unlisted(home: Home) -> None:
    state = build_state(home.model(), cache_size=10)
    keys = [k for k in state.users.user_keys(0, state.n_users)]
    victim, other = keys[3], keys[4]
    row = state.user_row(victim)
    state.remember((row, 10), (b"x", "item_cf", b""))
    state.remember((state.user_row(other), 10), (b"y", "item_cf", b""))
    mask = ForgottenMask()
    mask.users = {victim: 0, b"never-known": 0}
    assert mask.mask(state) == 1 and mask.mask(state) == 0  # once; an unknown id changes nothing
    assert state.user_row(victim) == -1 and state.history(victim) == []
    assert list(state.answers) == [(state.user_row(other), 10)]

    everyone = state.user_rows_with_prefix("")
    total, page = state.listed_rows(everyone, 0, 1000)
    assert total == state.n_users - 1 and row not in page and len(page) == state.n_users - 1
    # every page is whole and the pages together list everyone else once, in order
    pages = [state.listed_rows(everyone, offset, 2)[1] for offset in range(0, state.n_users, 2)]
    assert [r for p in pages for r in p] == [r for r in everyone if r != row]
    assert all(len(p) == 2 for p in pages[:-1])
    assert state.listed([page[0]])[0][0] == keys[0].decode()


def test_a_version_trained_after_the_forget_is_not_masked(home: Home) -> None:
    model = home.model()
    manifest = {**model.artifact.manifest, "data": {"events": {"until_seq": 50}}}
    later = build_state(ServingModel(replace(model.artifact, manifest=manifest)))
    victim = next(iter(later.users.user_keys(0, 1)))
    mask = ForgottenMask()
    mask.users = {victim: 49}  # forgotten at seq 49: this version was trained on events after it
    assert mask.mask(later) == 0 and later.user_row(victim) == 0
    mask.users = {victim: 50}
    assert mask.mask(later) == 1 and later.user_row(victim) == -1


def test_unwritten_experiment_answers_of_a_forgotten_player_are_dropped() -> None:
    from gamerec_api.answer_log import AnswerLog

    log = AnswerLog(lambda: None)  # type: ignore[arg-type,return-value]  # never flushed here
    for i, user in enumerate(["gone", "kept", "gone", "gone "]):
        log.add(f"r{i}", "x", "p", "v1", "", user, b"1_2")
    assert log.forget({"gone"}) == 2 and log.pending == 2
    assert [p[5] for p in log._pending] == ["kept", "gone "]
