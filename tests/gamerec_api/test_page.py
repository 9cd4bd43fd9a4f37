"""The web page in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright) against uvicorn.

The browser is offline except for the app (every other host is aborted), so the RAWG covers fail to load and the
placeholder must show. Without chromium the test skips locally and fails when CI=true.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gamerec_api.app import create_app
from gamerec_assets import backends
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store.event_store import EventStore
from tests.gamerec_api.conftest import LONG_ID
from tests.gamerec_api.support import Home, serve

pytestmark = pytest.mark.integration  # uvicorn and headless Chromium

CHROMIUM = os.environ.get("GAMEREC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NOT_THE_APP = re.compile(r"^https?://(?!127\.0\.0\.1[:/])")


def _unavailable(why: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why} (CI=true: the browser test must run; `make browser` installs chromium)")
    pytest.skip(why)


SERVED: dict[str, StorageSettings] = {}  # base URL -> the storage its server writes events to


@pytest.fixture(scope="module")
def base_url(home: Home, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """On a private copy of the home: the page posts events, which must not reach other tests' users."""
    path = tmp_path_factory.mktemp("page_home") / "home"
    shutil.copytree(home.path, path)
    settings = StorageSettings.from_env({"GAMEREC_HOME": str(path)})
    with serve(create_app(settings, reload_interval=0, env={})) as base:
        SERVED[base] = settings
        yield base


@pytest.fixture(scope="module")
def file_base_url(file_home: Home) -> Iterator[str]:
    """The page over own data: a catalogue file and an interaction file (read-only: nothing is posted)."""
    with serve(create_app(file_home.settings, reload_interval=0, env={})) as base:
        yield base


