"""A webhook receiver on loopback that fails on demand (status, slowness), for notification tests."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from testbed.loopback import LoopbackServer, QuietHandler


@dataclass
class WebhookReceiver(LoopbackServer):
    """Records each JSON body posted to it; answers `status`, after `delay` seconds."""

    path: str = "/hook"
    status: int = 200
    delay: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                receiver.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                if receiver.delay:
                    time.sleep(receiver.delay)  # the failure under test: slower than the sender's timeout
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.url = f"http://127.0.0.1:{self._listen(Handler, 'webhook-receiver')}{self.path}"

    def reset(self) -> None:
        self.status, self.delay = 200, 0.0
        self.received.clear()


@dataclass
class SlowDripReceiver(LoopbackServer):
    """Answers every POST one byte every `interval` seconds (status line, headers, then a body): each read
    is quick, so only a deadline on the whole delivery stops a sender from waiting it out."""

    interval: float = 0.5
    url: str = ""
    posts: int = 0

    def __post_init__(self) -> None:
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.posts += 1
                answer = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n" + b"x" * 20
                try:
                    for byte in answer:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(receiver.interval)
                except OSError:
                    pass  # the sender gave up
                self.close_connection = True

        self.url = f"http://127.0.0.1:{self._listen(Handler, 'slow-drip-receiver')}/hook"
