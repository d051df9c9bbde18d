"""A real Prometheus on loopback, loaded with deterministic Seldon metrics.

Shared by the pytest plugin (`testbed.prometheus`) and `benchmarks/iteration.py`; no pytest
here. The data is backfilled with `promtool tsdb create-blocks-from openmetrics` before the server
starts, so it is the same on every run: every series has one sample per `STEP` seconds, from
`HISTORY` seconds before `QUERY_TIME` up to `QUERY_TIME` itself. Counters grow linearly while a
workload is active, so `increase(...[Ns])` at `QUERY_TIME` is exact (no extrapolation) for any N that
is a multiple of `STEP` and at most `HISTORY`.

The series are what the seed's Prometheus stores from a Seldon Core v1 pod (docs/seldon-metrics.md):
the executor's server and client histograms and the model server's feedback counters, with the
labels they are exported with plus those the relabelling adds (`seldon_deployment_id`,
`kubernetes_namespace`, `job`), per protocol and transport.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import requests

from localenv.metrics import BUCKETS as BOUNDS
from localenv.metrics import CLIENT, FEEDBACK, FEEDBACK_REWARD, SERVER, go_float

QUERY_TIME = 1_700_000_000
"""The fixed evaluation time of the test data (2023-11-14T22:13:20Z), well inside `100y` retention."""
STEP = 10
"""Seconds between two samples of a series (the scrape interval the data pretends to have)."""
HISTORY = 1800
"""Seconds of data before QUERY_TIME."""
BUCKETS = (*(go_float(b) for b in BOUNDS), "+Inf")
"""The executor histograms' bucket bounds (Seldon's `DefBuckets`), as `le` label values."""
SERVER_OVERHEAD = 0.002
"""Seconds the executor adds: a server-side observation is the client-side one plus this."""
READY_TIMEOUT = 60.0

SERVER_SERVICE = {("rest", "seldon", "predictions"): "predictions", ("rest", "seldon", "feedback"): "feedback",
                  ("rest", "v2", "predictions"): "predictions",
                  ("grpc", "seldon", "predictions"): "/seldon.protos.Seldon/Predict",
                  ("grpc", "seldon", "feedback"): "/seldon.protos.Seldon/SendFeedback"}
"""The server family's `service` by (transport, protocol, call); V2 has no feedback endpoint."""
CLIENT_SERVICE = {("rest", "seldon", "predictions"): "/predict", ("rest", "seldon", "feedback"): "/send-feedback",
                  ("rest", "v2", "predictions"): "/v2/models/classifier/infer",
                  ("grpc", "seldon", "predictions"): "/seldon.protos.Model/Predict",
                  ("grpc", "seldon", "feedback"): "/seldon.protos.Model/SendFeedback"}
"""The client family's `service`: the model's own endpoint."""
GRPC_CODES = {"200": "OK", "500": "Internal"}


class PrometheusUnavailable(RuntimeError):
    """The prometheus or promtool binary is missing, or the server did not come up with the data."""


@dataclass(frozen=True)
class Observation:
    """`per_step` calls (`predictions` or `feedback`) every STEP seconds, answered with `code` (an
    HTTP status; the gRPC name over gRPC), each taking `seconds` at the model; `reward` per feedback."""

    service: str
    code: str
    seconds: float
    per_step: int
    reward: float = 1.0


@dataclass(frozen=True)
class Workload:
    """The traffic one version (one namespace) receives."""

    namespace: str
    observations: tuple[Observation, ...]
    sid: str = "iris"
    predictor: str = "default"
    quiet_seconds: int = 0
    """Traffic stops this many seconds before QUERY_TIME (the series stay, flat)."""
    transport: str = "rest"
    protocol: str = "seldon"
    job: str = "kubernetes-pods"
    """The scrape job (a target label) of its series."""


BASELINE = Workload("ns-baseline", (
    Observation("predictions", "200", 0.03, 10),
    Observation("predictions", "200", 0.06, 8),
    Observation("predictions", "200", 0.11, 1),
    Observation("predictions", "500", 0.11, 1),
    Observation("feedback", "200", 4.0, 2, reward=0.5),
))
"""20 predictions per step (one of them an HTTP 500), mean 50 ms at the model (52 ms at the executor),
p95 175 ms; 2 feedback calls of 4 s, reward 0.5 each."""
CANDIDATE = Workload("ns-candidate", (
    Observation("predictions", "200", 0.02, 20),
    Observation("predictions", "200", 0.04, 9),
    Observation("predictions", "200", 0.2, 1),
    Observation("feedback", "200", 4.0, 5),
))
"""30 predictions per step, no errors, mean 32 ms at the model (34 ms at the executor); 5 feedback
calls of 4 s, reward 1 each."""
PAUSED = Workload("ns-paused", BASELINE.observations, quiet_seconds=900)
"""Had the baseline's traffic, but none in the last 900 s: series exist, every increase is 0."""
V2 = Workload("ns-v2", tuple(o for o in CANDIDATE.observations if o.service == "predictions"), protocol="v2")
"""The candidate's predictions with the V2 protocol over REST (which has no feedback endpoint)."""
GRPC = Workload("ns-grpc", BASELINE.observations, transport="grpc")
"""The baseline's traffic with the seldon protocol over gRPC."""
IDLE_NAMESPACE = "ns-idle"
"""A namespace with no series at all."""
STANDARD_DATASET = (BASELINE, CANDIDATE, PAUSED, V2, GRPC)


