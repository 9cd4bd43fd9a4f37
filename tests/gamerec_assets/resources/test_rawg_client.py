"""The live RAWG client against a local server replaying real responses, with injected faults."""

import time

import pytest

from gamerec_assets.recsys.rawg_pages import RawgPageError
from gamerec_assets.resources.rawg import RawgApi, RawgApiError, RawgQuery, redact

KEY = "s3cr3t-key-123"


def api(server, **kw) -> RawgApi:
    defaults = {"timeout": 0.5, "max_attempts": 4, "backoff_initial": 0.05, "backoff_max": 2.0}
    return RawgApi(KEY, server.url, **{**defaults, **kw})


def test_follows_next_links_and_keeps_the_key_out_of_pages(rawg_server) -> None:
    pages = list(api(rawg_server).iter_pages(RawgQuery(page_size=40, genres="action"), max_pages=3))
    assert len(pages) == 3
    assert [len(p["results"]) for p in pages] == [40, 40, 40]
    ids = [g["id"] for p in pages for g in p["results"]]
    assert len(set(ids)) == 120
    assert all(q["key"] == [KEY] for q in rawg_server.requests)
    assert [q.get("page", ["1"])[0] for q in rawg_server.requests] == ["1", "2", "3"]
    assert all(q["genres"] == ["action"] and q["page_size"] == ["40"] for q in rawg_server.requests)
    assert KEY not in repr(pages)
    assert pages[0]["next"].endswith("page=2") or "page=2" in pages[0]["next"]


def test_stops_at_game_limit_and_at_the_last_page(rawg_server) -> None:
    assert len(list(api(rawg_server).iter_pages(RawgQuery(page_size=40), max_pages=0, max_games=70))) == 2
    everything = list(api(rawg_server).iter_pages(RawgQuery(page_size=40), max_pages=0))
    assert sum(len(p["results"]) for p in everything) == 400 and everything[-1]["next"] is None


def test_429_with_retry_after_is_honoured(rawg_server) -> None:
    rawg_server.faults = [("status", 429, {"Retry-After": "1"})]
    started = time.monotonic()
    page = api(rawg_server).get_page(f"{rawg_server.url}/games", {"page_size": "5"})
    assert time.monotonic() - started >= 1.0
    assert len(page["results"]) == 5 and len(rawg_server.requests) == 2


def test_5xx_and_slow_responses_are_retried(rawg_server) -> None:
    rawg_server.faults = [("status", 500), ("status", 503), ("slow", 1.5)]
    logs: list[str] = []
    page = api(rawg_server, log=logs.append).get_page(f"{rawg_server.url}/games", {"page_size": "5"})
    assert len(page["results"]) == 5
    assert len(rawg_server.requests) == 4
    assert any("HTTP 500" in line for line in logs) and any("timeout" in line for line in logs)
    assert not any(KEY in line for line in logs)


def test_truncated_body_is_retried_then_fails_with_url_status_and_excerpt(rawg_server) -> None:
    rawg_server.faults = [("truncate",)] * 10
    with pytest.raises(RawgApiError) as err:
        api(rawg_server, max_attempts=3).get_page(f"{rawg_server.url}/games", {"page_size": "5"})
    message = str(err.value)
    assert "failed after 3 attempts" in message and "invalid JSON" in message and "HTTP 200" in message
    assert f"{rawg_server.url}/games?page_size=5" in message and '{"count"' in message
    assert KEY not in message
    assert len(rawg_server.requests) == 3


def test_retry_budget_exhausted_on_5xx(rawg_server) -> None:
    rawg_server.faults = [("status", 502)] * 10
    with pytest.raises(
        RawgApiError, match=r"after 4 attempts: HTTP 502 \(HTTP 502\); body: '\{\"detail\": \"injected\"\}'"
    ):
        api(rawg_server).get_page(f"{rawg_server.url}/games", {})


def test_page_without_results_is_a_clear_error(rawg_server) -> None:
    rawg_server.faults = [None, ("no_results",)]
    with pytest.raises(RawgPageError, match=r"RAWG page 2 .*no 'results'"):
        list(api(rawg_server).iter_pages(RawgQuery(page_size=10), max_pages=5))


def test_auth_errors_are_not_retried_and_hide_the_key(rawg_server) -> None:
    rawg_server.faults = [("status", 401)]
    with pytest.raises(RawgApiError, match="HTTP 401") as err:
        api(rawg_server).get_page(f"{rawg_server.url}/games", {})
    assert KEY not in str(err.value) and len(rawg_server.requests) == 1


def test_query_validation_and_redaction() -> None:
    with pytest.raises(ValueError, match="page_size"):
        RawgQuery(page_size=41).params()
    assert redact("https://api.rawg.io/api/games?key=abc&page=2") == "https://api.rawg.io/api/games?page=2"
    with pytest.raises(RawgApiError, match="empty"):
        RawgApi("")


@pytest.mark.parametrize("status", [400, 503])
def test_a_key_echoed_in_any_encoding_never_reaches_errors_or_logs(rawg_server, status: int) -> None:
    """A key with `+`, `/`, `=` and a space comes back percent-encoded (%2B, %2F, %3D, %20 or +), in either hex case."""
    from urllib.parse import quote, quote_plus

    key = "Ab+cd/ef=gh ij"
    logs: list[str] = []
    rawg_server.faults = [("echo", status)] * 3
    client = RawgApi(key, rawg_server.url, max_attempts=3, backoff_initial=0.01, backoff_max=0.02, log=logs.append)
    with pytest.raises(RawgApiError) as err:
        client.get_page(f"{rawg_server.url}/games", {})
    text = "\n".join([str(err.value), *logs])
    assert "bad request" in text  # the echoed body is shown, scrubbed
    forms = {key, quote(key, safe=""), quote_plus(key, safe=""), quote(key, safe="").lower(), "Ab%2Bcd", "Ab%2bcd"}
    for form in forms:
        assert form not in text, form
