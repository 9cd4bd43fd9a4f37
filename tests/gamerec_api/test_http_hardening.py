"""HTTP hardening: crafted input is a 4xx with a message, strict body types, JSON only as JSON, HEAD, security
headers, no server paths or storage names in answers, the admin token's guess limit, and slow clients."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from litestar import Litestar, Request, post
from litestar.testing import TestClient

from gamerec_api.admin_access import MAX_FAILURES, FailedAuthLimiter
from gamerec_api.api_docs import render_html
from gamerec_api.app import STATIC, create_app
from gamerec_api.controllers.strict_json import StrictJSONRequest
from gamerec_api.http_guards import CONTENT_SECURITY_POLICY
from gamerec_assets.settings import StorageSettings
from gamerec_assets.store.table_store import TableStoreError
from tests.gamerec_api import test_page
from tests.gamerec_api.support import ADMIN_TOKEN, Home, free_port, wait_ready

JSON = {"content-type": "application/json"}


@contextmanager
def captured(caplog: pytest.LogCaptureFixture, name: str) -> Iterator[None]:
    """caplog sees the root logger; Litestar's logging config may stop the app's loggers from propagating."""
    logger = logging.getLogger(name)
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger=name):
            yield
    finally:
        logger.removeHandler(caplog.handler)


@pytest.fixture
def admin_client(home: Home) -> Iterator[TestClient]:
    """Its own app per test: the failed-guess counts live in the app's state."""
    with TestClient(create_app(home.settings, reload_interval=0, admin_token=ADMIN_TOKEN, env={})) as c:
        wait_ready(c)
        yield c


# -- 1. crafted input: 4xx with a message, never a 500 ------------------------------------------------------------


