"""The slow-request count for quantile tests: the bucket rule, and its PromQL against a real Prometheus.

Data as in tests/rollout/test_metric_library.py: per 10 s step the baseline serves 10 x 30 ms,
8 x 60 ms and 2 x 110 ms predictions, the candidate 20 x 20 ms, 9 x 40 ms and 1 x 200 ms; 60 steps
in the window. The exporter writes `le` Go-style ("5", "0.1").
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

from components.metrics.latency import bucket_at_or_above, quantile_test, slow_request_metric
from components.metrics.seldon import SEED_METRICS
from rollout.core.outcomes import Observed
from rollout.core.validation import SpecError, parse_experiment
from rollout.metrics.collect import collect_snapshot
from testbed.prometheus import SessionPrometheus
from testbed.promserver import BASELINE, CANDIDATE, QUERY_TIME
from tests.rollout.factories import seed_experiment


def test_a_limit_between_buckets_rounds_up_to_the_next_bound() -> None:
    assert bucket_at_or_above(5000) == 5.0  # on a bound: that bound
    assert bucket_at_or_above(3000) == 5.0  # between 2.5 and 5: up, never down
    assert bucket_at_or_above(60) == 0.075
    assert bucket_at_or_above(75, (0.05, 0.1, 0.25)) == 0.1
    assert slow_request_metric(3000)["name"] == "requests-slower-than-5000ms"
    with pytest.raises(ValueError, match="largest bucket"):
        bucket_at_or_above(20_000)


@pytest.mark.parametrize("written", ["5", "5.0", "5.00"])
def test_the_le_matcher_takes_every_way_an_exporter_writes_the_bound(written: str) -> None:
    query = slow_request_metric(5000)["query"]
    pattern = re.search(r'le=~"([^"]+)"', query)
    assert pattern is not None
    regex = pattern.group(1).replace("\\\\", "\\")  # PromQL string escapes -> the regex Prometheus runs
    assert re.fullmatch(regex, written)
    assert not re.fullmatch(regex, "50") and not re.fullmatch(regex, "0.5")


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


EXPORTED = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Bounds a user might declare (Go's defaults, without Seldon's 0.075 and 0.75), all of which the
fixture exporter (Seldon's bounds) has."""


@pytest.mark.parametrize(("limit_ms", "baseline", "candidate"), [(100, 120.0, 60.0), (75, 120.0, 60.0),
                                                                  (50, 600.0, 60.0), (5000, 0.0, 0.0)])
def test_slow_counts_against_a_real_prometheus(prometheus: SessionPrometheus, session: requests.Session,
                                               limit_ms: float, baseline: float, candidate: float) -> None:
    metric = slow_request_metric(limit_ms, EXPORTED)
    data = {"name": "slow", "requestCount": "request-count",
            "versions": [{"name": w.namespace, "variables": {"ns": w.namespace, "sid": "iris", "predictor": "default"}}
                         for w in (BASELINE, CANDIDATE)],
            "metrics": [*SEED_METRICS, metric], "rewards": [{"metric": "user-engagement"}]}
    spec = parse_experiment(data)
    snap = collect_snapshot(spec, prometheus.client(session), started_at=QUERY_TIME - 600, now=QUERY_TIME,
                            metric_names=(metric["name"],))
    got = {v: snap[(metric["name"], v)] for v in (BASELINE.namespace, CANDIDATE.namespace)}
    assert got == {BASELINE.namespace: Observed(pytest.approx(baseline, rel=1e-9)),  # type: ignore[arg-type]
                   CANDIDATE.namespace: Observed(pytest.approx(candidate, rel=1e-9))}  # type: ignore[arg-type]


def test_a_bound_the_histograms_lack_gives_no_data_not_zero(prometheus: SessionPrometheus,
                                                             session: requests.Session) -> None:
    metric = slow_request_metric(60, (0.06, 0.1))  # a bound of 0.06 s, which Seldon's histograms do not have
    data = {"name": "slow", "versions": [{"name": "b", "variables": {"ns": BASELINE.namespace, "sid": "iris",
                                                                    "predictor": "default"}}],
            "metrics": [*SEED_METRICS, metric], "rewards": [{"metric": "user-engagement"}]}
    snap = collect_snapshot(parse_experiment(data), prometheus.client(session), started_at=QUERY_TIME - 600,
                            now=QUERY_TIME, metric_names=(metric["name"],))
    assert not isinstance(snap[(metric["name"], "b")], Observed)


def test_quantile_tests_are_checked_against_the_objectives_and_metrics() -> None:
    good = seed_experiment(algorithm="sequential", metrics=[*SEED_METRICS, slow_request_metric(5000)],
                           sequential={"quantileTests": [quantile_test("95th-percentile-tail-latency", 0.95, 5000)]})
    assert parse_experiment(good).sequential.quantile_tests[0].slow_count == "requests-slower-than-5000ms"
    unknown = {**good, "metrics": list(SEED_METRICS)}
    with pytest.raises(SpecError, match=r"sequential\.quantileTests\[0\]\.slowCount: unknown metric"):
        parse_experiment(unknown)
    no_limit = {**good, "sequential": {"quantileTests": [{"objective": "request-count", "quantile": 0.95,
                                                           "slowCount": "requests-slower-than-5000ms"}]}}
    with pytest.raises(SpecError, match=r"sequential\.quantileTests\[0\]\.objective"):
        parse_experiment(no_limit)
    bad_q = {**good, "sequential": {"quantileTests": [{**quantile_test("95th-percentile-tail-latency", 0.95, 5000),
                                                        "quantile": 1.5}]}}
    with pytest.raises(SpecError, match=r"sequential\.quantileTests\[0\]\.quantile"):
        parse_experiment(bad_q)
