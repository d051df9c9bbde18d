"""A live data path for tests: an exporter of Seldon's metrics and a Prometheus scraping it.

The exporter stands in for the data plane's pods (one per namespace): it serves the same discovery
(`GET /discovery/targets`) and, per pod, the executor's and the model server's metrics with Seldon's
families and labels (docs/seldon-metrics.md); the Prometheus runs the seed's relabelling over it
(`localenv.scrape_config`), so `seldon_deployment_id` and `kubernetes_namespace` come from there.
The counters grow at set rates from the moment it starts (rates can change at run time, counters
stay monotonic), so queries "now" see real, moving data, as in a cluster.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

import pytest
import requests

from localenv.discovery import EXECUTOR_CONTAINER, Pod, target_groups
from localenv.metrics import BUCKETS, CLIENT, FEEDBACK, FEEDBACK_REWARD, SERVER, go_float
from localenv.routes import ServedModel
from localenv.scrape_config import render
from testbed.promserver import PrometheusUnavailable, end_process, free_port, prometheus_binary

SERVER_OVERHEAD = 0.001
"""Seconds the executor adds to the model's latency (server family = client family + this)."""


@dataclass
class VersionLoad:
    """What one version (namespace) receives per second."""

    namespace: str
    predictions: float = 5.0
    feedback: float = 1.0
    latency_seconds: float = 0.02
    error_fraction: float = 0.0


