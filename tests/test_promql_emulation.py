"""The benchmark's emulation of Prometheus (`benchmarks.promql`) against a real Prometheus on the same series.

The series are backfilled with promtool into a fresh data dir and Debian's `prometheus` serves them on
loopback; `increase`, `rate`, `histogram_quantile` and the metric library's query shapes are evaluated at
many times by both, and the answers must be equal to the last bit (the API writes the shortest decimal
that reads back as the same double, so float(text) is the server's double exactly).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.promql import NAME, TSDB, EmulatedPrometheus, evaluate, extrapolated_rate
from components.metrics.latency import slow_request_metric
from components.metrics.seldon import LIBRARY_METRICS
from rollout.core.templating import ELAPSED_TIME, render
from rollout.metrics.collect import batched_query
from testbed.backfill import BackfilledPrometheus, Samples
from testbed.promserver import PrometheusUnavailable

T0 = 1_700_000_000_000
"""ms; the first sample time of the data."""


def _counter(rng: random.Random, times: list[int], resets: tuple[int, ...] = (), start: float = 0.0) -> Samples:
    value, out = start, []
    for i, at in enumerate(times):
        value = rng.lognormvariate(0, 1.5) if i in resets else value + rng.lognormvariate(1, 1.5)
        out.append((at, value))
    return out


def _dataset() -> list[tuple[str, dict[str, str], Samples]]:
    rng = random.Random(16)
    every15 = [T0 + 15_000 * i for i in range(60)]
    jittered = [T0 + 30_000 * i + rng.randint(-400, 400) for i in range(30) if i % 7 not in (3, 4)]
    series: list[tuple[str, dict[str, str], Samples]] = [
        ("c_total", {"s": "steady"}, _counter(rng, every15)),
        ("c_total", {"s": "reset"}, _counter(rng, every15, resets=(20, 41))),
        ("c_total", {"s": "gaps"}, _counter(rng, jittered, resets=(12,))),
        ("c_total", {"s": "single"}, [(T0 + 300_000, 7.25)]),
        ("c_total", {"s": "fromzero"}, [(T0 + 100_000 + 15_000 * i, 3.0 + 10 * i) for i in range(20)]),
        ("c_total", {"s": "late"}, _counter(rng, every15[40:], start=1e6)),
        ("c_total", {"s": "flat"}, [(at, 42.0) for at in every15]),
    ]
    counts = [0.0, 0.0, 0.0]
    buckets = []
    for i, at in enumerate(every15):
        if i == 30:
            counts = [0.0, 0.0, 0.0]  # the pod restarted
        new = [rng.randint(0, 9), rng.randint(0, 4), rng.randint(0, 2)]
        counts = [c + sum(new[: k + 1]) for k, c in enumerate(counts)]
        buckets.append((at, list(counts)))
    for k, le in enumerate(("0.1", "0.25", "+Inf")):
        series.append(("h_bucket", {"le": le, "s": "hist"}, [(at, c[k]) for at, c in buckets]))
    return series


def _eval_times() -> list[int]:
    rng = random.Random(7)
    aligned = [T0 + 15_000 * i for i in (1, 2, 5, 20, 21, 40, 59, 60, 65)]
    return aligned + [T0 + rng.randint(10_000, 1_000_000) for _ in range(25)]


QUERIES = [f'{f}(c_total{{s="{s}"}}[{w}])' for f in ("increase", "rate")
           for s in ("steady", "reset", "gaps", "single", "fromzero", "late", "flat") for w in ("30s", "60s", "300s")]
QUERIES += [
    'sum(increase(c_total{s=~"steady|reset|gaps"}[120s])) or on() vector(0)',
    'sum(increase(c_total{s="single"}[60s])) or on() vector(0)',
    '1000 * histogram_quantile(0.95, sum(rate(h_bucket{s="hist"}[120s])) by (le))',
    'sum(increase(h_bucket{s="hist",le="+Inf"}[90s])) - sum(increase(h_bucket{s="hist",le=~"0\\\\.25"}[90s]))',
    'sum(increase(c_total{s="reset"}[600s])) / sum(increase(c_total{s="steady"}[600s]))',
    batched_query(['sum(increase(c_total{s="steady"}[60s])) or on() vector(0)',
                   'sum(increase(c_total{s="late"}[60s])) or on() vector(0)']),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BackfilledPrometheus, TSDB]]:
    data = _dataset()
    db = TSDB()
    for name, labels, samples in data:
        for at, value in samples:
            db.append({NAME: name, **labels}, at, value)
    prom = BackfilledPrometheus(Path(tmp_path_factory.mktemp("promql")), data)
    try:
        try:
            prom.start()
        except PrometheusUnavailable as err:
            pytest.fail(f"cannot start Prometheus: {err}", pytrace=False)
        yield prom, db
    finally:
        prom.stop()


def _real(prom: BackfilledPrometheus, query: str, at_ms: int) -> dict[frozenset[tuple[str, str]], float]:
    body = prom.query(query, at=at_ms / 1000)
    assert body["status"] == "success", body
    data = body["data"]
    if data["resultType"] == "scalar":
        return {frozenset(): float(data["result"][1])}
    return {frozenset(r["metric"].items()): float(r["value"][1]) for r in data["result"]}


def _same(a: dict[frozenset[tuple[str, str]], float], b: dict[frozenset[tuple[str, str]], float]) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def test_the_emulation_answers_as_prometheus_to_the_last_digit(server: tuple[BackfilledPrometheus, TSDB]) -> None:
    prom, db = server
    compared = differing = answered = 0
    mismatches = []
    for query in QUERIES:
        for at in _eval_times():
            real = _real(prom, query, at)
            mine = evaluate(db, query, at)
            mine = {frozenset(): mine} if isinstance(mine, float) else mine
            compared += 1
            answered += bool(real)
            if not _same(real, mine):
                differing += 1
                mismatches.append(f"{query} at {at}: prometheus {real}, emulation {mine}")
    assert not mismatches, f"{differing} of {compared} differ:\n" + "\n".join(mismatches[:10])
    assert answered > compared // 2  # most queries have data: the comparison is not of empty answers


def test_the_edges_the_comparison_covers_are_there(server: tuple[BackfilledPrometheus, TSDB]) -> None:
    """The data exercise each rule: a reset adds the value before the drop, a single sample gives nothing,
    the zero floor shortens the start, a window past the 1.1x threshold extrapolates by half an interval."""
    prom, db = server
    at = T0 + 15_000 * 21
    assert _real(prom, 'increase(c_total{s="single"}[600s])', at) == {}
    assert evaluate(db, 'increase(c_total{s="single"}[600s])', at) == {}
    assert extrapolated_rate([0, 15_000], [10.0, 5.0], 0, 15_000, 15.0, True, False) == 5.0  # reset: 10 + 5 - 10
    # fromzero: 3, 13, ... 43 from +100 s every 15 s; the range starts 140 s before the first sample, but the
    # counter's zero is 4.5 s before it: 40 over 60 s extrapolated to 64.5 s, i.e. back to the counter's 0
    real = _real(prom, 'increase(c_total{s="fromzero"}[200s])', T0 + 160_000)
    assert real == {frozenset({("s", "fromzero")}): 40 * 64.5 / 60} == {frozenset({("s", "fromzero")}): 43.0}
    # edges 40 s from samples 15 s apart (beyond 1.1 x 15 s): extrapolated by half an interval each side
    assert extrapolated_rate([0, 15_000, 30_000], [0.0, 10.0, 20.0], -40_000, 70_000, 110.0, False, False) == \
        20 * 45 / 30


def test_the_emulated_client_serves_the_library_queries_and_its_faults() -> None:
    db = TSDB()
    server = 'seldon_api_executor_server_requests_seconds'
    for i in range(5):
        for code, per in (("200", 9), ("500", 1)):
            labels = {NAME: f"{server}_count", "service": "predictions", "code": code, "seldon_deployment_id": "iris",
                      "predictor_name": "default", "kubernetes_namespace": "ns-a"}
            db.append(labels, T0 + 15_000 * i, float(per * i))
    client = EmulatedPrometheus(db)
    variables = {"ns": "ns-a", "sid": "iris", "predictor": "default", ELAPSED_TIME: "60"}
    metric = {m["name"]: m for m in LIBRARY_METRICS}
    at = (T0 + 60_000) / 1000
    count = client.query(render(metric["request-count"]["query"], variables), at).body["data"]["result"]
    assert [float(r["value"][1]) for r in count] == [40.0]  # 10 per 15 s, 4 intervals, no extrapolation
    rate = client.query(render(metric["error-rate"]["query"], variables), at).body["data"]["result"]
    assert [float(r["value"][1]) for r in rate] == [0.1]
    slow = client.query(render(slow_request_metric(5000.0)["query"], variables), at).body["data"]["result"]
    assert slow == []  # no buckets: no data, never 0
    faulty = EmulatedPrometheus(db, fault=lambda _q, _at: "empty")
    assert faulty.query(render(metric["request-count"]["query"], variables), at).body["data"]["result"] == []
