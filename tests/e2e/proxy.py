"""A loopback TCP proxy whose connections the test can cut, to play a network outage.

The browser talks to ssechat through it. ``cut()`` closes every open connection (the browser sees
its streams break) and refuses new ones until ``restore()``: what a dropped Wi-Fi looks like to
a page, without touching the server, which goes on generating.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType


class CuttableProxy:
    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._refusing = False
        self._closed = False
        self._refused = 0
        self._refused_changed = threading.Condition(self._lock)
        self._threads: list[threading.Thread] = []
        self._start(self._accept_loop, "proxy-accept")

    def _start(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refusing = self._refusing or self._closed
                if refusing:
                    self._refused += 1
                    self._refused_changed.notify_all()
            if refusing:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open.update((client, upstream))
            self._start(self._pump, "proxy-up", client, upstream)
            self._start(self._pump, "proxy-down", upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)

    def cut(self) -> None:
        """Break every open connection and refuse new ones."""
        with self._lock:
            self._refusing = True
            self._refused = 0
            doomed = list(self._open)
        for s in doomed:
            # shutdown, not close: it wakes the pump blocked in recv(), which then closes both
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def wait_refused(self, count: int, timeout: float = 20) -> None:
        """Until ``count`` connections were refused since the last ``cut()``: the page retried."""
        with self._lock:
            if not self._refused_changed.wait_for(lambda: self._refused >= count, timeout):
                raise AssertionError(f"only {self._refused} connection attempts during the outage")

    def restore(self) -> None:
        with self._lock:
            self._refusing = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> CuttableProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _reset(s: socket.socket) -> None:
    """Close with a TCP reset: a refused connection, as an outage shows up to the browser."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        s.close()
