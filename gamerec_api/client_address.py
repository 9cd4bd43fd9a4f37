"""Which address a request comes from: the one rule every per-client limit of the API uses.

`X-Forwarded-For` is a header anyone can send. Believed blindly, a guesser rotates it and every guess comes from
"another client" (the admin token limit let 640 guesses through and a spoofed header lifted a lockout). So the TCP
peer is the client, unless the peer is a configured proxy (GAMEREC_TRUSTED_PROXIES, IPs or CIDRs; empty by default).
Then `X-Forwarded-For` is read from the right, skipping the trusted proxies the request passed through, and the first
address that is not one of them is the client: a proxy appends the address it saw, so everything left of that entry
was written by the client and is ignored.

uvicorn must not rewrite the peer itself (its `--proxy-headers` trusts 127.0.0.1 by default): `python -m gamerec_api`
turns that off, and this module is the only place that reads forwarded headers.

Use: `client_address(request_or_scope, trusted_proxies_of(app.state))` (a Litestar Request/ASGIConnection or a raw
ASGI scope), e.g. for rate limits.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Trusted = tuple[IPNetwork, ...]
TRUSTED_PROXIES = "trusted_proxies"  # app.state key holding the parsed networks (create_app sets it)
UNKNOWN = "unknown"  # no peer address (a test transport, a Unix socket)
MAX_HOPS = 32  # X-Forwarded-For entries examined at most (a proxy chain is a few hops; a header can list thousands)


def parse_trusted(networks: Iterable[str]) -> Trusted:
    """The networks of GAMEREC_TRUSTED_PROXIES (already checked by the settings) as ipaddress objects."""
    return tuple(ipaddress.ip_network(n, strict=False) for n in networks)


def trusted_proxies_of(state: Any) -> Trusted:
    """The app's trusted proxies (none when the app was built without them)."""
    value = state.get(TRUSTED_PROXIES) if hasattr(state, "get") else None
    return value or ()


def _is_trusted(address: str, trusted: Trusted) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in trusted)


def _forwarded_for(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """Every X-Forwarded-For entry, in order, over all the header's lines (a proxy may add a line of its own)."""
    entries: list[str] = []
    for name, value in headers:
        if name.lower() == b"x-forwarded-for":
            entries.extend(e.strip() for e in value.decode("latin-1").split(","))
    return entries


def client_address(scope_or_request: Any, trusted: Trusted) -> str:
    """The client's address: the TCP peer, or, when the peer is a trusted proxy, the rightmost X-Forwarded-For
    entry that is not a trusted proxy (the peer when the header is missing or lists only trusted proxies)."""
    scope = getattr(scope_or_request, "scope", scope_or_request)
    client = scope.get("client")
    peer = str(client[0]) if client else UNKNOWN
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    address = peer
    for entry in reversed(_forwarded_for(scope.get("headers") or ())[-MAX_HOPS:]):
        if not entry:
            break  # an empty entry is malformed: keep the last address a trusted proxy vouched for
        address = entry[:64]
        if not _is_trusted(entry, trusted):
            break
    return address
