"""A scripted HTTP(S) server on a free loopback port: each request gets the next reply of its script.

For the client's failure paths a real Prometheus cannot produce on demand: N failures then an answer,
401/403, a dropped connection, a slow answer, a certificate nobody trusts. Tests start it with
`with ScriptedServer(...) as server:` (stopped on exit) and read `server.requests` afterwards.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from testbed.loopback import LoopbackServer, QuietHandler

BUILD_INFO = {"status": "success", "data": {"version": "2.99.0", "revision": "stub"}}


def vector(value: str) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, value]}]}}


@dataclass(frozen=True)
class Reply:
    """One answer: a status and a JSON (or text) body, after `delay` seconds; or a dropped connection."""

    status: int = 200
    body: dict[str, Any] | str = "{}"
    delay: float = 0.0
    drop: bool = False
    """Close the connection without answering (the client sees the server disconnect)."""


def answer(value: str = "42.5") -> Reply:
    """A successful instant query with one series."""
    return Reply(200, vector(value))


@dataclass(frozen=True)
class Seen:
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]
    at: float
    """time.monotonic() when the request arrived."""


class ScriptedServer(LoopbackServer):
    """Replies to each request with the next entry of `script`, then with `default` (build info on its path)."""

    def __init__(self, *script: Reply, default: Reply | None = None, tls: tuple[Path, Path] | None = None) -> None:
        self.script: deque[Reply] = deque(script)
        self.default = default or answer()
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        port = self._listen(self._handler(), "scripted-server")
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile=str(tls[0]), keyfile=str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{port}"

    def _next(self, path: str) -> Reply:
        with self._lock:
            if self.script:
                return self.script.popleft()
        return Reply(200, BUILD_INFO) if path.endswith("/status/buildinfo") else self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                with server._lock:
                    server.requests.append(Seen(parts.path, parse_qs(parts.query), dict(self.headers), time.monotonic()))
                reply = server._next(parts.path)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                body = (reply.body if isinstance(reply.body, str) else json.dumps(reply.body)).encode()
                with contextlib.suppress(OSError):  # the client gave up first
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

        return Handler


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no system trusts, and its key (made with the `openssl` command)."""
    cert, key = directory / "server.pem", directory / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key
