"""`python -m gamerec_api --host 127.0.0.1 --port 8000 [--workers N]`: serve the app with uvicorn."""

from __future__ import annotations

import argparse
import shutil
import tempfile

from gamerec_assets.settings import Settings, check_or_exit, export_to_children, port_problem


def http_protocol() -> str:
    """uvicorn's httptools protocol with bounded headers (header_limits), or h11 (bounded by uvicorn) without it."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "gamerec_api.header_limits:BoundedHttpToolsProtocol"


def main(argv: list[str] | None = None) -> None:
    check_or_exit("python -m gamerec_api")  # a bad setting: one line and exit 2, not a traceback
    settings = Settings.from_env()
    api, guards = settings.api, settings.guards
    parser = argparse.ArgumentParser(prog="python -m gamerec_api", description=__doc__)
    parser.add_argument("--host", default=api.host, help="env GAMEREC_API_HOST, 127.0.0.1")
    parser.add_argument("--port", type=int, default=api.port, help="env GAMEREC_API_PORT, 8000")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (each loads its own model)")
    parser.add_argument(
        "--reload-interval",
        type=float,
        default=None,
        help="seconds between checks of the production alias (env GAMEREC_RELOAD_INTERVAL, 30)",
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--access-log", action="store_true", help="log every request (off: it costs throughput)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    busy = port_problem(args.host, args.port) if args.port else None
    if busy:  # uvicorn would log a traceback-free error too, but only after importing the whole app
        parser.exit(2, f"--port {args.port}: {args.host}:{args.port} is {busy}; pick another (GAMEREC_API_PORT)\n")
    # Workers build the app from the environment (uvicorn's factory mode): hand them what the flags changed.
    if args.reload_interval is not None:
        export_to_children({"GAMEREC_RELOAD_INTERVAL": str(args.reload_interval)})
    metrics_dir = None
    if args.workers > 1 and not api.metrics_dir:
        # Workers are separate processes: share counters through files so /metrics sums them.
        metrics_dir = tempfile.mkdtemp(prefix="gamerec-metrics-")
        export_to_children({"PROMETHEUS_MULTIPROC_DIR": metrics_dir})
    import uvicorn

    try:
        uvicorn.run(
            "gamerec_api.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            access_log=args.access_log,
            # Slow or idle clients are bounded per worker (see the README's "Slow clients"): idle keep-alive
            # connections close after 5 s, past 1,000 open connections new requests get 503 at once, and a
            # restart waits at most 10 s for them.
            timeout_keep_alive=5,
            limit_concurrency=1000,
            timeout_graceful_shutdown=10,
            server_header=False,
            # The client address is decided by gamerec_api.client_address (GAMEREC_TRUSTED_PROXIES): uvicorn's own
            # proxy-headers handling would believe X-Forwarded-For from 127.0.0.1 by default.
            proxy_headers=False,
            # Request line + headers bounded (GAMEREC_MAX_HEADER_BYTES, GAMEREC_MAX_HEADERS): 431 past them.
            http=http_protocol(),
            h11_max_incomplete_event_size=guards.max_header_bytes,
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
