"""The one answer pipeline (`gamerec_api.answers`): the controllers go through it and hold no scoring (checked on
their source), and its stages do what they say, called directly without HTTP on the seeded home's model."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import msgspec
import numpy as np
import pytest

from gamerec_api import answers, ingest
from gamerec_api.answers import encode, explain, pipeline, policy, score, variant
from gamerec_api.answers.batch import batch_rows, user_value
from gamerec_api.answers.player import Player, merge, resolve, scored_history, with_liked
from gamerec_api.holder import ModelHolder
from gamerec_api.overlay import UserOverlay
from gamerec_api.schemas import EventIn, GameCard, PredictRequest, PredictResponse
from gamerec_api.state import ServingState, load_state
from gamerec_assets.recsys import model_artifact
from gamerec_assets.recsys.served_model import Recommended
from gamerec_assets.store.event_store import AppendResult
from tests.gamerec_api.support import Home

API = Path(answers.__file__).resolve().parents[1]
CONTROLLERS = API / "controllers"
# (module, controller class, handler): every endpoint that answers with recommendations, neighbours or a history
ANSWER_HANDLERS = [
    ("predict.py", "PredictController", "predict"),
    ("games.py", "GamesController", "similar"),
    ("users.py", "UsersController", "history"),
    ("users.py", "UsersController", "recommendations"),
]
# attribute names that mean scoring, the model or the realtime overlay: the pipeline's business, not a controller's
SCORING = {
    "model",
    "recommend",
    "recommend_history",
    "neighbours",
    "similar_items",
    "item_pos",
    "item_index",
    "history_items",
    "overlay",
    "users",
    "added",
    "excluded",
    "fragments",
    "remember",
    "predict_json",
}
MAX_HANDLER_LINES = 25
MAX_FUNCTION_LINES = 80


def _handler(module: str, cls: str, name: str) -> ast.AsyncFunctionDef:
    tree = ast.parse((CONTROLLERS / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.AsyncFunctionDef) and item.name == name:
                    return item
    raise AssertionError(f"{module}: no {cls}.{name}")


def _answer_calls(fn: ast.AST) -> list[str]:
    return [
        n.func.attr
        for n in ast.walk(fn)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "answers"
    ]


@pytest.mark.parametrize(("module", "cls", "name"), ANSWER_HANDLERS)
def test_each_answer_controller_calls_the_pipeline_once_in_a_short_handler(module: str, cls: str, name: str) -> None:
    fn = _handler(module, cls, name)
    calls = _answer_calls(fn)
    assert len(calls) == 1, f"{cls}.{name} should call one service function of gamerec_api.answers, calls {calls}"
    service = getattr(answers, calls[0])
    assert inspect.getmodule(service) is pipeline, f"answers.{calls[0]} is not a pipeline service function"
    lines = fn.end_lineno - fn.lineno + 1  # type: ignore[operator]
    assert lines <= MAX_HANDLER_LINES, f"{cls}.{name} is {lines} lines long"


@pytest.mark.parametrize("path", sorted(CONTROLLERS.glob("*.py")), ids=lambda p: p.name)
def test_controllers_hold_no_scoring_and_no_overlay_merging(path: Path) -> None:
    tree = ast.parse(path.read_text())
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and not _is_answers(n)}
    assert not used & SCORING, f"{path.name} reaches into scoring or the overlay: {sorted(used & SCORING)}"
    imported = {
        (n.module or "") + "." + a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names
    }
    # the event vocabulary (recsys.feedback) is fine; models, kernels, the overlay and array code are not
    banned = [
        m
        for m in imported
        if m.startswith(("gamerec_assets.recsys", "gamerec_api.overlay", "numpy"))
        and not m.startswith("gamerec_assets.recsys.feedback.")
    ]
    assert not banned, f"{path.name} imports scoring or overlay code: {banned}"
    assert "to_thread" not in path.read_text(), f"{path.name} does work off the loop itself: a service's job"


def _is_answers(node: ast.Attribute) -> bool:
    return isinstance(node.value, ast.Name) and node.value.id in ("answers", "ingest")


def test_no_function_in_the_api_is_longer_than_80_lines() -> None:
    long = [
        f"{path.relative_to(API.parent)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"  # type: ignore[operator]
        for path in sorted(API.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES  # type: ignore[operator]
    ]
    assert not long, long


def test_the_api_card_is_its_own_type_converted_once_per_version(state: ServingState) -> None:
    assert GameCard is not model_artifact.GameCard
    stored = state.model.artifact.serving.cards  # type: ignore[union-attr]
    assert all(type(c) is GameCard for c in state.cards)
    # the stored card's filter-only attributes (tags, platforms: `item_filter`) are not part of the API's card
    shown = [f.name for f in msgspec.structs.fields(GameCard)]
    assert [msgspec.structs.asdict(c) for c in state.cards] == [
        {name: getattr(c, name) for name in shown} for c in stored
    ]
    assert any(c.tags for c in stored) and any(c.platforms for c in stored)
    assert state.search("", 3) == [state.cards[i] for _, i in state.search_index[:3]]  # the same objects served


# -- the stages, called directly -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def state(home: Home) -> ServingState:
    return load_state(home.registry(), cache_size=100)


def _known_user(state: ServingState, min_games: int = 2) -> str:
    for row, user in enumerate(state.user_ids(range(state.n_users))):
        if state.history_items(row).size >= min_games:
            return user
    raise AssertionError("the seeded home has no user with enough history")


def test_resolve_finds_the_history_row_and_the_overlay_entry(state: ServingState) -> None:
    user = _known_user(state)
    extra = UserOverlay(added=(), excluded=frozenset(), gen=7)
    player = resolve(state, user, {user.encode(): extra})
    assert (player.text, player.key, player.extra) == (user, user.encode(), extra)
    assert state.history_items(player.row).tolist() == state.history(user.encode()) != []
    assert resolve(state, int(user), None).row == player.row  # an integer id is its decimal string
    guest = resolve(state, "nobody-has-this-id", {user.encode(): extra})
    assert (guest.row, guest.extra) == (-1, None)
    with pytest.raises(answers.BadUserId) as bad:
        resolve(state, "\ud800", None)
    assert bad.value.status_code == 400 and "Unicode" in bad.value.detail


def test_merge_applies_realtime_plays_and_dislikes_once_for_scoring_and_listing(state: ServingState) -> None:
    user = _known_user(state)
    trained = state.history(user.encode())
    outside = [i for i in range(state.model.n_items) if i not in set(trained)][:2]
    game = [c.game_id for c in state.cards]
    unknown_game = max(game) + 1
    extra = UserOverlay(
        added=(game[outside[0]], unknown_game, game[trained[-1]], game[outside[1]]),
        excluded=frozenset({game[trained[0]]}),
        gen=1,
    )
    merged = merge(state, np.asarray(trained, np.int64), extra)
    played, realtime = merged.listed()
    assert played == trained[1:] + outside  # trained − disliked, then the new plays in event order
    assert realtime == [game[outside[0]], game[outside[1]]]  # the unknown game has no card: left out
    assert merged.excluded == [trained[0]]
    assert merged.history().tolist() == sorted(set(played).difference(merged.excluded))  # one merge, two views
    history, excluded = scored_history(state, Player(user, user.encode(), state.user_row(user.encode()), extra))
    assert history.tolist() == sorted(trained[1:] + outside) and history.dtype == np.int64
    assert excluded == [trained[0]]


def test_with_liked_joins_the_history_and_names_unknown_games(state: ServingState) -> None:
    game = [c.game_id for c in state.cards]
    assert with_liked(state, np.asarray([5, 1], np.int64), [game[3], game[1]]) == [1, 3, 5]
    with pytest.raises(answers.UnknownGames) as bad:
        with_liked(state, np.asarray([], np.int64), [game[0], 10**15, 10**15 + 1, 10**15])
    assert bad.value.status_code == 400
    assert "[1000000000000000, 1000000000000001]" in bad.value.detail and state.version in bad.value.detail


def test_policy_drops_disliked_items_and_keeps_k() -> None:
    rec = Recommended([4, 9, 2, 7, 3], [0.9, 0.8, 0.5, 0.0, 0.0], 3, [[1], [1, 5], [5], [], []])
    assert policy.ask(3, [9, 7]) == 5
    kept = policy.apply(rec, [9, 7], 3)
    assert (kept.idx, kept.scores, kept.n_cf, kept.because) == ([4, 2, 3], [0.9, 0.5, 0.0], 2, [[1], [5], []])
    assert policy.apply(rec, [], 5) is rec
    assert policy.source_of(True, True, 3) == "item_cf"
    assert policy.source_of(False, True, 3) == "basket"
    assert policy.source_of(True, False, 0) == policy.source_of(False, False, 0) == "popular"


def test_explain_cites_each_history_game_once_in_order_of_first_use() -> None:
    rec = Recommended([4, 9, 2, 7], [0.9, 0.8, 0.5, 0.0], 3, [[1, 6], [6, 5], [1], [8]])
    assert explain.reasons(rec) == [1, 6, 5]  # popularity fill (item 7) explains nothing


def test_score_and_encode_give_a_strict_predict_response(state: ServingState) -> None:
    user = _known_user(state)
    history = state.history_items(state.user_row(user.encode()))
    rec = score.recommend(state, history, 10)
    assert not set(rec.idx) & set(history.tolist()) and len(rec.idx) == 10
    body = encode.with_user(user, encode.predict_rest(state, rec, "item_cf", explain.reasons(rec)))
    answer = msgspec.json.decode(body, type=PredictResponse, strict=True)
    assert [i.game_id for i in answer.items] == [state.cards[i].game_id for i in rec.idx]
    assert [i.source for i in answer.items] == ["item_cf"] * rec.n_cf + ["popular"] * (10 - rec.n_cf)
    assert [g.game_id for g in answer.because_games] == [state.cards[j].game_id for j in explain.reasons(rec)]
    items, scores = score.neighbours(state, rec.idx[0], 5)
    assert len(items) == len(scores) <= 5 and scores == sorted(scores, reverse=True)


def test_predict_json_never_returns_a_disliked_game_and_caches_per_overlay_generation(state: ServingState) -> None:
    user = _known_user(state)
    request = PredictRequest(user_id=user, k=10)
    first, source = answers.predict_json(state, request, None)
    top = msgspec.json.decode(first, type=PredictResponse).items[0].game_id
    overlay = {user.encode(): UserOverlay(added=(), excluded=frozenset({top}), gen=41)}
    body, _ = answers.predict_json(state, request, overlay)
    ids = [i.game_id for i in msgspec.json.decode(body, type=PredictResponse).items]
    assert top not in ids and len(ids) == 10
    row = state.user_row(user.encode())
    assert (row, 10, 41) in state.answers and (row, 10) in state.answers
    assert answers.predict_json(state, request, overlay)[0] == body  # served from the cache, same bytes
    assert answers.predict_json(state, request, None) == (first, source)


def test_variant_stage_serves_the_production_state_and_503_before_one(home: Home, state: ServingState) -> None:
    holder = ModelHolder(home.settings, reload_interval=0, events_poll=0)
    with pytest.raises(answers.ModelLoading) as loading:
        variant.served(holder)
    assert loading.value.status_code == 503
    holder.state = state
    assert variant.served(holder) is state
    chosen = variant.route(state, None, b"7")  # no experiment: production answers, the request id untagged
    assert chosen.state is state and chosen.variant == "production" and chosen.attribution is None


def test_batch_rows_adapt_to_the_tables_user_id_type(home: Home, state: ServingState) -> None:
    open_tables = ModelHolder(home.settings, reload_interval=0, events_poll=0).tables  # what the service passes
    tables = open_tables()
    user = _known_user(state, min_games=1)
    version, rows = batch_rows(open_tables, user)
    assert version == home.seeded.version and rows is not None
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    numeric = user_value(tables, "abc") is None
    assert user_value(tables, user) == (int(user) if numeric else user)
    assert batch_rows(open_tables, "abc") == (None, None)


def test_ingest_results_count_each_event_once(state: ServingState) -> None:
    game = state.cards[0].game_id
    sent = [
        EventIn(user_id="u", game_id=game, type="play", event_id="a"),
        EventIn(user_id="u", game_id=10**15, type="like", event_id="b"),
        EventIn(user_id="u", game_id=game, type="play", event_id="a"),
        EventIn(user_id="u", game_id=0, type="click", event_id="x" * 200),
    ]
    checked = [ingest._checked(e, 1_700_000_000_000_000) for e in sent]
    assert isinstance(checked[3], str)
    results, counts, unknown = ingest._results(state, sent, checked, AppendResult([True, True, False], 9))
    assert [(r.result, r.event_id, r.unknown_game) for r in results] == [
        ("accepted", "a", False),
        ("accepted", "b", True),
        ("duplicate", "a", False),
        ("rejected", None, None),
    ]
    assert counts == {
        ("play", "accepted"): 1,
        ("like", "accepted"): 1,
        ("play", "duplicate"): 1,
        ("click", "rejected"): 1,
    }
    assert unknown == {"like": 1}
    results, _, unknown = ingest._results(None, sent[:1], checked[:1], AppendResult([True], 1))
    assert results[0].unknown_game is None and not unknown  # no model yet: unknowable, not counted
