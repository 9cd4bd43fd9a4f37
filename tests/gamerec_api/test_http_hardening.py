"""HTTP hardening: crafted input is a 4xx with a message, strict body types, JSON only as JSON, HEAD, security
headers, no server paths or storage names in answers, the admin token's guess limit, and slow clients."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

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
