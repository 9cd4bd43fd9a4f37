"""HTTP hardening: crafted input is a 4xx with a message, strict body types, JSON only as JSON, HEAD, security
headers, no server paths or storage names in answers, the admin token's guess limit, and slow clients."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.testing import TestClient

from gamerec_api.app import STATIC
from gamerec_api.http_guards import CONTENT_SECURITY_POLICY

JSON = {"content-type": "application/json"}


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


STRICT = [
    ({"user_id": 1, "k": "10"}, "k", "Expected `int`, got `str`"),
    ({"user_id": 1.0}, "user_id", "Expected `int`, got `float`"),
    ({"user_id": "1"}, "user_id", "Expected `int`, got `str`"),
    ({"user_id": True}, "user_id", "Expected `int`, got `bool`"),
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
