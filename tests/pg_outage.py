"""A TCP proxy in front of the test PostgreSQL that can fail like the real thing.

Point Django's connection at it (``point_at``) and it can go down (refuse new connections
and cut the open ones, as a crash does), come back after a number of refused connections,
cut the open connections but stay up (a restart: pooled connections are stale), or accept
and never answer (a host that is unreachable: only ``connect_timeout`` ends the wait).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from contextlib import contextmanager


class PgProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.is_up = True
        self.silent = False
        self.back_after = 0  # refused connections after which it comes back by itself
        self.refused = 0
        self.open: set[socket.socket] = set()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    # ---- what a test does
    def down(self, *, back_after: int = 0) -> None:
        """Refuse new connections and cut the open ones; with ``back_after``, come back up by
        itself once that many connections were refused."""
        with self.lock:
            self.is_up = False
            self.back_after = back_after
            self.refused = 0
        self.cut()

    def up(self) -> None:
        with self.lock:
            self.is_up, self.silent = True, False

    def cut(self) -> None:
        """Close every open connection (PostgreSQL restarted under them)."""
        with self.lock:
            victims, self.open = list(self.open), set()
        for sock in victims:
            _close(sock)

    def blackhole(self) -> None:
        """Accept connections and never answer (a partitioned database host)."""
        with self.lock:
            self.silent = True
        self.cut()

    def close(self) -> None:
        self.closed = True
        _close(self.listener)
        self.cut()

    # ---- the proxy
    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self.silent:
                    self.open.add(client)
                    continue
                if not self.is_up:
                    self.refused += 1
                    if self.back_after and self.refused >= self.back_after:
                        self.is_up = True
                    _close(client)
                    continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self.lock:
                self.open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@contextmanager
def point_at(proxy: PgProxy):
    """Django's default connection goes through ``proxy`` inside the block."""
    from django.db import connection

    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict["HOST"] = "127.0.0.1"
    connection.settings_dict["PORT"] = proxy.port
    try:
        yield proxy
    finally:
        proxy.up()
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
