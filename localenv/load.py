"""Runs the loads the fortio Jobs describe, like fortio does, and stops each when its Job goes away.

A load of `qps` over `c` connections runs `c` threads, each with its own HTTP keep-alive session,
each sending every `c/qps` seconds, staggered by `1/qps`: requests leave evenly spaced at `qps` in
total. A thread that falls behind (slow answers) sends at once until it is back on schedule, as
fortio does. Targets must be loopback addresses: the data plane never sends load anywhere else.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping
from urllib.parse import urlsplit

import requests

from localenv.fortio import LoadSpec

log = logging.getLogger(__name__)


class NotLoopback(ValueError):
    """A load whose URL is not on this machine's loopback."""


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise NotLoopback(f"load target {url!r} is not a loopback address; not sending")


class LoadRunner:
    """One running load; `stop` asks its threads to finish and returns at once."""

    def __init__(self, spec: LoadSpec) -> None:
        check_loopback(spec.url)
        self.spec = spec
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent = 0
        self._codes: Counter[str] = Counter()
        self._threads = [threading.Thread(target=self._connection, args=(i,), name=f"load-{spec.job}-{i}",
                                          daemon=True) for i in range(spec.connections)]
        self._started = time.monotonic()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> bool:
        """Wait until every thread has ended; False if some are still running after `timeout`."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not self.running()

    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {"job": self.spec.job, "url": self.spec.url, "qps": self.spec.qps, "sent": self._sent,
                    "codes": dict(self._codes), "running": self.running()}

    def _take_call(self) -> bool:
        with self._lock:
            if self.spec.calls is not None and self._sent >= self.spec.calls:
                return False
            self._sent += 1
            return True

    def _connection(self, index: int) -> None:
        spec = self.spec
        headers = dict(spec.headers)
        with requests.Session() as session:
            for call in itertools.count():
                offset = (index + call * spec.connections) / spec.qps
                if spec.duration_seconds is not None and offset >= spec.duration_seconds:
                    return
                wait = self._started + offset - time.monotonic()
                if self._stop.wait(wait) if wait > 0 else self._stop.is_set():
                    return
                if not self._take_call():
                    return
                try:
                    response = session.request(spec.method, spec.url, data=spec.payload, headers=headers,
                                               timeout=spec.timeout_seconds)
                    code = str(response.status_code)
                except requests.RequestException as err:
                    log.debug("%s: %s", spec.job, err)
                    code = "error"
                with self._lock:
                    self._codes[code] += 1


class Loads:
    """The loads in force, keyed by Job identity; `reconcile` starts new ones and stops removed ones."""

    def __init__(self) -> None:
        self._runners: dict[str, LoadRunner] = {}
        self._stopping: list[LoadRunner] = []
        self._refused: set[LoadSpec] = set()
        self._lock = threading.Lock()

    def reconcile(self, wanted: Mapping[str, LoadSpec]) -> None:
        with self._lock:
            for key, runner in list(self._runners.items()):
                if wanted.get(key) != runner.spec:
                    log.info("load %s stopped (its Job is gone or changed)", runner.spec.job)
                    runner.stop()
                    self._stopping.append(self._runners.pop(key))
            for key, spec in wanted.items():
                if key in self._runners or spec in self._refused:
                    continue
                try:
                    self._runners[key] = LoadRunner(spec)
                except NotLoopback as err:
                    log.warning("Job %s: %s", spec.job, err)
                    self._refused.add(spec)
                    continue
                log.info("load %s started: %g qps %s %s over %d connections", spec.job, spec.qps, spec.method,
                         spec.url, spec.connections)
            self._stopping = [r for r in self._stopping if r.running()]

    def stats(self) -> list[dict[str, object]]:
        with self._lock:
            return [{"key": key, **r.stats()} for key, r in self._runners.items()]

    def stop_all(self, timeout: float) -> None:
        with self._lock:
            runners = [*self._runners.values(), *self._stopping]
            self._runners.clear()
            self._stopping = []
        for runner in runners:
            runner.stop()
        deadline = time.monotonic() + timeout
        for runner in runners:
            if not runner.join(max(0.0, deadline - time.monotonic())):
                log.warning("load %s still sending after %.0fs", runner.spec.job, timeout)

    def stopping(self) -> list[LoadRunner]:
        with self._lock:
            return list(self._stopping)