@pytest.mark.parametrize("depth", [1_000, 10_000, 30_000])
def test_deeply_nested_json_is_a_400(client: TestClient, depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    for body in (
        nested,
        b'{"user_id": 1, "x": ' + nested + b"}",
        b'{"user_id": 1, "liked_game_ids": ' + nested + b"}",
        b'{"user_id": ' + b'{"a":' * depth + b"1" + b"}" * depth + b"}",
    ):
        if len(body) > 64 * 1024:
            continue  # 413 first; covered by the body limit test
        r = client.post("/predict", content=body, headers=JSON)
        assert r.status_code == 400, (depth, body[:40], r.text)
        assert r.json()["extra"][0]["message"], r.text


class Loose(msgspec.Struct):
    """Unknown fields allowed: msgspec skips their values, recursively."""

    a: int = 0


def test_strict_request_bounds_nesting_for_any_handler() -> None:
    """The request class also covers bodies it skips (unknown fields) and untyped `request.json()` reads."""

    @post("/typed", request_class=StrictJSONRequest, status_code=200)
    async def typed(data: Loose) -> int:
        return data.a

    @post("/untyped", request_class=StrictJSONRequest, status_code=200)
    async def untyped(request: Request) -> int:
        return len(await request.json())

    deep = b"[" * 100_000 + b"]" * 100_000
    with TestClient(Litestar([typed, untyped], request_max_body_size=None)) as c:
        for path, body in (("/typed", b'{"x": ' + deep + b', "a": 1}'), ("/untyped", deep)):
            r = c.post(path, content=body, headers=JSON)
            assert r.status_code == 400 and "nested too deeply" in r.json()["detail"], (path, r.text)
        assert c.post("/typed", content=b'{"x": [[1]], "a": 2}', headers=JSON).json() == 2
        assert c.post("/untyped", content=b"[1, 2]", headers=JSON).json() == 2


def test_a_nul_byte_in_the_path_is_a_400(client: TestClient) -> None:
    for path in ("/static/app.js%00.png", "/static/%00", "/games/%00", "/%00"):
        r = client.get(path)
        assert r.status_code == 400, (path, r.text)
        assert "NUL byte" in r.json()["detail"]


def test_odd_static_names_are_a_plain_404(client: TestClient) -> None:
    for path in ("/static/nope.js", "/static/" + "a" * 400, "/static/x/../../app.py", "/static/%ff%fe"):
        r = client.get(path)
        assert r.status_code == 404, (path, r.text)
        assert r.json() == {"status_code": 404, "detail": "Not Found"}
        assert str(STATIC) not in r.text and "/static" not in r.json()["detail"]
    assert client.get("/static/app.js").status_code == 200


# -- 2. strict types -----------------------------------------------------------------------------------------------

STRICT = [
    ({"user_id": 1, "k": "10"}, "k", "Expected `int`, got `str`"),
    ({"user_id": 1.0}, "user_id", "Expected `int | str`, got `float`"),
    ({"user_id": True}, "user_id", "Expected `int | str`, got `bool`"),
    ({"user_id": ["1"]}, "user_id", "Expected `int | str`, got `array`"),
    ({"user_id": 1, "k": 10.0}, "k", "Expected `int`, got `float`"),
    ({"user_id": 1, "liked_game_ids": ["3498"]}, "liked_game_ids[0]", "Expected `int`, got `str`"),
]


@pytest.mark.parametrize(("body", "key", "message"), STRICT)
def test_wrong_types_are_refused_not_coerced(client: TestClient, body: Any, key: str, message: str) -> None:
    r = client.post("/predict", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["extra"] == [{"message": message, "key": key, "source": "body"}]


def test_valid_bodies_still_answer(client: TestClient) -> None:
    r = client.post("/predict", json={"user_id": 7, "k": 3, "liked_game_ids": [3498]})
    assert r.status_code == 200 and len(r.json()["items"]) == 3


# -- 3. Content-Type -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "json"]
)
def test_a_body_not_labelled_json_is_a_415(client: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    r = client.post("/predict", content=b'{"user_id": 1}', headers=headers)
    assert r.status_code == 415, r.text
    assert "application/json" in r.json()["detail"]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON", "application/x+json"])
def test_json_content_types_with_parameters_are_accepted(client: TestClient, content_type: str) -> None:
    r = client.post("/predict", content=b'{"user_id": 1}', headers={"content-type": content_type})
    assert r.status_code == 200, r.text


# -- 4. HEAD -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/healthz", "/readyz", "/games/3498", "/games?limit=2", "/schema/openapi.json"])
def test_head_answers_like_get_without_a_body(client: TestClient, path: str) -> None:
    get, head = client.get(path), client.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(get.content))
    assert head.headers["content-type"] == get.headers["content-type"]


def test_head_keeps_errors_and_static_files(client: TestClient) -> None:
    assert client.head("/games/1").status_code == 404
    assert client.head("/predict").status_code == 405  # POST only: no GET to answer HEAD with
    static = client.head("/static/app.js")
    assert static.status_code == 200 and static.content == b""
    assert static.headers["content-length"] == str((STATIC / "app.js").stat().st_size)


# -- 5. security headers -------------------------------------------------------------------------------------------


def test_security_headers_on_page_api_files_and_errors(client: TestClient) -> None:
    responses = [
        client.get("/"),
        client.get("/static/app.js"),
        client.post("/predict", json={"user_id": 1}),
        client.post("/predict", json={"user_id": "x"}),
        client.get("/no/such/route"),
        client.delete("/predict"),
        client.get("/static/app.js%00"),
        client.get("/schema"),
    ]
    for r in responses:
        assert r.headers["x-content-type-options"] == "nosniff", r.request.url
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    csp = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert csp["img-src"] == "'self' https: data:" and csp["frame-ancestors"] == "'none'"
    assert csp["script-src"] == csp["style-src"] == csp["default-src"] == "'self'"


def test_the_page_needs_nothing_the_policy_forbids() -> None:
    """CSP 'self' blocks inline scripts, inline styles (also attributes set from JS) and other origins."""
    html = (STATIC / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", html) == ['<script src="/static/app.js" defer>']
    assert "<style" not in html and " style=" not in html and " on" not in re.sub(r"<[^>]*>", "", html)
    assert not re.search(r"\son[a-z]+=", html)
    for tag in re.findall(r"<(?:link|script|img)\b[^>]*>", html):
        assert "http" not in tag, tag
    js = (STATIC / "app.js").read_text()
    assert "style:" not in js and 'setAttribute("style"' not in js and "innerHTML" not in js and "eval(" not in js


page_browser = test_page.browser  # the page test's fixtures (Chromium, a uvicorn server), under local names
page_base_url = test_page.base_url
CSP_LOG = (
    "window.__csp = []; document.addEventListener('securitypolicyviolation', "
    "(e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));"
)


def test_the_page_and_docs_run_under_the_policy_in_a_browser(page_browser, page_base_url: str) -> None:  # type: ignore[no-untyped-def]
    """Headless Chromium (the page test's fixtures): recommend, open similar games, load /schema; the browser
    reports no Content-Security-Policy violation and the covers got their colours."""
    browser, base_url = page_browser, page_base_url
    context = browser.new_context()
    context.add_init_script(CSP_LOG)
    page = context.new_page()
    page.route(test_page.NOT_THE_APP, lambda route: route.abort())
    response = page.goto(base_url + "/")
    assert response is not None and response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    # a locator wait, not wait_for_function: a string predicate that needs polling is an eval, which the CSP blocks
    page.locator("#user option").nth(1).wait_for(state="attached")
    page.select_option("#user", "7")
    page.click("[data-testid=recommend]")
    cards = page.locator("[data-testid=recs] [data-testid=card]")
    cards.first.wait_for()
    cards.first.click()
    page.locator("[data-testid=similar] [data-testid=card]").first.wait_for()
    assert cards.first.locator(".cover").evaluate("(e) => e.style.getPropertyValue('--c1')").startswith("hsl")
    assert page.evaluate("window.__csp") == []
    page.goto(base_url + "/schema")
    assert page.locator("h1").inner_text().startswith("gamerec_api")
    assert page.evaluate("getComputedStyle(document.body).maxWidth") == "960px"  # docs.css applied
    assert page.evaluate("window.__csp") == []
    context.close()


# -- 6. no leaks ---------------------------------------------------------------------------------------------------


def test_a_failed_first_load_is_failed_with_a_generic_detail(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """GAMEREC_HOME is a file: the load fails with the path in the error. /readyz says `failed` (not `loading`
    for ever) without the path; the log and the bearer-protected /admin/status have it."""
    home = tmp_path / "secret-bucket-name"
    home.write_text("not a directory")
    app = create_app(StorageSettings.from_env({"GAMEREC_HOME": str(home)}), reload_interval=0, admin_token="t", env={})
    with captured(caplog, "gamerec_api"), TestClient(app) as c:
        deadline = time.monotonic() + 20
        while (r := c.get("/readyz")).json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert r.status_code == 503
        assert r.json() == {
            "status": "failed",
            "model_version": None,
            "detail": "loading the production model failed; the server log has the reason",
        }
        predict = c.post("/predict", json={"user_id": 1})
        assert predict.status_code == 503 and "secret-bucket-name" not in predict.text
        assert c.get("/admin/status").status_code == 401
        status = c.get("/admin/status", headers={"authorization": "Bearer t"}).json()
        assert status["status"] == "failed" and "secret-bucket-name" in status["detail"]
    assert "secret-bucket-name" in caplog.text


def test_a_table_store_failure_is_answered_from_the_model_without_its_reason(
    home: Home, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(home.settings, reload_interval=0, env={})

    def broken() -> None:
        raise TableStoreError("cannot reach mysql://gamerec@db.internal:3306/secret_schema")

    monkeypatch.setattr(app.state.holder, "tables", broken)
    with captured(caplog, "gamerec_api"), TestClient(app) as c:
        wait_ready(c)
        r = c.get("/users/9/recommendations")
    # the served version answers itself (the table only ever held a copy), and never names the storage
    assert r.status_code == 200 and r.json()["source"] == "computed", r.text
    assert "db.internal" not in r.text and "db.internal" in caplog.text


def test_admin_status_when_ready(admin_client: TestClient, home: Home) -> None:
    r = admin_client.get("/admin/status", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    expected = {
        "status": "ready",
        "model_version": home.seeded.version,
        "detail": "",
        "refused_reload": None,
        "experiment": None,
    }  # no experiment running
    assert r.json() == expected


# -- 7. /schema offline ------------------------------------------------------------------------------------------


def test_schema_page_is_local_and_documents_the_json(client: TestClient) -> None:
    page = client.get("/schema")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "<script" not in html and "https://" not in html.replace("https://rawg.io", "")
    assert 'href="/schema/openapi.json"' in html and 'href="/static/docs.css"' in html
    assert "POST</span> /predict" in html and "liked_game_ids" in html
    assert client.get("/static/docs.css").status_code == 200
    for old_ui in ("/schema/redoc", "/schema/swagger", "/schema/elements"):
        assert client.get(old_ui).status_code == 404


def test_schema_page_renders_markdown_and_says_what_is_served(client: TestClient, home: Home, file_home: Home) -> None:
    """Descriptions are Markdown rendered (no literal backticks); the page names the served version's data, and
    credits RAWG only for RAWG's catalogue."""
    html = client.get("/schema").text
    assert "`" not in html and "<code>item_cf</code>" in html and "RAWG games" not in html
    assert (
        f"<p>Served now: model version <code>{home.seeded.version}</code> (ItemCF); players: <code>simulated</code>; "
        "catalogue: <code>rawg</code>. Data from RAWG (https://rawg.io).</p>"
    ) in html
    assert "item-based CF over RAWG games" not in client.get("/schema/openapi.json").json()["info"]["description"]
    with TestClient(create_app(file_home.settings, reload_interval=0, env={})) as own:
        wait_ready(own)
        html = own.get("/schema").text
    assert (
        f"<p>Served now: model version <code>{file_home.seeded.version}</code> (ItemCF); players: "
        "<code>file:interactions.csv</code>; catalogue: <code>file:games.csv</code>.</p>"
    ) in html
    assert "RAWG" not in html


def test_docs_markdown_is_rendered_and_raw_html_is_not() -> None:
    doc = {
        "info": {"title": "t", "description": "Uses `code` and **bold**.\n\n- one\n- two"},
        "paths": {"/a": {"get": {"summary": "S", "description": "<img src=x onerror=alert(1)> `x`"}}},
    }
    html = render_html(doc, "/schema/openapi.json").decode()
    assert "<p>Uses <code>code</code> and <strong>bold</strong>.</p>" in html
    assert "<li>one</li>" in html and "<code>x</code>" in html
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_request_schema_has_real_examples(client: TestClient) -> None:
    schema = client.get("/schema/openapi.json").json()["components"]["schemas"]["PredictRequest"]["properties"]
    assert schema["user_id"]["examples"] == ["7", 7]
    assert schema["k"]["examples"] == [10]
    assert schema["liked_game_ids"]["examples"] == [[3498, 3328]]
    example = {name: prop["examples"][0] for name, prop in schema.items()}
    assert client.post("/predict", json=example).status_code == 200


def test_docs_page_escapes_the_document() -> None:
    doc = {"info": {"title": "<b>x</b>"}, "paths": {"/a": {"get": {"summary": "<script>alert(1)</script>"}}}}
    html = render_html(doc, "/schema/openapi.json").decode()
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>x</b>" not in html


# -- 8. admin token guessing ---------------------------------------------------------------------------------------


def test_wrong_tokens_are_limited_per_address(admin_client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    wrong = {"authorization": "Bearer guess-123456"}
    assert admin_client.post("/admin/reload").status_code == 401  # no token: not a guess, not counted
    with captured(caplog, "gamerec_api.admin"):
        for _ in range(MAX_FAILURES):
            r = admin_client.post("/admin/reload", headers=wrong)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    failures = {id(rec) for rec in caplog.records if "wrong bearer token" in rec.getMessage()}  # dedup: root too
    assert len(failures) == MAX_FAILURES
    assert "guess-123456" not in caplog.text and "testclient" in caplog.text
    for headers in (wrong, {"authorization": f"Bearer {ADMIN_TOKEN}"}):  # the right token too, while locked out
        for path in ("/admin/reload", "/admin/status"):
            r = admin_client.request("POST" if path.endswith("reload") else "GET", path, headers=headers)
            assert r.status_code == 429, r.text
            assert 1 <= int(r.headers["retry-after"]) <= 60
            assert "try again later" in r.json()["detail"]


def test_the_lockout_ends_when_the_failures_leave_the_window(admin_client: TestClient) -> None:
    now = [1000.0]
    admin_client.app.state.admin_auth_limiter = FailedAuthLimiter(clock=lambda: now[0])
    for _ in range(MAX_FAILURES):
        admin_client.get("/admin/status", headers={"authorization": "Bearer nope"})
    assert admin_client.get("/admin/status").status_code == 429
    now[0] += 61
    r = admin_client.get("/admin/status", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200


def test_limiter_is_per_address_sliding_and_bounded() -> None:
    now = [0.0]
    limiter = FailedAuthLimiter(max_failures=3, window=10.0, max_clients=5, clock=lambda: now[0])
    for i in range(3):
        now[0] = i
        limiter.failed("a")
    assert limiter.retry_after("a") == pytest.approx(10.0 - 2.0)
    assert limiter.retry_after("b") == 0
    now[0] = 10.5  # the first failure (t=0) has left the window
    assert limiter.retry_after("a") == 0
    for i in range(20):
        limiter.failed(f"c{i}")
    assert len(limiter._failures) <= 5


# -- 9. slow clients against a real uvicorn --------------------------------------------------------------------------


@contextmanager
def uvicorn_server(app: Litestar, **options: Any) -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False, **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _closed(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while chunk := sock.recv(65536):
            del chunk
        return True
    except TimeoutError:
        return False


@pytest.mark.integration
def test_uvicorn_bounds_idle_and_excess_connections(home: Home) -> None:
    """The options proposed for `python -m gamerec_api`, and HEAD through a real server: an idle keep-alive
    connection is closed after timeout_keep_alive; beyond limit_concurrency connections new requests get 503 at
    once instead of queueing. (A client that never finishes its headers is not timed out by uvicorn: that needs
    the reverse proxy.)"""
    app = create_app(home.settings, reload_interval=0, env={})
    with uvicorn_server(app, timeout_keep_alive=1, limit_concurrency=4) as port:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            wait_ready(c)
            head = c.head("/games/3498")  # HEAD through a real server: headers of the GET, no body
            assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
        idle = socket.create_connection(("127.0.0.1", port))
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in idle.recv(65536)
        assert _closed(idle, within=3.0), "keep-alive connection not closed after timeout_keep_alive"
        idle.close()
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        for s in slow:
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20\r\n")
        time.sleep(0.3)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            assert c.get("/healthz").status_code == 503  # over the limit: refused, not queued
        for s in slow:
            s.close()
        time.sleep(0.3)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            assert c.get("/healthz").status_code == 200
