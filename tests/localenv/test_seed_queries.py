"""The seed's six queries, verbatim, against the local environment: what they give on a real cluster.

The data plane (real models, a fake cluster) exports Seldon's families per pod; a real Prometheus
discovers the pods and applies the seed's relabelling (`localenv.scrape_config`); the queries come
from the seed's metrics.yaml (tests/localenv/data/seed-metrics.yaml) untouched. Known traffic per
version, in four waves: 5 predictions with 60 ms of injected model latency and 5 feedback calls
(rewards 0.5 on the baseline, 1 on the candidate); every 5th candidate prediction fails (500); the
baseline also gets one malformed feedback (400) per wave. Counts come back through `increase()`, so
Prometheus's extrapolation to the window's edges blurs them by a few percent: the assertions are
about properties that differ by large factors, each against the data plane's own counters.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from components.metrics.seldon import LIBRARY_METRICS
from localenv.app import DataPlane
from localenv.models import Model
from rollout.core.templating import render
from testbed.fakes import FakeCluster
from testbed.live import LivePrometheus
from testbed.promserver import PrometheusUnavailable
from testbed.waiting import wait_for
from tests.localenv.helpers import SEED_PAYLOAD, Samples, samples

SEED_METRICS_YAML = Path(__file__).parent / "data" / "seed-metrics.yaml"
NAMESPACES = ("ns-baseline", "ns-candidate")
WAVES, PREDICTIONS, FEEDBACK = 4, 5, 5
LATENCY = 0.060
REWARD = {"ns-baseline": 0.5, "ns-candidate": 1.0}
CLIENT = "seldon_api_executor_client_requests_seconds"
SERVER = "seldon_api_executor_server_requests_seconds"
BLUR = 0.2
"""Relative tolerance for one `increase()` (extrapolation over a ~10 s window scraped every 0.5 s)."""


def seed_queries() -> dict[str, str]:
    docs = yaml.safe_load_all(SEED_METRICS_YAML.read_text())
    return {d["metadata"]["name"]: d["spec"]["params"][0]["value"] for d in docs if d["kind"] == "Metric"}


@dataclass
class Measured:
    prometheus: LivePrometheus
    started: float
    at: float
    delta: dict[str, Samples]
    """Per namespace: the data plane's own counters over the measured waves (end minus start)."""

    def query(self, promql: str, namespace: str) -> float | None:
        elapsed = max(1, int(self.at - self.started))
        text = render(promql, {"sid": "iris", "predictor": "default", "ns": namespace, "elapsedTime": str(elapsed)})
        body = requests.get(self.prometheus.url + "/api/v1/query", params={"query": text, "time": str(self.at)},
                            timeout=10).json()
        assert body["status"] == "success", body
        result = body["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def seed(self, name: str, namespace: str) -> float:
        value = self.query(seed_queries()[name], namespace)
        assert value is not None, f"the seed's {name} has no data for {namespace}"
        return value

    def library(self, name: str, namespace: str) -> float:
        value = self.query(next(m["query"] for m in LIBRARY_METRICS if m["name"] == name), namespace)
        assert value is not None, f"the library's {name} has no data for {namespace}"
        return value

    def total(self, namespace: str, sample: str, **labels: str) -> float:
        """The data plane's own increase of `sample` over the waves, summed over series with `labels`."""
        wanted = set(labels.items())
        return sum(v for (name, ls), v in self.delta[namespace].items() if name == sample and wanted <= ls)


def _minus(after: Samples, before: Samples) -> Samples:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def _newest_sample(prometheus: LivePrometheus, query: str) -> float:
    body = requests.get(prometheus.url + "/api/v1/query", params={"query": f"max(timestamp({query}))"},
                        timeout=10).json()
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def _scraped(prometheus: LivePrometheus, counts: dict[str, float]) -> bool:
    body = requests.get(prometheus.url + "/api/v1/query", timeout=10, params={
        "query": f"sum by (kubernetes_namespace) ({SERVER}_count)"}).json()
    seen = {r["metric"]["kubernetes_namespace"]: float(r["value"][1]) for r in body["data"]["result"]}
    return all(seen.get(ns) == n for ns, n in counts.items())


def _server_counts(http: requests.Session, url: str) -> dict[str, float]:
    found = samples(http, url)
    return {ns: sum(v for (name, labels), v in found.items()
                    if name == f"{SERVER}_count" and ("kubernetes_namespace", ns) in labels) for ns in NAMESPACES}


@pytest.fixture(scope="module")
def measured(models: dict[str, Model], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Measured]:
    cluster = FakeCluster(50, 50)
    with DataPlane(cluster, poll_seconds=0.05, models=models) as plane, requests.Session() as http:
        prometheus = LivePrometheus(tmp_path_factory.mktemp("seed-queries"), plane.url.removeprefix("http://"),
                                    ready_query="vector(1)")
        try:
            prometheus.start()
        except PrometheusUnavailable as err:
            pytest.fail(f"cannot start the live Prometheus: {err}", pytrace=False)
        try:
            # Warm-up: every series exists before the window starts. A series is born with its first
            # observation, so `increase()` never counts that one (as on a cluster): a first error in
            # the window would go missing.
            http.post(f"{plane.url}/admin/faults", json={"ns-candidate": {"errorRate": 1.0}}, timeout=10)
            http.post(f"{plane.url}/seldon/ns-candidate/iris/api/v1.0/predictions", data=SEED_PAYLOAD, timeout=10)
            http.delete(f"{plane.url}/admin/faults", timeout=10)
            for ns in NAMESPACES:
                http.post(f"{plane.url}/seldon/{ns}/iris/api/v1.0/predictions", data=SEED_PAYLOAD, timeout=10)
                http.post(f"{plane.url}/seldon/{ns}/iris/api/v1.0/feedback", json={"reward": REWARD[ns]}, timeout=10)
            http.post(f"{plane.url}/seldon/ns-baseline/iris/api/v1.0/feedback", json={"reward": "lots"}, timeout=10)
            warm = _server_counts(http, plane.url)
            wait_for(lambda: _scraped(prometheus, warm), 30, "the warm-up scraped", every=0.1)
            started = time.time()
            # Traffic starts once a sample at least 1 s after `started` holds the warm-up only: the
            # window (whole seconds back from the query time) then begins before any measured call.
            wait_for(lambda: _newest_sample(prometheus, f"{SERVER}_count") >= started + 1, 30,
                     "a scrape 1 s after the start", every=0.1)
            before = samples(http, plane.url)
            http.post(f"{plane.url}/admin/faults", timeout=10, json={
                "ns-baseline": {"extraLatencyMs": LATENCY * 1000},
                "ns-candidate": {"errorRate": 0.2, "extraLatencyMs": LATENCY * 1000}})
            for _ in range(WAVES):
                for ns in NAMESPACES:
                    for _ in range(PREDICTIONS):
                        http.post(f"{plane.url}/seldon/{ns}/iris/api/v1.0/predictions", data=SEED_PAYLOAD,
                                  timeout=10)
                    for _ in range(FEEDBACK):
                        http.post(f"{plane.url}/seldon/{ns}/iris/api/v1.0/feedback", json={"reward": REWARD[ns]},
                                  timeout=10)
                http.post(f"{plane.url}/seldon/ns-baseline/iris/api/v1.0/feedback", json={"reward": "lots"},
                          timeout=10)
                counts = _server_counts(http, plane.url)
                wait_for(functools.partial(_scraped, prometheus, counts), 30, "a wave scraped", every=0.1)
            after = samples(http, plane.url)
            delta = {ns: {k: v for k, v in _minus(after, before).items() if ("kubernetes_namespace", ns) in k[1]}
                     for ns in NAMESPACES}
            yield Measured(prometheus, started, time.time(), delta)
        finally:
            prometheus.stop()


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_request_count_sums_the_seconds_of_model_calls(measured: Measured, namespace: str) -> None:
    value = measured.seed("request-count", namespace)
    model_seconds = measured.total(namespace, f"{CLIENT}_sum")
    assert model_seconds == pytest.approx(WAVES * PREDICTIONS * LATENCY, rel=0.5)  # ~1.2 s of model calls
    assert value == pytest.approx(model_seconds, rel=BLUR)
    assert value < 0.2 * WAVES * PREDICTIONS, "seconds, not the 20 requests"
    assert measured.library("request-count", namespace) == pytest.approx(WAVES * PREDICTIONS, rel=BLUR)


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_mean_latency_is_seconds_diluted_by_feedback_calls(measured: Measured, namespace: str) -> None:
    value = measured.seed("mean-latency", namespace)
    calls = measured.total(namespace, f"{CLIENT}_count")
    assert calls == WAVES * (PREDICTIONS + FEEDBACK) + (WAVES if namespace == "ns-baseline" else 0)
    assert value == pytest.approx(measured.total(namespace, f"{CLIENT}_sum") / calls, rel=BLUR)
    predictions_only_ms = measured.library("mean-latency", namespace)
    assert 0.85 * LATENCY * 1000 <= predictions_only_ms < LATENCY * 1000 + 50  # extrapolation: a few % low
    assert value < 1, "seconds, though the seed's units say milliseconds"
    assert value < 0.7 * predictions_only_ms / 1000, "half the calls are feedback, taking about a millisecond"


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_tail_latency_is_seconds(measured: Measured, namespace: str) -> None:
    value = measured.seed("95th-percentile-tail-latency", namespace)
    assert 0.05 < value <= 0.1, "in the bucket of the 60 ms predictions, in seconds"
    assert 50 < measured.library("95th-percentile-tail-latency", namespace) <= 100


def test_error_count_counts_failed_feedback_too(measured: Measured) -> None:
    failed_feedback = measured.total("ns-baseline", f"{SERVER}_count", service="feedback", code="400")
    assert failed_feedback == WAVES
    assert measured.seed("error-count", "ns-baseline") == pytest.approx(WAVES, rel=BLUR)
    assert measured.library("error-count", "ns-baseline") == 0, "no prediction of the baseline failed"
    assert measured.total("ns-candidate", f"{SERVER}_count", service="predictions", code="500") == WAVES
    assert measured.seed("error-count", "ns-candidate") == pytest.approx(WAVES, rel=BLUR)
    assert measured.library("error-count", "ns-candidate") == pytest.approx(WAVES, rel=BLUR)


def test_error_rate_is_diluted_by_feedback_calls(measured: Measured) -> None:
    # 4 failed of 20 predictions; the seed divides by predictions and feedback calls (40).
    seed, fixed = measured.seed("error-rate", "ns-candidate"), measured.library("error-rate", "ns-candidate")
    assert fixed == pytest.approx(WAVES / (WAVES * PREDICTIONS), rel=0.1)
    assert seed == pytest.approx(WAVES / (WAVES * (PREDICTIONS + FEEDBACK)), rel=0.1)
    assert measured.seed("error-rate", "ns-baseline") > 0.05, "the baseline's bad feedback counts as errors"
    assert measured.library("error-rate", "ns-baseline") == 0


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_user_engagement_counts_feedback_calls_whatever_their_reward(measured: Measured, namespace: str) -> None:
    calls = WAVES * FEEDBACK + (WAVES if namespace == "ns-baseline" else 0)  # the malformed ones too
    assert measured.seed("user-engagement", namespace) == pytest.approx(calls, rel=BLUR)
    assert measured.library("user-engagement", namespace) == pytest.approx(calls, rel=BLUR)
    reward = measured.library("feedback-reward", namespace)
    assert reward == pytest.approx(WAVES * FEEDBACK * REWARD[namespace], rel=BLUR)
    assert math.isclose(reward, measured.total(namespace, "seldon_api_model_feedback_reward_total"), rel_tol=BLUR)


def test_the_seed_queries_are_the_seeds(measured: Measured) -> None:
    queries = seed_queries()
    assert sorted(queries) == ["95th-percentile-tail-latency", "error-count", "error-rate", "mean-latency",
                               "request-count", "user-engagement"]
    assert "seldon_api_executor_client_requests_seconds_sum{seldon_deployment_id='$sid'" in queries["request-count"]
