"""Issue 22, the smaller findings, against real server processes (`python -m gamerec_api`) over real sockets:

- X-Forwarded-For is believed only from GAMEREC_TRUSTED_PROXIES (a rotated header bought 640 admin guesses and
  lifted a lockout);
- a request's header section is bounded (a 30 MB header was accepted): 431, the connection closed, the server fine;
- a version whose manifest claims events beyond the events table is refused at reload, the server keeps its model,
  and GET /admin/status says which version was refused, when and why (it said `ready` with an empty detail).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from gamerec_api.client_address import client_address, parse_trusted
from gamerec_assets import backends
from gamerec_assets.recsys.model_artifact import MANIFEST
from gamerec_assets.store.event_store import EventStore
from gamerec_assets.store.registry import new_version
from tests.gamerec_api.support import ADMIN_TOKEN, Home, free_port, wait_ready

ROOT = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@contextmanager
def server(home: Home, **extra: str) -> Iterator[tuple[httpx.Client, subprocess.Popen, int]]:
    """`python -m gamerec_api` on a free port with the admin token (and `extra` variables), once ready."""
    port = free_port()
    env = {**os.environ, "GAMEREC_HOME": str(home.path), "PYTHONPATH": str(ROOT), "GAMEREC_ADMIN_TOKEN": ADMIN_TOKEN}
    for name in ("PROMETHEUS_MULTIPROC_DIR", "GAMEREC_TRUSTED_PROXIES", "GAMEREC_MAX_HEADER_BYTES"):
        env.pop(name, None)
    env["FORWARDED_ALLOW_IPS"] = "*"  # uvicorn's own proxy handling would believe anyone: it must be off
    env.update(extra)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gamerec_api", "--port", str(port), "--reload-interval", "0", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 90
            while True:
                try:
                    wait_ready(client, timeout=90)
                    break
                except httpx.TransportError:
                    assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                    assert time.monotonic() < deadline, "server did not start"
                    time.sleep(0.1)
            yield client, proc, port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# -- forwarded headers ---------------------------------------------------------------------------------------------


def guess(client: httpx.Client, forwarded: str, token: str = "wrong") -> int:
    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": forwarded}
    return client.get("/admin/status", headers=headers).status_code


def test_a_rotated_forwarded_header_buys_no_guesses_without_trusted_proxies(home: Home) -> None:
    with server(home) as (client, _, _):
        codes = [guess(client, f"198.51.100.{i}") for i in range(30)]
        assert codes[:10] == [401] * 10, codes
        assert set(codes[10:]) == {429}, "every address in the header is the same client: the TCP peer"
        # a fresh header does not lift the lockout, not even with the right token
        assert guess(client, "203.0.113.99", ADMIN_TOKEN) == 429
        assert client.get("/admin/status", headers=AUTH).status_code == 429


def test_a_trusted_proxy_names_the_client_and_a_spoofed_entry_does_not(home: Home) -> None:
    with server(home, GAMEREC_TRUSTED_PROXIES="127.0.0.1, 10.0.0.0/8") as (client, _, _):
        assert [guess(client, "203.0.113.7") for _ in range(11)][-2:] == [401, 429]
        # what the client wrote left of the proxies' entries is ignored: still 203.0.113.7, still locked out
        assert guess(client, "192.0.2.1, 203.0.113.7, 10.1.2.3", ADMIN_TOKEN) == 429
        # another client behind the same proxy keeps its own budget
        assert guess(client, "203.0.113.8", ADMIN_TOKEN) == 200
        assert guess(client, "192.0.2.1, 203.0.113.8", ADMIN_TOKEN) == 200


def test_client_address_rule() -> None:
    def scope(peer: str | None, *forwarded: str) -> dict:
        headers = [(b"x-forwarded-for", f.encode()) for f in forwarded]
        return {"type": "http", "client": (peer, 1234) if peer else None, "headers": headers}

    none = parse_trusted([])
    proxies = parse_trusted(["127.0.0.1/32", "10.0.0.0/8", "::1/128"])
    assert client_address(scope("127.0.0.1", "1.2.3.4"), none) == "127.0.0.1"
    assert client_address(scope("192.0.2.5", "1.2.3.4"), proxies) == "192.0.2.5", "an untrusted peer is the client"
    assert client_address(scope("127.0.0.1", "1.2.3.4"), proxies) == "1.2.3.4"
    assert client_address(scope("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.9.9.9"), proxies) == "1.2.3.4"
    assert client_address(scope("10.0.0.2", "6.6.6.6", "1.2.3.4"), proxies) == "1.2.3.4", "several header lines"
    assert client_address(scope("::1", "2001:db8::7"), proxies) == "2001:db8::7"
    assert client_address(scope("::ffff:10.0.0.3", "1.2.3.4"), proxies) == "1.2.3.4", "IPv4-mapped peer"
    assert client_address(scope("10.0.0.2"), proxies) == "10.0.0.2", "no header: the proxy itself"
    assert client_address(scope("10.0.0.2", "10.0.0.9"), proxies) == "10.0.0.9", "only proxies: the leftmost"
    assert client_address(scope(None, "1.2.3.4"), proxies) == "unknown"


# -- bounded request headers ---------------------------------------------------------------------------------------


def raw_request(port: int, head: bytes, total: int = 0, timeout: float = 20.0) -> bytes:
    """Send a request head (padded by a header of `total` bytes sent in 64 KiB pieces) over a raw socket; return
    whatever the server answered before closing (sending stops when the server closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(head)
            if total:
                sock.sendall(b"X-Padding: ")
                piece = b"a" * 65536
                for _ in range(total // len(piece)):
                    sock.sendall(piece)
                sock.sendall(b"\r\n\r\n")
        except OSError:
            pass  # the server answered and closed while we were still sending
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except OSError:
            pass
        return b"".join(chunks)


def test_request_headers_are_bounded(home: Home) -> None:
    with server(home) as (client, proc, port):
        # a 30 MB header: 431 and the connection closed
        answer = raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", total=30 * 1024 * 1024)
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert b"request header fields too large" in answer
        # many small headers
        many = b"".join(b"X-H%d: 1\r\n" % i for i in range(150))
        answer = raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        assert answer.startswith(b"HTTP/1.1 431 ") and b"more than 100 header fields" in answer, answer[:200]
        # a long URL counts too
        answer = raw_request(port, b"GET /healthz?q=" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        # what a browser sends (a few KiB of cookies included) passes, and a large body is not a header
        browser = {"Cookie": "c=" + "x" * 8000, "User-Agent": "Mozilla/5.0 " + "y" * 300, "Accept-Language": "en"}
        assert client.get("/healthz", headers=browser).status_code == 200
        big_body = json.dumps({"user_id": 1, "k": 5, "pad": "z" * 40_000})
        r = client.post("/predict", content=big_body, headers={"Content-Type": "application/json"})
        assert r.status_code != 431
        # many requests on one keep-alive connection do not add up
        for _ in range(50):
            assert client.get("/healthz", headers=browser).status_code == 200
        assert proc.poll() is None
        assert client.get("/readyz").status_code == 200


def test_the_header_limit_is_a_setting(home: Home) -> None:
    with server(home, GAMEREC_MAX_HEADER_BYTES="65536") as (client, _, port):
        assert client.get("/healthz", headers={"X-Big": "a" * 40_000}).status_code == 200
        answer = raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", total=1024 * 1024)
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


# -- implausible manifests ---------------------------------------------------------------------------------------


def plant_production(home: Home, change: dict) -> tuple[str, str]:
    """Copy the production version under a new name with `change` merged into its manifest's `data.events` (the
    arrays and their sha256s intact: only the manifest lies), and point the alias at it past the registry."""
    registry = home.registry()
    store = registry.store
    good = registry.production()
    assert good is not None
    manifest = json.loads(store.get(f"{registry.name}/{good}/{MANIFEST}"))
    bad = new_version()
    manifest["version"] = bad
    data = manifest.setdefault("data", {})
    data["events"] = {**(data.get("events") or {}), **change}
    for name in manifest["files"]:
        store.put(f"{registry.name}/{bad}/{name}", store.get(f"{registry.name}/{good}/{name}"))
    store.put(f"{registry.name}/{bad}/{MANIFEST}", json.dumps(manifest).encode())
    alias = {**(registry.alias() or {}), "version": bad, "previous": [good], "reason": "planted by a test"}
    store.replace(f"{registry.name}/_aliases/production.json", json.dumps(alias).encode())
    return good, bad


@pytest.mark.parametrize("until_seq", [10**15, -3, 12.5])
def test_a_reload_claiming_events_beyond_the_table_is_refused_and_reported(fresh_home: Home, until_seq: float) -> None:
    with server(fresh_home) as (client, proc, _):
        good = wait_ready(client)["model_version"]
        before = client.get("/admin/status", headers=AUTH).json()
        assert before["refused_reload"] is None
        _, bad = plant_production(fresh_home, {"until_seq": until_seq, "count": 0})
        r = client.post("/admin/reload", headers=AUTH)
        assert r.status_code == 503 and "still serving the previous model" in r.json()["detail"]
        assert "data.events.until_seq" in r.json()["detail"]
        # still serving, and truthful about it: ready with the old version, the status names the refusal
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["model_version"] == good
        status = client.get("/admin/status", headers=AUTH).json()
        assert status["status"] == "ready" and status["model_version"] == good
        refused = status["refused_reload"]
        assert refused["version"] == bad and "data.events.until_seq" in refused["reason"]
        assert time.time() - _epoch(refused["at"]) < 120
        assert bad in status["detail"] and "refused" in status["detail"]
        assert proc.poll() is None
        # a plausible version swaps in and clears the refusal
        _, fixed = plant_production(fresh_home, {"until_seq": 0, "count": 0})
        assert client.post("/admin/reload", headers=AUTH).json()["model_version"] == fixed
        status = client.get("/admin/status", headers=AUTH).json()
        assert status["model_version"] == fixed and status["refused_reload"] is None and status["detail"] == ""


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_a_fresh_server_skips_an_implausible_production_version(fresh_home: Home) -> None:
    good, bad = plant_production(fresh_home, {"until_seq": 10**15})
    with server(fresh_home) as (client, _, _):
        assert wait_ready(client)["model_version"] == good
        status = client.get("/admin/status", headers=AUTH).json()
        assert status["refused_reload"]["version"] == bad


def test_the_cli_refuses_to_promote_a_version_beyond_the_events_table(fresh_home: Home) -> None:
    newest = EventStore(backends.table_store(fresh_home.settings)).last_seq()
    good, bad = plant_production(fresh_home, {"until_seq": newest + 1})
    registry = fresh_home.registry()
    alias = registry.alias()
    assert alias is not None
    registry.store.replace(
        f"{registry.name}/_aliases/production.json", json.dumps({**alias, "version": good, "previous": []}).encode()
    )
    env = {**os.environ, "GAMEREC_HOME": str(fresh_home.path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "gamerec_assets.cli", "models", "promote", bad],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    assert "until_seq" in out.stderr and f"newest interaction_events seq {newest}" in out.stderr
    assert registry.production() == good


def test_guard_settings_are_checked() -> None:
    from gamerec_assets.settings import GuardSettings

    assert GuardSettings.from_env({}) == GuardSettings((), 16 * 1024, 100)
    with pytest.raises(ValueError, match="GAMEREC_TRUSTED_PROXIES"):
        GuardSettings.from_env({"GAMEREC_TRUSTED_PROXIES": "10.0.0.0/8, proxy.local"})
    with pytest.raises(ValueError, match="GAMEREC_MAX_HEADER_BYTES"):
        GuardSettings.from_env({"GAMEREC_MAX_HEADER_BYTES": "100"})
