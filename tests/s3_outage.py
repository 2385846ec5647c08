"""An S3 endpoint that goes away in the middle of a run, and comes back: a TCP relay to moto.

Stopping the moto server itself would lose what the bucket holds (moto keeps it in memory), and
the next run must rebuild the index from exactly that. So the runs talk to the moto server
(``tests/test_s3_store.py``'s fixture) through this relay, on its own port; :meth:`S3Outage.arm`
makes the relay stop at the first request that stores a validation result (before it, or right
after its answer), and from then on the port refuses every connection, as a stopped server's
does. :meth:`S3Outage.restore` listens on the same port again.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit


class S3Outage:
    """A relay on 127.0.0.1 to ``target`` (the moto endpoint) that can stop mid-run."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname, parts.port)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.stopped = threading.Event()
        self._marker: bytes | None = None
        self._after = True
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    def arm(self, marker: str, after: bool) -> None:
        """Stop at the first request whose bytes hold ``marker``: after its answer, or before it."""
        self._marker, self._after = marker.encode(), after

    def restore(self) -> None:
        """Listen again on the same port (the store is back)."""
        self.stopped.clear()
        self._marker = None
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Refuse from now on: the listener and every open connection are closed."""
        self.stopped.set()
        with self._lock:
            sockets, self._sockets = self._sockets, []
            listener, self._listener = self._listener, None
        for s in [*sockets, *([listener] if listener else [])]:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            stop_after = threading.Event()
            threading.Thread(
                target=self._pump, args=(client, upstream, stop_after, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, stop_after, False), daemon=True
            ).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, stop_after: threading.Event, request: bool
    ) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if request and self._marker and self._marker in data:
                    if not self._after:
                        self.stop()
                        return
                    stop_after.set()
                dst.sendall(data)
                # After the final answer: botocore sends a body after "100 Continue" only.
                if not request and stop_after.is_set() and not data.startswith(b"HTTP/1.1 100"):
                    self.stop()
                    return
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()
