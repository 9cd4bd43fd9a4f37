"""moto's standalone S3 server on a free loopback port, reached over real HTTP, and buckets on it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support import started
from tests.support.availability import unavailable
from tests.support.net import free_port


@contextmanager
def moto_server() -> Iterator[str]:
    """Yields the endpoint URL while the server runs."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        unavailable("moto server", exc)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    started.record("moto S3 server")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def new_bucket(endpoint: str) -> dict[str, str]:
    """A bucket with a random name on the server at `endpoint`: {"endpoint", "bucket"}."""
    import boto3

    name = f"gamerec-{secrets.token_hex(4)}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=name)
    return {"endpoint": endpoint, "bucket": name}
