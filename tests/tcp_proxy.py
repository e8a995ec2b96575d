"""A TCP forwarder between a client and a real service, whose `cut()` drops every open connection at once:
how the streaming tests and bench/stream_bench.py make a broker connection fail for real (the client sees
its socket reset mid-conversation, as when a broker node or the network goes away)."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cuts = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            # Without it each small AMQP frame waits for the peer's delayed ACK (about 40 ms a publish).
            for end in (client, upstream):
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                self._close(end)

    def _close(self, end: socket.socket) -> None:
        with self._lock:
            self._open.discard(end)
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)
        end.close()

    def open_sockets(self) -> int:
        with self._lock:
            return len(self._open)

    def cut(self) -> int:
        """Drop every connection open now; returns how many sockets were closed."""
        with self._lock:
            ends = list(self._open)
        for end in ends:
            self._close(end)
        self.cuts += 1
        return len(ends)

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.cut()

    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
