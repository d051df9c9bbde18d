"""The library's metrics against a real Prometheus holding known traffic with Seldon's real labels.

Data (testbed/promserver.py), per 10 s step, all counters linear, queried at QUERY_TIME; the
executor (server family) adds 2 ms to every model call (client family):
- ns-baseline (seldon protocol, REST): predictions 10 x 30 ms, 8 x 60 ms, 1 x 110 ms, 1 x 110 ms
  answered 500 (20 requests); feedback 2 x 4 s, reward 0.5 each.
- ns-candidate (seldon, REST): predictions 20 x 20 ms, 9 x 40 ms, 1 x 200 ms (30 requests);
  feedback 5 x 4 s, reward 1 each.
- ns-v2: the candidate's predictions with the V2 protocol over REST (no feedback endpoint there).
- ns-grpc: the baseline's traffic with the seldon protocol over gRPC (`service` and `code` differ).
- ns-paused: the baseline's traffic, stopped 900 s before QUERY_TIME (series exist, flat).
- ns-idle: no series at all.

Tolerance: every sample is sampled exactly at the window's edges, so `increase` is a difference of
integers (no extrapolation) and the results are ratios and linear interpolations of those: exact up
to float64 rounding (~1e-15 relative). rel=1e-9 allows for rounding and nothing else; the smallest
difference a wrong query would make here is several percent.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from components.metrics.seldon import LIBRARY_METRICS, SEED_METRICS
from rollout.core.outcomes import NoData, Observed, Snapshot
from rollout.core.validation import parse_experiment
from rollout.metrics.collect import collect_snapshot
from testbed.prometheus import SessionPrometheus
from testbed.promserver import BASELINE, CANDIDATE, GRPC, IDLE_NAMESPACE, PAUSED, QUERY_TIME, V2

WINDOW = 600
REL = 1e-9
NO_TRAFFIC_NODATA = ("mean-latency", "error-rate", "95th-percentile-tail-latency")
NO_TRAFFIC_ZERO = ("request-count", "user-engagement", "error-count", "feedback-reward")
CLIENT = "seldon_api_executor_client_requests_seconds"


def experiment(*namespaces: str) -> dict[str, object]:
    versions = [{"name": ns.removeprefix("ns-"),
                 "variables": {"ns": ns, "sid": "iris", "predictor": "default"}} for ns in namespaces]
    return {
        "name": "iris-rollout",
        "versions": versions,
        "metrics": list(LIBRARY_METRICS),
        "rewards": [{"metric": "user-engagement", "preferredDirection": "High"}],
        "objectives": [{"metric": "mean-latency", "upperLimit": 2000},
                       {"metric": "95th-percentile-tail-latency", "upperLimit": 5000},
                       {"metric": "error-rate", "upperLimit": 0.01}],
        "requestCount": "request-count",
    }


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def snapshot(prometheus: SessionPrometheus, session: requests.Session, *namespaces: str,
             window: int = WINDOW) -> Snapshot:
    spec = parse_experiment(experiment(*namespaces))
    return collect_snapshot(spec, prometheus.client(session), started_at=QUERY_TIME - window, now=QUERY_TIME)


@pytest.fixture(scope="module")
def two_versions(prometheus: SessionPrometheus, session: requests.Session) -> Snapshot:
    return snapshot(prometheus, session, BASELINE.namespace, CANDIDATE.namespace, V2.namespace, GRPC.namespace)


def value(snap: Snapshot, metric: str, version: str) -> float:
    outcome = snap[(metric, version)]
    assert isinstance(outcome, Observed), f"{metric} of {version}: {outcome}"
    return outcome.value


EXPECTED = {
    # 20 requests/step x 60 steps; the sum series would give 62.4 (seconds), not 1200.
    ("request-count", "baseline"): 1200.0,
    ("request-count", "candidate"): 1800.0,
    # (1.0 s + 20 x 2 ms) / 20 requests = 52 ms; (0.96 s + 30 x 2 ms) / 30 = 34 ms (feedback's 4 s left out).
    ("mean-latency", "baseline"): 52.0,
    ("mean-latency", "candidate"): 34.0,
    # rank 0.95 x 20 = 19 falls in (0.1, 0.25] holding requests 19..20: 100 + 150 x 1/2 ms.
    ("95th-percentile-tail-latency", "baseline"): 175.0,
    # rank 0.95 x 30 = 28.5 falls in (0.025, 0.05] holding requests 21..29: 25 + 25 x 8.5/9 ms.
    ("95th-percentile-tail-latency", "candidate"): 25.0 + 25.0 * 8.5 / 9,
    # 1 error per step; the candidate has no non-200 series, so `or on() vector(0)` answers.
    ("error-count", "baseline"): 60.0,
    ("error-count", "candidate"): 0.0,
    ("error-rate", "baseline"): 60.0 / 1200.0,
    ("error-rate", "candidate"): 0.0,
    # feedback calls: 2 and 5 per step.
    ("user-engagement", "baseline"): 120.0,
    ("user-engagement", "candidate"): 300.0,
    # rewards: 2 x 0.5 and 5 x 1 per step.
    ("feedback-reward", "baseline"): 60.0,
    ("feedback-reward", "candidate"): 300.0,
}
"""Every library metric on the two seldon-protocol REST versions."""
SAME_AS = {"v2": "candidate", "grpc": "baseline"}
"""The V2 and gRPC versions carry the same traffic as these; every metric must agree, except that
the V2 protocol has no feedback at all."""
V2_WITHOUT_FEEDBACK = {("user-engagement", "v2"): 0.0, ("feedback-reward", "v2"): 0.0}


def test_every_library_metric_is_covered() -> None:
    assert {m for m, _ in EXPECTED} == {m["name"] for m in LIBRARY_METRICS}
    assert {m["name"] for m in SEED_METRICS} == {m["name"] for m in LIBRARY_METRICS} - {"feedback-reward"}


@pytest.mark.parametrize(("metric", "version"), sorted(EXPECTED))
def test_library_metric_value(two_versions: Snapshot, metric: str, version: str) -> None:
    assert value(two_versions, metric, version) == pytest.approx(EXPECTED[(metric, version)], rel=REL, abs=1e-12)


@pytest.mark.parametrize(("metric", "version"), sorted((m, v) for m, _ in EXPECTED for v in SAME_AS))
def test_v2_protocol_and_grpc_transport_give_the_same_values(two_versions: Snapshot, metric: str,
                                                            version: str) -> None:
    expected = V2_WITHOUT_FEEDBACK.get((metric, version), EXPECTED[(metric, SAME_AS[version])])
    assert value(two_versions, metric, version) == pytest.approx(expected, rel=REL, abs=1e-12)


def test_snapshot_has_every_metric_for_every_version_and_nothing_else(two_versions: Snapshot) -> None:
    assert set(two_versions) == {(m, v) for m, _ in EXPECTED for v in ("baseline", "candidate", *SAME_AS)}


def test_latencies_are_milliseconds(prometheus: SessionPrometheus, two_versions: Snapshot) -> None:
    seconds = prometheus.query(
        'sum(increase(seldon_api_executor_server_requests_seconds_sum{kubernetes_namespace="ns-baseline",'
        'service="predictions"}[600s])) / sum(increase(seldon_api_executor_server_requests_seconds_count'
        '{kubernetes_namespace="ns-baseline",service="predictions"}[600s]))')
    raw = float(seconds["data"]["result"][0]["value"][1])
    assert raw == pytest.approx(0.052, rel=REL)
    assert value(two_versions, "mean-latency", "baseline") == pytest.approx(1000 * raw, rel=REL)
    assert value(two_versions, "95th-percentile-tail-latency", "baseline") > 100


def test_request_count_counts_requests_not_seconds(prometheus: SessionPrometheus, two_versions: Snapshot) -> None:
    summed_seconds = prometheus.query(
        f'sum(increase({CLIENT}_sum{{kubernetes_namespace="ns-baseline",service="/predict"}}[600s]))')
    assert float(summed_seconds["data"]["result"][0]["value"][1]) == pytest.approx(60.0, rel=REL)
    assert value(two_versions, "request-count", "baseline") == pytest.approx(1200.0, rel=REL)


def test_the_client_family_has_no_predictions_service(prometheus: SessionPrometheus) -> None:
    """The issue's finding: a `service="predictions"` filter on the client family selects nothing."""
    found = prometheus.query(f'count({CLIENT}_count{{service="predictions"}}) or vector(0)')
    assert float(found["data"]["result"][0]["value"][1]) == 0
    paths = prometheus.query(f"count by (service) ({CLIENT}_count)")
    assert {r["metric"]["service"] for r in paths["data"]["result"]} == {
        "/predict", "/send-feedback", "/v2/models/classifier/infer", "/seldon.protos.Model/Predict",
        "/seldon.protos.Model/SendFeedback"}