class Exporter:
    """Serves discovery and each pod's metrics; counts accumulate from start at each version's rates."""

    def __init__(self, loads: list[VersionLoad], deployment: str = "iris", predictor: str = "default") -> None:
        self.loads = {load.namespace: load for load in loads}
        self.pods = {ns: Pod.start(ServedModel(ns, deployment, predictor, "classifier", "SKLEARN_SERVER", ""),
                                   "seldonio/sklearnserver") for ns in self.loads}
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], float] = {}  # (ns, service, code) -> requests
        self._sums: dict[tuple[str, str, str], float] = {}
        self._buckets: dict[tuple[str, str, str, float], float] = {}
        self._last = time.monotonic()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    def _advance(self) -> None:
        now = time.monotonic()
        dt, self._last = now - self._last, now
        for ns, load in self.loads.items():
            flows = [("predictions", "200", load.predictions * (1 - load.error_fraction)),
                     ("predictions", "500", load.predictions * load.error_fraction),
                     ("feedback", "200", load.feedback)]
            for service, code, rate in flows:
                key = (ns, service, code)
                n = rate * dt
                self._counts[key] = self._counts.get(key, 0.0) + n
                self._sums[key] = self._sums.get(key, 0.0) + n * load.latency_seconds
                for le in BUCKETS:
                    if load.latency_seconds <= le:
                        self._buckets[(*key, le)] = self._buckets.get((*key, le), 0.0) + n

    def set_load(self, namespace: str, **changes: float) -> None:
        with self._lock:
            self._advance()
            for name, value in changes.items():
                setattr(self.loads[namespace], name, value)

    def render(self, namespace: str, container: str) -> str:
        """One container's exposition: the executor's histograms or the model server's counters."""
        with self._lock:
            self._advance()
            keys = sorted(k for k in self._counts if k[0] == namespace)
            pod = self.pods[namespace]
            model = ('deployment_name="iris",predictor_name="default",model_name="classifier",'
                     'model_image="seldonio/sklearnserver",model_version="1.13.1"')
            if container != EXECUTOR_CONTAINER:
                feedback = sum(self._counts[k] for k in keys if k[1] == "feedback")
                labels = f'method="feedback",{model},predictor_version="default",worker_id="1"'
                return "".join(f"# TYPE {name}_total counter\n{name}_total{{{labels}}} {feedback:.6f}\n"
                               for name in (FEEDBACK, FEEDBACK_REWARD))
            lines = []
            for family, extra in ((CLIENT, 0.0), (SERVER, SERVER_OVERHEAD)):
                lines.append(f"# TYPE {family} histogram")
                for key in keys:
                    _, service, code = key
                    if family == CLIENT:
                        path = "/predict" if service == "predictions" else "/send-feedback"
                        labels = f'{model},predictor_version="",service="{path}",method="post",code="{code}"'
                    else:
                        labels = (f'deployment_name="{pod.served.deployment}",predictor_name="{pod.served.predictor}",'
                                  f'predictor_version="",service="{service}",method="post",code="{code}"')
                    count = self._counts[key]  # fractional counts keep sum/count exact at any instant
                    for le in BUCKETS:
                        value = self._buckets.get((*key, le), 0.0)
                        lines.append(f'{family}_bucket{{{labels},le="{go_float(le)}"}} {value:.6f}')
                    lines.append(f'{family}_bucket{{{labels},le="+Inf"}} {count:.6f}')
                    lines.append(f"{family}_sum{{{labels}}} {self._sums[key] + extra * count:.6f}")
                    lines.append(f"{family}_count{{{labels}}} {count:.6f}")
            return "\n".join(lines) + "\n"

    def _body(self, path: str) -> bytes | None:
        if path == "/discovery/targets":
            return json.dumps(target_groups(list(self.pods.values()), self.url)).encode()
        for ns, pod in self.pods.items():
            for container in pod.containers():
                if path == pod.path(container):
                    return self.render(ns, container).encode()
        return None

    def start(self) -> None:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter._body(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json" if self.path == "/discovery/targets"
                                 else "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a scrape that timed out
                    self.wfile.write(body or b"")

            def log_message(self, *_: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def rfc3339(text: str) -> float:
    """Unix seconds of an RFC 3339 time as Go writes it (`2026-12-04T18:40:00.123456789Z`, or with an
    offset); Python's parser takes at most six digits of a fraction, so the fraction is read apart."""
    match = re.fullmatch(r"([^.]+?)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    whole, fraction, zone = match.groups()
    return datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone)).timestamp() + float(fraction or 0)


class LivePrometheus:
    """A Prometheus process (started here, stopped by its handle) scraping every 500 ms the pods that
    `target` lists at `/discovery/targets`, with the seed's relabelling (`localenv.scrape_config`)."""

    def __init__(self, workdir: Path, target: str,
                 ready_query: str = f"min(count_over_time({SERVER}_count[1m])) >= 5") -> None:
        """`target`: the `host:port` of an Exporter or of the local data plane;
        `ready_query`: what must have data before `start` returns."""
        self.workdir, self.target, self.ready_query = workdir, target, ready_query
        self.url = ""
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        config = self.workdir / "prometheus.yml"
        config.write_text(render(f"http://{self.target}", "500ms"))
        self.port = self.port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(self.workdir / "prometheus.log", "ab")  # noqa: SIM115 (closed in stop)
        self._process = subprocess.Popen(
            [prometheus_binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-admin-api"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        with requests.Session() as session:
            while time.monotonic() < deadline:  # until a few scrapes have landed (the first after ~5 s in 2.42)
                if self._process.poll() is not None:
                    break
                try:
                    body = session.get(self.url + "/api/v1/query", params={"query": self.ready_query},
                                       timeout=1.0).json()
                    if body.get("data", {}).get("result"):
                        return
                except (requests.RequestException, ValueError):
                    pass
                time.sleep(0.1)
        raise PrometheusUnavailable(f"live Prometheus did not scrape {self.target} in {timeout:g}s")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def scraped_after(self, moment: float) -> bool:
        """Whether every target Prometheus scrapes now was last scraped after `moment` (Unix seconds),
        read from its targets API (`lastScrape`, RFC 3339 with nanoseconds)."""
        body = requests.get(self.url + "/api/v1/targets", params={"state": "active"}, timeout=5).json()
        targets = body["data"]["activeTargets"]
        return bool(targets) and all(rfc3339(t["lastScrape"]) > moment for t in targets)

    def stop(self) -> None:
        if self._process is not None:
            end_process(self._process)
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture(scope="session")
def live_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePrometheus]:
    """The seed's two versions with a clear difference in engagement (10 vs 7 feedback per second)."""
    exporter = Exporter([VersionLoad("ns-baseline", feedback=7.0), VersionLoad("ns-candidate", feedback=10.0)])
    exporter.start()
    server = LivePrometheus(tmp_path_factory.mktemp("live-prometheus"), exporter.url)
    try:
        try:
            server.start()
        except PrometheusUnavailable as err:
            pytest.fail(f"cannot start the live Prometheus: {err}", pytrace=False)
        yield server
    finally:
        server.stop()
        exporter.stop()
