"""A TCP proxy in front of MariaDB that kills a connection at a chosen point of an events append.

`arm("insert")`: the connection is cut when the client sends its `INSERT ... INTO interaction_events` (the packet is
not forwarded: the server rolls the transaction back). `arm("commit")`: the COMMIT that follows such an INSERT is
forwarded, the server's answer is swallowed and the connection cut (the server has committed; the client never
hears it). Either fires once, then the proxy forwards faithfully again.
"""

from __future__ import annotations

import contextlib
import socket
import threading

INSERT_MARK = b"INTO interaction_events"
COMMIT_PACKET = b"\x03COMMIT"  # COM_QUERY "COMMIT" after the 4-byte packet header


class MySQLFaultProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.mode: str | None = None
        self.fired = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, mode: str) -> None:
        assert mode in ("insert", "commit")
        self.fired.clear()
        self.mode = mode

    def close(self) -> None:
        self._closed = True
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            state = {"insert": False, "drop_reply": False}
            threading.Thread(target=self._up, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, state), daemon=True).start()

    def _cut(self, *socks: socket.socket) -> None:
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _up(self, client: socket.socket, server: socket.socket, state: dict[str, bool]) -> None:
        """Client to server."""
        try:
            while chunk := client.recv(1 << 16):
                if INSERT_MARK in chunk:
                    state["insert"] = True
                    with self._lock:
                        if self.mode == "insert":
                            self.mode = None
                            self.fired.set()
                            self._cut(client, server)
                            return
                elif state["insert"] and chunk[4:] == COMMIT_PACKET:
                    state["insert"] = False
                    with self._lock:
                        if self.mode == "commit":
                            self.mode = None
                            state["drop_reply"] = True
                server.sendall(chunk)
        except OSError:
            pass
        self._cut(client, server)

    def _down(self, server: socket.socket, client: socket.socket, state: dict[str, bool]) -> None:
        """Server to client."""
        try:
            while chunk := server.recv(1 << 16):
                if state["drop_reply"]:  # the server answered the COMMIT: committed. The client never hears it.
                    self.fired.set()
                    self._cut(client, server)
                    return
                client.sendall(chunk)
        except OSError:
            pass
        self._cut(client, server)
