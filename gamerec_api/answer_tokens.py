"""Answer-scoped event tokens: what lets a browser post the events of one answer, and nothing else.

Each `/predict`, `/games/{id}/similar` and `/users/{id}/recommendations` answer carries a `request_id` (unique: a
random prefix per worker and a counter) and an `event_token`:

    <request_id>.<expiry, unix s>.<user id, base64url>.<game ids joined by "_">.<HMAC-SHA256, base64url>

signed with the server's secret (GAMEREC_EVENT_SECRET, or GAMEREC_HOME/event_secret made on first use, so every
worker of a host signs and checks alike). `POST /events` with `Authorization: Bearer <event_token>` may post
impression, click and play events of that user for the games of that answer (`request_id` set to the answer's),
until the expiry (GAMEREC_EVENT_TOKEN_TTL, a day); anything else is a 403 naming the first event that is not. The
token carries its own claims, so checking it needs no lookup.

On /predict the answer's game ids are part of the cached answer; per request only the request id, the expiry,
the user and one HMAC are formatted and spliced in front of the cached bytes (a few µs).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOKEN_EVENT_TYPES = frozenset({"impression", "click", "play"})
_DOMAIN = b"gamerec-event-token/v1\n"


class BadToken(ValueError):
    """Not a valid answer token: the message says why (bad signature, expired, malformed)."""


@dataclass(frozen=True)
class Claims:
    request_id: str
    expires: int
    user_id: str  # "" for an answer given without a user (then no event is allowed)
    games: frozenset[int]


def load_secret(configured: str | None, home: Path) -> bytes:
    """GAMEREC_EVENT_SECRET's bytes, or the secret kept in `home`/event_secret (created once, mode 0600, by whichever
    worker comes first: O_EXCL, so concurrent workers end up reading the same file)."""
    if configured:
        return configured.encode()
    path = home / "event_secret"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        tmp = home / f".event_secret.{secrets.token_hex(4)}"
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # atomic, and never replaces: the first worker's secret wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    text = path.read_text().strip()
    if len(text) < 32:
        raise ValueError(f"{path} holds no usable secret (under 32 characters): delete it or set GAMEREC_EVENT_SECRET")
    return text.encode()


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(raw: bytes) -> bytes:
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AnswerTokens:
    """Issues and checks answer tokens for one app (its secret loaded on first use)."""

    def __init__(self, secret: str | None, home: Path, ttl_s: float) -> None:
        self._configured = secret
        self._home = home
        self._secret: bytes | None = None
        self._pads: tuple[Any, Any] | None = None  # HMAC's inner and outer SHA-256 states, keyed once
        self._lock = threading.Lock()
        self.ttl_s = int(ttl_s)
        self._prefix = secrets.token_hex(6)
        self._counter = itertools.count(1)

    def secret(self) -> bytes:
        if self._secret is None:
            with self._lock:
                if self._secret is None:
                    secret = load_secret(self._configured, self._home)
                    key = (hashlib.sha256(secret).digest() if len(secret) > 64 else secret).ljust(64, b"\0")
                    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
                    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
                    self._pads = (inner, outer)
                    self._secret = secret
        return self._secret

    def _mac(self, payload: bytes) -> bytes:
        """HMAC-SHA256(secret, domain + payload), from the keyed pads (RFC 2104): the same bytes as `hmac.digest`
        at half its cost, since the key's two blocks are hashed once, not per token."""
        if self._pads is None:
            self.secret()
        inner, outer = self._pads  # type: ignore[misc]
        i = inner.copy()
        i.update(_DOMAIN + payload)
        o = outer.copy()
        o.update(i.digest())
        return o.digest()

    def issue(self, user_json: bytes, games: bytes, tag: bytes = b"") -> tuple[bytes, bytes]:
        """(request_id, event_token) as ASCII bytes for an answer to the user whose id is the JSON string
        `user_json` (b'"7"'; b'""' for no user) listing `games` (ids joined by b"_"). `tag`: what an experiment's
        answer appends to its request id (`recsys.experiment_ids.tag`: "~<experiment>~<arm>~<version>")."""
        rid = f"{self._prefix}{next(self._counter):x}".encode() + tag
        user = _b64(user_json[1:-1]) if b"\\" not in user_json else _b64(_json_text(user_json))
        payload = b".".join((rid, str(int(time.time()) + self.ttl_s).encode(), user, games))
        return rid, payload + b"." + _b64(self._mac(payload))

    def issue_text(self, user_id: str, game_ids: list[int], tag: bytes = b"") -> tuple[str, str]:
        """`issue` for the struct-built answers (similar, batch)."""
        import msgspec

        rid, token = self.issue(msgspec.json.encode(user_id), "_".join(map(str, game_ids)).encode(), tag)
        return rid.decode(), token.decode()

    def check(self, token: str, now: float | None = None) -> Claims:
        parts = token.split(".")
        if len(parts) != 5:
            raise BadToken("malformed (not 5 dot-separated parts)")
        rid, expires, user, games, mac = parts
        try:
            sent = _unb64(mac)
        except (binascii.Error, ValueError):
            raise BadToken("malformed signature") from None
        payload = token[: -len(mac) - 1].encode("ascii", "replace")
        if not hmac.compare_digest(self._mac(payload), sent):
            raise BadToken("bad signature (not issued by this server, or altered)")
        try:  # signed by us: well formed
            claims = Claims(rid, int(expires), _unb64(user).decode(), frozenset(int(g) for g in games.split("_") if g))
        except ValueError:
            raise BadToken("malformed claims") from None
        if claims.expires < (time.time() if now is None else now):
            raise BadToken(f"expired (answer tokens last {self.ttl_s} s: ask for a new answer)")
        return claims


def _json_text(user_json: bytes) -> bytes:
    import msgspec

    return msgspec.json.decode(user_json, type=str).encode()
