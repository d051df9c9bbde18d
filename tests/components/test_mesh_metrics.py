"""The Istio and KServe metric libraries against a real Prometheus holding series with the labels the
sources give them (docs/istio-metrics.md, docs/kserve.md): each version read by its namespace, the
destination reporter only (the gateway's source-reporter copies and another workload's series are
there to be miscounted), 5xx as errors, milliseconds throughout.

Per second over the whole 600 s window: the baseline answers 2 requests (20 ms each, Istio; 5 ms in
KServe's predict step), all 200; the candidate 1.8 x 200 and 0.2 x 500 (40 ms; 10 ms).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.metrics.istio import ISTIO_METRICS
from components.metrics.kserve import KSERVE_METRICS
from rollout.core.templating import render
from testbed.backfill import BackfilledPrometheus, Samples
from testbed.promserver import PrometheusUnavailable

T = 1_700_000_000
"""Query time (s); the series run from T - 1200 to T, one sample every 15 s."""
WINDOW = 600


def counter(rate: float) -> Samples:
    return [(1000 * (T - 1200 + 15 * i), rate * 15 * i) for i in range(81)]


def istio_series(ns: str, reporter: str, ok: float, errors: float, ms: float, le: str) -> list[Any]:
    labels = {"reporter": reporter, "destination_workload_namespace": ns}
    total = ok + errors
    return [
        ("istio_requests_total", {**labels, "response_code": "200"}, counter(ok)),
        ("istio_requests_total", {**labels, "response_code": "500"}, counter(errors)),
        ("istio_request_duration_milliseconds_sum", labels, counter(total * ms)),
        ("istio_request_duration_milliseconds_count", labels, counter(total)),
        *[("istio_request_duration_milliseconds_bucket", {**labels, "le": b}, counter(total if float(b) >= float(le)
                                                                                      else 0))
          for b in ("10", "25", "50", "100", "+Inf")],
    ]


def kserve_series(ns: str, model: str, rate: float, seconds: float, le: str) -> list[Any]:
    labels = {"model_name": model, "namespace": ns}
    return [
        ("request_predict_seconds_sum", labels, counter(rate * seconds)),
        ("request_predict_seconds_count", labels, counter(rate)),
        *[("request_predict_seconds_bucket", {**labels, "le": b}, counter(rate if float(b) >= float(le) else 0))
          for b in ("0.005", "0.01", "0.025", "+Inf")],
    ]


SERIES = [
    *istio_series("ns-baseline", "destination", 2, 0, 20, "25"),
    *istio_series("ns-candidate", "destination", 1.8, 0.2, 40, "50"),
    # The gateway's copies of the same requests (reporter=source, 10x to show in any sum) and another app.
    *istio_series("ns-baseline", "source", 20, 0, 1, "10"),
    *istio_series("ns-candidate", "source", 18, 2, 1, "10"),
    *istio_series("ns-other", "destination", 50, 50, 100, "100"),
    *kserve_series("ns-baseline", "iris", 2, 0.005, "0.005"),
    *kserve_series("ns-candidate", "iris", 2, 0.010, "0.01"),
    *kserve_series("ns-candidate", "other-model", 9, 0.025, "0.025"),
]

EXPECTED = {
    "request-count": (1200, 1200),
    "error-count": (0, 120),
    "error-rate": (0, 0.1),
    "mean-latency": (20, 40),
    "95th-percentile-tail-latency": (10 + 15 * 0.95, 25 + 25 * 0.95),
}
KSERVE_LATENCY = {"mean-latency": (5, 10), "95th-percentile-tail-latency": (0.005 * 0.95 * 1000, 9.75)}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackfilledPrometheus]:
    server = BackfilledPrometheus(Path(tmp_path_factory.mktemp("mesh-metrics")), SERIES)
    try:
        server.start()
    except PrometheusUnavailable as err:
        pytest.fail(str(err))
    try:
        yield server
    finally:
        server.stop()


def value(server: BackfilledPrometheus, query: str, ns: str) -> float:
    promql = render(query, {"ns": ns, "sid": "iris", "predictor": "default", "elapsedTime": str(WINDOW)})
    result = server.query(promql, at=T)["data"]["result"]
    assert len(result) == 1, (promql, result)
    return float(result[0]["value"][1])


@pytest.mark.parametrize(("library", "expected"), [
    (ISTIO_METRICS, EXPECTED), (KSERVE_METRICS, {**EXPECTED, **KSERVE_LATENCY})], ids=["istio", "kserve"])
def test_each_metric_reads_its_version_only(prometheus: BackfilledPrometheus, library: tuple[dict[str, Any], ...],
                                            expected: dict[str, tuple[float, float]]) -> None:
    assert sorted(m["name"] for m in library) == sorted(expected)
    got = {m["name"]: (value(prometheus, m["query"], "ns-baseline"), value(prometheus, m["query"], "ns-candidate"))
           for m in library}
    want: dict[str, Any] = {name: (pytest.approx(b, rel=1e-9, abs=1e-9), pytest.approx(c, rel=1e-9, abs=1e-9))
                            for name, (b, c) in expected.items()}
    assert got == want


def test_with_no_traffic_latency_and_error_rate_are_no_data_not_zero(prometheus: BackfilledPrometheus) -> None:
    for library in (ISTIO_METRICS, KSERVE_METRICS):
        for metric in library:
            promql = render(metric["query"], {"ns": "ns-empty", "sid": "iris", "predictor": "default",
                                              "elapsedTime": str(WINDOW)})
            result = prometheus.query(promql, at=T)["data"]["result"]
            if metric["kind"] in ("events",):
                assert [float(r["value"][1]) for r in result] == [0.0], metric["name"]
            else:
                assert not result or result[0]["value"][1] == "NaN", (metric["name"], result)
