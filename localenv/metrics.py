"""The series a Seldon Core v1 pod exports, per container, as docs/seldon-metrics.md lists them.

- the executor (`ExecutorMetrics`): `seldon_api_executor_server_requests_seconds` (every request it
  receives; `service` = `predictions`, `feedback`) and `seldon_api_executor_client_requests_seconds`
  (its calls to the model; `service` = the model's path, `/predict`, `/send-feedback`), each a
  histogram with Seldon's buckets plus a `_summary` twin with Seldon's quantiles;
- the model server (`ModelServerMetrics`), as the Python `seldon-core` wrapper exports them:
  `seldon_api_model_feedback_total` and `seldon_api_model_feedback_reward_total`, counted only for
  feedback with a non-zero reward, the reward taken as a float32.

Neither emits `seldon_deployment_id` or `kubernetes_namespace`: in a cluster Prometheus adds them
from the pod's labels and namespace, here from the discovery targets (`localenv/discovery.py`).
A series exists from its first observation on, as with the Go client's vectors.
"""

from __future__ import annotations

import math
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

SERVER = "seldon_api_executor_server_requests_seconds"
CLIENT = "seldon_api_executor_client_requests_seconds"
SUMMARY_SUFFIX = "_summary"
FEEDBACK = "seldon_api_model_feedback"
FEEDBACK_REWARD = "seldon_api_model_feedback_reward"
"""Counter names as the wrapper declares them; the exposition adds `_total`."""

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""executor/api/metric/constants.go `DefBuckets`."""
QUANTILES = (0.5, 0.75, 0.9, 0.98, 0.99, 1.0)
"""executor/api/metric/constants.go `DefObjectives`."""
SUMMARY_MAX_AGE = 600.0
"""The Go client's default summary window (10 minutes)."""
SUMMARY_MAX_SAMPLES = 20_000
"""Observations kept per series for the quantiles (the oldest go first); the Go client estimates instead."""

SERVER_LABELS = ("deployment_name", "predictor_name", "predictor_version", "service", "method", "code")
CLIENT_LABELS = ("deployment_name", "predictor_name", "predictor_version", "service", "model_name", "model_image",
                 "model_version", "method", "code")
MODEL_SERVER_LABELS = ("method", "deployment_name", "model_name", "model_image", "model_version", "predictor_name",
                       "predictor_version", "seldon_deployment_name", "image_name", "image_version", "worker_id")
HELP = {
    SERVER: "A histogram of latencies for executor server",
    SERVER + SUMMARY_SUFFIX: "A summary of latencies for executor server",
    CLIENT: "A histogram of latencies for client calls from executor",
    CLIENT + SUMMARY_SUFFIX: "A summary of latencies for client calls from executor",
}
CONTENT_TYPE = CONTENT_TYPE_LATEST


def go_float(value: float) -> str:
    """A bucket bound or quantile as Go's client writes it (`1`, `0.075`), not Python's `1.0`."""
    return format(value, "g")


@dataclass
class _Timings:
    count: int = 0
    total: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    recent: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=SUMMARY_MAX_SAMPLES))

    def observe(self, seconds: float, now: float) -> None:
        self.count += 1
        self.total += seconds
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.buckets[i] += 1
        self.recent.append((now, seconds))

    def quantiles(self, now: float) -> list[float]:
        while self.recent and self.recent[0][0] < now - SUMMARY_MAX_AGE:
            self.recent.popleft()
        values = sorted(v for _, v in self.recent)
        if not values:
            return [math.nan] * len(QUANTILES)
        return [values[max(0, math.ceil(q * len(values)) - 1)] for q in QUANTILES]


class TimingFamily:
    """A histogram and its `_summary` twin over the same observations, as the executor registers them."""

    def __init__(self, name: str, labelnames: tuple[str, ...]) -> None:
        self.name, self.labelnames = name, labelnames
        self._series: dict[tuple[str, ...], _Timings] = {}

    def observe(self, labels: tuple[str, ...], seconds: float, now: float) -> None:
        self._series.setdefault(labels, _Timings()).observe(seconds, now)

    def collect(self, now: float) -> Iterator[Metric]:
        if not self._series:
            return
        histogram = HistogramMetricFamily(self.name, HELP[self.name], labels=self.labelnames)
        summary = Metric(self.name + SUMMARY_SUFFIX, HELP[self.name + SUMMARY_SUFFIX], "summary")
        for labels, t in sorted(self._series.items()):
            cumulative = [(go_float(b), float(n)) for b, n in zip(BUCKETS, t.buckets, strict=True)]
            histogram.add_metric(list(labels), [*cumulative, ("+Inf", float(t.count))], t.total)
            named = dict(zip(self.labelnames, labels, strict=True))
            for q, value in zip(QUANTILES, t.quantiles(now), strict=True):
                summary.add_sample(summary.name, {**named, "quantile": go_float(q)}, value)
            summary.add_sample(summary.name + "_sum", named, t.total)
            summary.add_sample(summary.name + "_count", named, float(t.count))
        yield histogram
        yield summary


class Exporter(Collector):
    """One container's metrics endpoint: its own registry, never the process-global one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)

    def collect(self) -> Iterator[Metric]:
        raise NotImplementedError

    def exposition(self) -> bytes:
        """The Prometheus text format of every series."""
        return generate_latest(self._registry)


class ExecutorMetrics(Exporter):
    """What one executor (`seldon-container-engine`) exports, REST transport."""

    def __init__(self, deployment: str, predictor: str, predictor_version: str = "") -> None:
        super().__init__()
        self._common = (deployment, predictor, predictor_version)
        self._server = TimingFamily(SERVER, SERVER_LABELS)
        self._client = TimingFamily(CLIENT, CLIENT_LABELS)

    def server_request(self, service: str, code: int, seconds: float, method: str = "post") -> None:
        with self._lock:
            self._server.observe((*self._common, service, method, str(code)), seconds, time.monotonic())

    def client_request(self, service: str, model_name: str, image: str, code: int, seconds: float,
                       method: str = "post") -> None:
        image_name, _, image_version = image.partition(":")
        with self._lock:
            self._client.observe((*self._common, service, model_name, image_name, image_version, method, str(code)),
                                 seconds, time.monotonic())

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            families = [*self._server.collect(now), *self._client.collect(now)]
        yield from families


def float32(value: float) -> float:
    """The value a protobuf `float` field holds (the wrapper parses `reward` into one)."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


class ModelServerMetrics(Exporter):
    """What the Python wrapper of one model container exports: the feedback counters."""

    def __init__(self, deployment: str, predictor: str, predictor_version: str, model_name: str, image: str,
                 worker_id: str) -> None:
        super().__init__()
        *name_parts, version = image.split(":")
        image_name = ":".join(name_parts)
        self._labels = ["feedback", deployment, model_name, image_name, version, predictor, predictor_version,
                        deployment, image_name, version, worker_id]
        self._feedback = 0.0
        self._reward = 0.0

    def reward(self, value: float) -> None:
        """`SeldonMetrics.update_reward`: nothing for a zero reward."""
        value = float32(value)
        if not value:
            return
        with self._lock:
            self._feedback += 1
            self._reward += value

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if not self._feedback:
                return
            counts = (self._feedback, self._reward)
        for name, value in zip((FEEDBACK, FEEDBACK_REWARD), counts, strict=True):
            family = CounterMetricFamily(name, "", labels=MODEL_SERVER_LABELS)
            family.add_metric(self._labels, value)
            yield family