def test_feedback_traffic_does_not_dilute_mean_latency(prometheus: SessionPrometheus, two_versions: Snapshot) -> None:
    selector = 'kubernetes_namespace="ns-baseline"'
    unfiltered = prometheus.query(
        f"1000 * sum(increase({CLIENT}_sum{{{selector}}}[600s]))"
        f" / sum(increase({CLIENT}_count{{{selector}}}[600s]))")
    # The seed's query, with the 120 feedback calls of 4 s mixed in: (60 s + 480 s) / 1320 calls = 409 ms.
    assert float(unfiltered["data"]["result"][0]["value"][1]) == pytest.approx(540_000 / 1320, rel=REL)
    assert value(two_versions, "mean-latency", "baseline") == pytest.approx(52.0, rel=REL)


def test_the_window_is_elapsed_time(prometheus: SessionPrometheus, session: requests.Session) -> None:
    half = snapshot(prometheus, session, BASELINE.namespace, window=300)
    assert value(half, "request-count", "baseline") == pytest.approx(600.0, rel=REL)
    assert value(half, "error-count", "baseline") == pytest.approx(30.0, rel=REL)
    assert value(half, "user-engagement", "baseline") == pytest.approx(60.0, rel=REL)
    assert value(half, "mean-latency", "baseline") == pytest.approx(52.0, rel=REL)
    assert value(half, "feedback-reward", "baseline") == pytest.approx(30.0, rel=REL)