def _events_post(response) -> bool:  # type: ignore[no-untyped-def]
    return response.url.endswith("/events") and response.request.method == "POST"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        _unavailable(f"chromium not found at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"playwright is not installed: {exc}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def new_page(browser, base_url: str, **context_args):  # type: ignore[no-untyped-def]
    context = browser.new_context(**context_args)
    page = context.new_page()
    page.route(NOT_THE_APP, lambda route: route.abort())
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(base_url + "/")
    return page, errors


def test_recommend_for_a_user_then_similar_games(browser, base_url: str, home: Home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page, errors = new_page(browser, base_url, viewport={"width": 1280, "height": 900})
    # locator waits, not wait_for_function: a string predicate that needs polling is an eval, which the CSP blocks
    page.locator("#user option").nth(1).wait_for(state="attached")
    assert page.locator("[data-testid=players-note]").inner_text() == (
        "Players: simulated (the default demo): their play logs were generated from the catalogue, not recorded "
        f"from real people (model {home.seeded.version})."
    )
    assert page.locator("[data-testid=credit]").inner_text() == "Data from RAWG (https://rawg.io)."
    page.select_option("#user", "7")
    played = page.locator("[data-testid=played] [data-testid=card]")
    played.first.wait_for()
    played_names = set(played.locator("h3").all_inner_texts())
    assert played_names and "player 7" in page.locator("#played-title").inner_text()
    page.click("[data-testid=recommend]")
    cards = page.locator("[data-testid=recs] [data-testid=card]")
    cards.first.wait_for()
    assert cards.count() == 12
    assert page.locator("[data-testid=source]").inner_text() == "from your games"
    first = cards.first
    assert first.locator("h3").inner_text()
    assert first.locator(".meta").inner_text()  # genres · rating
    reason = page.locator("[data-testid=recs] .reason").first.inner_text()
    assert reason.startswith("Because you played")
    assert any(name in reason for name in played_names), (reason, played_names)  # the reasons are the player's games
    assert not played_names & set(cards.locator("h3").all_inner_texts())
    # covers are offline: every <img> removes itself on error and the gradient + initials placeholder remains
    page.wait_for_function("document.querySelectorAll('#recs .cover img').length === 0")
    assert first.locator(".cover .initials").inner_text().strip()
    page.screenshot(path=str(tmp_path / "recommendations.png"), full_page=True)

    name = first.locator("h3").inner_text()
    clicked_id = int(first.get_attribute("data-game-id") or 0)
    with page.expect_response(_events_post) as click_event:  # a click on a recommendation is an event too
        first.locator(".open").click()
    assert click_event.value.status == 202
    event = click_event.value.request.post_data_json["events"][0]
    assert (event["type"], event["user_id"], event["game_id"]) == ("click", "7", clicked_id)
    similar = page.locator("[data-testid=similar] [data-testid=card]")
    similar.first.wait_for()
    assert similar.count() >= 1
    assert page.locator("#similar-name").inner_text() == name
    assert "similar" in page.locator("[data-testid=similar] .reason").first.inner_text()
    assert "Data from RAWG (https://rawg.io)" in page.locator("footer").inner_text()
    page.screenshot(path=str(tmp_path / "similar.png"), full_page=True)
    assert (tmp_path / "similar.png").stat().st_size > 0
    assert errors == []


def test_played_it_posts_a_play_event_and_refreshes(browser, base_url: str) -> None:  # type: ignore[no-untyped-def]
    """The feedback loop from the page: "Played it" posts a `play` event (accepted, stored), then the page asks
    for new recommendations (whether they change is the realtime overlay's test)."""
    page, errors = new_page(browser, base_url, viewport={"width": 1280, "height": 900})
    page.locator("#user option").nth(1).wait_for(state="attached")
    page.select_option("#user", "7")
    page.click("[data-testid=recommend]")
    card = page.locator("[data-testid=recs] [data-testid=card]").first
    card.wait_for()
    game_id = int(card.get_attribute("data-game-id") or 0)
    with page.expect_response(_events_post) as posted:
        card.locator("[data-testid=played-it]").click()
    assert posted.value.status == 202
    answer = posted.value.json()
    assert answer["accepted"] == 1 and answer["results"][0]["result"] == "accepted", answer
    event = posted.value.request.post_data_json["events"][0]
    assert (event["type"], event["user_id"], event["game_id"]) == ("play", "7", game_id)
    assert "player 7 played" in page.locator("[data-testid=status]").inner_text()
    with page.expect_response(lambda r: r.url.endswith("/predict"), timeout=5000) as refreshed:
        pass  # the page asks again ~1.5 s later
    assert refreshed.value.status == 200
    stored = EventStore(backends.table_store(SERVED[base_url])).read()
    row = stored.filter(stored["event_id"] == answer["results"][0]["event_id"])
    assert row.select("user_id", "game_id", "type").rows() == [("7", game_id, "play")]
    assert errors == []


def test_search_tick_liked_games_on_a_phone(browser, base_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page, errors = new_page(
        browser, base_url, viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    page.fill("[data-testid=search]", "witcher")
    result = page.locator("[data-testid=search-results] input[type=checkbox]")
    result.first.wait_for()
    liked_name = page.locator("[data-testid=search-results] label").first.inner_text()
    result.first.check()
    assert liked_name in page.locator("[data-testid=liked]").inner_text()
    page.click("[data-testid=recommend]")
    cards = page.locator("[data-testid=recs] [data-testid=card]")
    cards.first.wait_for()
    assert page.locator("[data-testid=source]").inner_text() in ("from the games you like", "popular")
    names = cards.locator("h3").all_inner_texts()
    assert len(names) == 12 and liked_name not in names
    # nothing wider than the phone's screen: no sideways scrolling
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    box = cards.first.bounding_box()
    assert box is not None and box["width"] <= 375
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    assert errors == []


def test_find_any_player_by_id_prefix(browser, base_url: str, home: Home) -> None:  # type: ignore[no-untyped-def]
    """Players past the first 200 of the list are found through the API's prefix search and can be chosen."""
    page, errors = new_page(browser, base_url, viewport={"width": 1280, "height": 900})
    page.locator("#user option").nth(1).wait_for(state="attached")
    users = sorted({str(u) for u in home.seeded.logs["user_id"].to_list()})
    target = users[-1]
    page.fill("[data-testid=player-search]", target)
    result = page.locator("[data-testid=player-result]", has_text=f"Player {target} ")
    result.first.wait_for()
    result.first.click()
    assert page.locator("#user").input_value() == target
    page.locator("[data-testid=played] [data-testid=card]").first.wait_for()
    page.click("[data-testid=batch]")
    page.locator("[data-testid=recs] [data-testid=card]").first.wait_for()
    assert page.locator("[data-testid=source]").inner_text() in ("precomputed", "computed now")
    assert errors == []


# the element's text ends inside the element's own box (a long word that does not wrap runs past it)
INSIDE = """(e) => { const r = document.createRange(); r.selectNodeContents(e);
  return r.getBoundingClientRect().right <= e.getBoundingClientRect().right + 1 && e.scrollWidth <= e.clientWidth; }"""


def test_own_data_names_its_sources_and_shows_long_ids_whole(
    browser, file_base_url: str, file_home: Home, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Over a catalogue file and an interaction file the page says exactly where its players and games come from
    (no RAWG credit: the catalogue is the site's own), and a 128-character player id is never cut off: the list
    shortens it in the middle with the whole id as tooltip, the search result and the heading wrap it whole."""
    page, errors = new_page(browser, file_base_url, viewport={"width": 1280, "height": 900})
    option = page.locator(f'#user option[title="{LONG_ID}"]')
    option.wait_for(state="attached")
    version = file_home.seeded.version
    assert (
        page.locator("[data-testid=players-note]").inner_text()
        == f"Players: from file:interactions.csv (model {version})."
    )
    assert page.locator("[data-testid=credit]").inner_text() == "Catalogue: file:games.csv."
    assert "RAWG" not in page.locator("footer").inner_text()
    logs = file_home.seeded.logs
    n = logs.filter(logs["user_id"] == LONG_ID).height
    games = f"{n} game" if n == 1 else f"{n} games"
    assert option.inner_text() == f"Player {LONG_ID[:16]}…{LONG_ID[-10:]} ({games})"
    assert option.get_attribute("value") == LONG_ID

    page.fill("[data-testid=player-search]", "player0")
    result = page.locator("[data-testid=player-result]")
    result.first.wait_for()
    assert result.count() == 1 and result.first.inner_text() == f"Player {LONG_ID} ({games})"
    assert result.first.get_attribute("title") == LONG_ID
    assert result.first.evaluate(INSIDE)  # wrapped, not cut off
    result.first.click()
    assert page.locator("#user").input_value() == LONG_ID and page.locator("#user").get_attribute("title") == LONG_ID
    page.locator("[data-testid=played] [data-testid=card]").first.wait_for()
    assert page.locator("#played-who").inner_text() == f"player {LONG_ID}"
    assert page.locator("#played-title").evaluate(INSIDE)
    page.screenshot(path=str(tmp_path / "long_id.png"), full_page=True)
    # the select keeps to its column (the long option does not widen the controls) and nothing scrolls sideways
    select, controls = page.locator("#user").bounding_box(), page.locator(".controls").bounding_box()
    assert select is not None and controls is not None
    assert select["x"] + select["width"] <= controls["x"] + controls["width"] / 3 + 1
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert errors == []


def test_the_page_says_which_models_answered_during_an_experiment(browser, fresh_home: Home) -> None:  # type: ignore[no-untyped-def]
    from gamerec_assets.store.experiments import ExperimentStore
    from tests.gamerec_api.test_hot_swap import publish_second_model

    v1, v2 = fresh_home.seeded.version, publish_second_model(fresh_home)
    registry = fresh_home.registry()
    ExperimentStore(registry.store, registry.name).start("il-page", v2, v1, 1.0, "interleave", by="test")
    app = create_app(fresh_home.settings, reload_interval=0, env={})  # the first load routes the experiment
    with serve(app) as base:
        page, errors = new_page(browser, base)
        page.locator("#user option").nth(1).wait_for(state="attached")
        page.select_option("#user", "7")
        page.click("[data-testid=recommend]")
        page.locator("[data-testid=recs] [data-testid=card]").first.wait_for()
        label = page.locator("#model")
        label.filter(has_text="interleaved").wait_for()
        assert label.inner_text() == f"models {v1} and {v2} interleaved (experiment il-page)"
        assert errors == []
