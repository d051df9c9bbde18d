"""A pass-through in front of a real Prometheus that answers chosen queries empty, on demand.

A real Prometheus answers an empty vector only when no series matches, which a test cannot make
happen for one look of a running experiment; production Prometheus does it after a scrape gap, a
relabelling change or a rule outage. Every other request (GET) gets Prometheus's own status and body.
`blank(predicate, times)` answers the next `times` queries whose PromQL matches with
`{"status": "success", "data": {"resultType": "vector", "result": []}}`; `blanked` lists them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import requests

from testbed.loopback import LoopbackServer, QuietHandler

EMPTY = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()


class BlankingProxy(LoopbackServer):
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.blanked: list[str] = []
        self._predicate: Callable[[str], bool] = lambda _q: False
        self._times = 0
        self._lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self._listen(self._handler(), 'blanking-proxy')}"

    def blank(self, predicate: Callable[[str], bool], times: int = 1) -> None:
        with self._lock:
            self._predicate, self._times = predicate, times

    def _take(self, query: str) -> bool:
        with self._lock:
            if self._times > 0 and self._predicate(query):
                self._times -= 1
                self.blanked.append(query)
                return True
            return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                query = (parse_qs(urlsplit(self.path).query).get("query") or [""])[0]
                if proxy._take(query):
                    status, body = 200, EMPTY
                else:
                    answer = requests.get(proxy.upstream + self.path, timeout=10)
                    status, body = answer.status_code, answer.content
                self.send_json(status, body)

        return Handler
