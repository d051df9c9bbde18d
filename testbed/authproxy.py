"""A bearer-token gate in front of a real Prometheus, as a production Prometheus sits behind an auth proxy.

Requests without `Authorization: Bearer <token>` get 401; the others are forwarded (GET only) and
answered with Prometheus's own status and body. `authorized` and `refused` count what came through.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler

import requests

from testbed.loopback import LoopbackServer, QuietHandler


class AuthProxy(LoopbackServer):
    """Started and stopped by its owner (`with AuthProxy(upstream, token) as proxy:`), on a free loopback port."""

    def __init__(self, upstream: str, token: str) -> None:
        self.upstream, self.token = upstream.rstrip("/"), token
        self.authorized = 0
        self.refused = 0
        self._lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self._listen(self._handler(), 'auth-proxy')}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                allowed = self.headers.get("Authorization") == f"Bearer {proxy.token}"
                with proxy._lock:
                    if allowed:
                        proxy.authorized += 1
                    else:
                        proxy.refused += 1
                if allowed:
                    answer = requests.get(proxy.upstream + self.path, timeout=10)
                    status, body = answer.status_code, answer.content
                else:
                    status, body = 401, b'{"status":"error","error":"unauthorized"}'
                self.send_json(status, body)

        return Handler