def _label_text(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}"


def _target_labels(workload: Workload) -> list[tuple[str, str]]:
    """What the exporters emit for every series, plus what the seed's relabelling adds."""
    return [("job", workload.job), ("seldon_deployment_id", workload.sid),
            ("kubernetes_namespace", workload.namespace), ("deployment_name", workload.sid),
            ("predictor_name", workload.predictor)]


def _call_labels(family: str, workload: Workload, call: str, code: str) -> list[tuple[str, str]] | None:
    key = (workload.transport, workload.protocol, call)
    service = (SERVER_SERVICE if family == SERVER else CLIENT_SERVICE).get(key)
    if service is None:
        return None
    grpc = workload.transport == "grpc"
    pairs = [*_target_labels(workload), ("service", service), ("method", "unary" if grpc else "post"),
             ("code", GRPC_CODES[code] if grpc else code)]
    if family == CLIENT:
        pairs += [("model_name", "classifier"), ("model_image", "seldonio/sklearnserver"), ("model_version", "1.13.1")]
    return pairs


def _number(value: float) -> str:
    return repr(round(value, 9))


def _steps(workload: Workload) -> Iterator[tuple[int, int]]:
    """(active steps so far, timestamp) for every sample time."""
    last_active = (HISTORY - workload.quiet_seconds) // STEP
    for step in range(HISTORY // STEP + 1):
        yield min(step, last_active), QUERY_TIME - HISTORY + step * STEP


def _histogram_lines(family: str, workload: Workload, overhead: float) -> Iterator[str]:
    groups: dict[tuple[str, str], list[Observation]] = {}
    for obs in workload.observations:
        groups.setdefault((obs.service, obs.code), []).append(obs)
    for (call, code), group in sorted(groups.items()):
        labels = _call_labels(family, workload, call, code)
        if labels is None:
            continue
        per_bucket = [sum(o.per_step for o in group if le == "+Inf" or o.seconds + overhead <= float(le))
                      for le in BUCKETS]
        per_count = sum(o.per_step for o in group)
        per_sum = sum(o.per_step * (o.seconds + overhead) for o in group)
        for k, at in _steps(workload):
            for le, n in zip(BUCKETS, per_bucket, strict=True):
                yield f"{family}_bucket{_label_text([*labels, ('le', le)])} {k * n} {at}"
            yield f"{family}_count{_label_text(labels)} {k * per_count} {at}"
            yield f"{family}_sum{_label_text(labels)} {_number(k * per_sum)} {at}"


def _counter_lines(name: str, workload: Workload) -> Iterator[str]:
    """One of the model server's feedback counters (seldon protocol only; non-zero rewards only)."""
    feedback = [o for o in workload.observations if o.service == "feedback" and o.code == "200" and o.reward]
    if workload.protocol != "seldon" or not feedback:
        return
    labels = _label_text([*_target_labels(workload), ("method", "feedback"), ("model_name", "classifier"),
                          ("predictor_version", workload.predictor)])
    per_step = sum(o.per_step * (o.reward if name == FEEDBACK_REWARD else 1) for o in feedback)
    for k, at in _steps(workload):
        yield f"{name}_total{labels} {_number(k * per_step)} {at}"


def openmetrics(workloads: Iterable[Workload]) -> str:
    """Every family for `workloads`, in the OpenMetrics text that promtool backfills."""
    workloads = tuple(workloads)
    lines: list[str] = []
    for family, overhead in ((CLIENT, 0.0), (SERVER, SERVER_OVERHEAD)):
        lines.append(f"# TYPE {family} histogram")
        for workload in workloads:
            lines.extend(_histogram_lines(family, workload, overhead))
    for name in (FEEDBACK, FEEDBACK_REWARD):
        lines.append(f"# TYPE {name} counter")
        for workload in workloads:
            lines.extend(_counter_lines(name, workload))
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def series_count(workloads: Iterable[Workload]) -> int:
    """How many executor series (`seldon_api_executor_*`) `openmetrics(workloads)` writes."""
    per_labelset = len(BUCKETS) + 2
    return sum(per_labelset * sum(1 for family in (CLIENT, SERVER)
                                  for call, code in {(o.service, o.code) for o in w.observations}
                                  if _call_labels(family, w, call, code) is not None)
               for w in workloads)


def prometheus_binary(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise PrometheusUnavailable(
            f"`{name}` is not on PATH: install Prometheus (Debian/Ubuntu: `apt-get install prometheus`, "
            "which brings promtool); the tests need a real server")
    return found


def end_process(process: subprocess.Popen[Any], grace: float = 15.0) -> None:
    """End a process this code started, by its handle: SIGTERM, then SIGKILL after `grace` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrometheusServer:
    """One Prometheus process this object started, with its data dir, port and log."""

    def __init__(self, workdir: Path, workloads: Iterable[Workload] = STANDARD_DATASET,
                 scrape_configs: str = "[]") -> None:
        """`scrape_configs`: the configuration's `scrape_configs` (YAML), e.g. static targets with their own
        `scrape_interval`, which the targets API then lists (none by default)."""
        self.workdir = workdir
        self.workloads = tuple(workloads)
        self.scrape_configs = scrape_configs
        self.query_time = QUERY_TIME
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        prometheus, promtool = prometheus_binary("prometheus"), prometheus_binary("promtool")
        data = self.workdir / "data"
        data.mkdir(parents=True)
        source = self.workdir / "data.om"
        source.write_text(openmetrics(self.workloads))
        backfill = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet",
                                   str(source), str(data)], capture_output=True, text=True, check=False)
        if backfill.returncode != 0:
            raise PrometheusUnavailable(f"promtool backfill failed: {backfill.stderr.strip()}")
        config = self.workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 100ms\n  evaluation_interval: 100ms\n"
                          f"scrape_configs: {self.scrape_configs}\n")
        for _ in range(3):  # another process may take the free port between probe and bind
            port = free_port()
            self._spawn(prometheus, config, data, port)
            if self._wait_ready(f"http://127.0.0.1:{port}"):
                self.url = f"http://127.0.0.1:{port}"
                self._check_data()
                return
            self.stop()
        raise PrometheusUnavailable(f"prometheus did not become ready; log:\n{self.log_tail()}")

    def _spawn(self, binary: str, config: Path, data: Path, port: int) -> None:
        self._log = open(self.workdir / "prometheus.log", "ab")  # noqa: SIM115 (closed in stop)
        self._process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={data}",
             f"--web.listen-address=127.0.0.1:{port}", "--web.enable-admin-api",
             "--storage.tsdb.retention.time=100y"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

    def _wait_ready(self, url: str) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + READY_TIMEOUT
        with requests.Session() as session:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    return False
                try:
                    if session.get(url + "/-/ready", timeout=1.0).status_code == 200:
                        return True
                except requests.RequestException:
                    pass
                time.sleep(0.05)  # polling interval under a deadline, not a wait for luck
        return False

    def _check_data(self) -> None:
        expected = series_count(self.workloads)
        body = self.query('count({__name__=~"seldon_api_executor_.+"}) or vector(0)')
        loaded = int(float(body["data"]["result"][0]["value"][1]))
        if loaded != expected:
            raise PrometheusUnavailable(f"backfilled {loaded} series, expected {expected}; log:\n{self.log_tail()}")

    def query(self, promql: str, at: float | None = None) -> dict[str, Any]:
        """The raw JSON body of an instant query at `at` (default: QUERY_TIME)."""
        with requests.Session() as session:
            response = session.get(self.url + "/api/v1/query", timeout=10.0,
                                   params={"query": promql, "time": str(at if at is not None else QUERY_TIME)})
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body

    def log_tail(self, lines: int = 20) -> str:
        path = self.workdir / "prometheus.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        """Stop the process this object started (by its handle), then close its log."""
        if self._process is not None:
            end_process(self._process)
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None


@contextmanager
def running_prometheus(workloads: Iterable[Workload] = STANDARD_DATASET, workdir: Path | None = None,
                       scrape_configs: str = "[]") -> Iterator[PrometheusServer]:
    """A started server for the `with` block; stopped (and its temporary dir removed) afterwards."""
    with tempfile.TemporaryDirectory(prefix="prometheus-") as tmp:
        server = PrometheusServer(workdir or Path(tmp), workloads, scrape_configs)
        try:
            server.start()
            yield server
        finally:
            server.stop()

