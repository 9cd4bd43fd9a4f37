"""Loopback ports and the base of the in-thread HTTP fakes."""

from __future__ import annotations

import socket
import threading
from http.server import ThreadingHTTPServer

from tests.support import started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadedHTTPServer:
    """A loopback HTTP server on a free port in a daemon thread (base for the fakes of remote services)."""

    def serve(self, handler: type) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        started.record(type(self).__name__)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
