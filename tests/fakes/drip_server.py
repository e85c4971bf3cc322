"""A server that never finishes its answer: real HTTP on 127.0.0.1, one byte every ``every`` seconds.

``where="body"`` sends a complete status line and headers (with a large Content-Length) and then
drips the body; ``where="headers"`` drips the header block itself. Each connection gets its own
thread; ``stop()`` ends the drips at once.
"""

from __future__ import annotations

import socket
import threading
from email.utils import formatdate

from .local_server import LocalServer


class DripServer(LocalServer):
    def __init__(self, every: float = 0.2, where: str = "body"):
        if where not in ("body", "headers"):
            raise ValueError(where)
        self.every, self.where = every, where
        self.connections = 0
        self._stopping = threading.Event()

    def start(self) -> "DripServer":
        from http.server import BaseHTTPRequestHandler

        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.connections += 1
                head = (f"HTTP/1.1 200 OK\r\nDate: {formatdate(usegmt=True)}\r\n"
                        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n").encode()
                try:
                    if server.where == "body":
                        self.wfile.write(head)
                        self.wfile.flush()
                        data = b"[" + b" " * 99_999
                    else:
                        data = head
                    for i in range(len(data)):
                        if server._stopping.wait(server.every):
                            return
                        self.wfile.write(data[i:i + 1])
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError, socket.error):
                    return

        self._serve(Handler)
        return self

    def stop(self) -> None:
        self._stopping.set()
        super().stop()
