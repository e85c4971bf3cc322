"""A real HTTP server on 127.0.0.1 with an ephemeral port, run on a daemon thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalServer:
    """Base of the fakes: ``_serve(handler_class)`` starts it; ``stop()`` and ``base_url``."""

    _server: ThreadingHTTPServer | None = None

    def _serve(self, handler) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"


def send_json(handler: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict | None = None,
              length: int | None = None) -> None:
    """One JSON answer as Binance sends it: the status line (the fake's ``send_response``), the
    content headers, the fake's own ``headers``, then ``data`` (``length`` may lie about its size)."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json;charset=UTF-8")
    handler.send_header("Content-Length", str(len(data) if length is None else length))
    for k, v in (headers or {}).items():
        handler.send_header(k, str(v))
    handler.end_headers()
    handler.wfile.write(data)


class FakeClock:
    """The fake's time (``now_ms``, guarded by ``lock``), for a client's injectable clock."""

    now_ms: int
    lock: threading.RLock

    def clock(self) -> float:
        return self.now_ms / 1000.0

    def set_time(self, now_ms: int) -> None:
        with self.lock:
            self.now_ms = int(now_ms)