@pytest.mark.parametrize("namespace", [IDLE_NAMESPACE, PAUSED.namespace], ids=["no-series", "flat-series"])
def test_version_without_traffic(prometheus: SessionPrometheus, session: requests.Session, namespace: str) -> None:
    snap = snapshot(prometheus, session, BASELINE.namespace, namespace)
    version = namespace.removeprefix("ns-")
    for metric in NO_TRAFFIC_NODATA:
        assert isinstance(snap[(metric, version)], NoData), f"{metric}: {snap[(metric, version)]}"
    for metric in NO_TRAFFIC_ZERO:
        assert snap[(metric, version)] == Observed(0.0), f"{metric}: {snap[(metric, version)]}"
    assert snap[("request-count", "baseline")] == Observed(1200.0)


def test_service_regexes_select_exactly_predictions_and_feedback_of_the_server_family() -> None:
    """PromQL regexes are fully anchored: checked against every `service` value docs/seldon-metrics.md lists."""
    import re

    from components.metrics.seldon import FEEDBACK_SERVICE, FEEDBACK_SERVICES, PREDICTION_SERVICE, PREDICTION_SERVICES
    from tests.localenv.seldon_families import SERVICE

    server = {(kind, value) for (family, _, _), pair in SERVICE.items() if family == "server"
              for kind, value in zip(("prediction", "feedback"), pair, strict=True) if value}
    others = {"/seldon.protos.Seldon/Metadata", "/inference.GRPCInferenceService/ModelMetadata", "predictions-x",
              "/tensorflow.serving.PredictionService/GetModelMetadata", "metadata"}
    for kind, value in sorted(server) + [("other", o) for o in sorted(others)]:
        assert bool(re.fullmatch(PREDICTION_SERVICE, value)) is (kind == "prediction"), value
        assert bool(re.fullmatch(FEEDBACK_SERVICE, value)) is (kind == "feedback"), value
    assert {v for k, v in server if k == "prediction"} == set(PREDICTION_SERVICES)
    assert {v for k, v in server if k == "feedback"} == set(FEEDBACK_SERVICES)
