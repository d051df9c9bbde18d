"""Small builders for specs and snapshots shared by the core's tests."""

from __future__ import annotations

from typing import Any

from components.metrics.latency import with_quantile_tests
from components.metrics.seldon import SEED_METRICS
from rollout.core.outcomes import NoData, Observed, Outcome, Snapshot
from rollout.core.spec import ExperimentSpec
from rollout.core.validation import parse_experiment

SEED_OBJECTIVES = [
    {"metric": "mean-latency", "upperLimit": 2000},
    {"metric": "95th-percentile-tail-latency", "upperLimit": 5000},
    {"metric": "error-rate", "upperLimit": "0.01"},
]


def seed_experiment(**overrides: Any) -> dict[str, Any]:
    """The seed's experiment.yaml as this project's input dict (under `sequential`, with the quantile test the
    program adds)."""
    data: dict[str, Any] = {
        "name": "quickstart-exp",
        "target": "iris",
        "testingPattern": "A/B",
        "deploymentPattern": "Progressive",
        "intervalSeconds": 10,
        "iterationsPerLoop": 10,
        "requestCount": "iter8-seldon/request-count",
        "rewards": [{"metric": "iter8-seldon/user-engagement", "preferredDirection": "High"}],
        "objectives": SEED_OBJECTIVES,
        "versions": [
            {"name": "iris-v1", "variables": {"ns": "ns-baseline", "sid": "iris", "predictor": "default"}},
            {"name": "iris-v2", "variables": {"ns": "ns-candidate", "sid": "iris", "predictor": "default"}},
        ],
        "metrics": [dict(m) for m in SEED_METRICS],
    }
    data.update(overrides)
    return with_quantile_tests(data)  # under sequential, the p95's test at its limit (as the program gives it)


def seed_spec(**overrides: Any) -> ExperimentSpec:
    return parse_experiment(seed_experiment(**overrides))


def healthy(reward: float, latency: float = 20.0, p95: float = 40.0, error_rate: float = 0.0) -> dict[str, Outcome]:
    """Outcomes of one version that meets every seed objective."""
    return {
        "user-engagement": Observed(reward),
        "mean-latency": Observed(latency),
        "95th-percentile-tail-latency": Observed(p95),
        "error-rate": Observed(error_rate),
        "request-count": Observed(100.0),
        "error-count": Observed(0.0),
    }


def no_traffic() -> dict[str, Outcome]:
    """A version at 0% weight: latencies and error rate have no data, counters are 0."""
    return {
        "user-engagement": Observed(0.0),
        "mean-latency": NoData("value is NaN"),
        "95th-percentile-tail-latency": NoData("empty result"),
        "error-rate": NoData("value is NaN"),
        "request-count": Observed(0.0),
        "error-count": Observed(0.0),
    }


def snapshot(**versions: dict[str, Outcome]) -> Snapshot:
    """`snapshot(**{"iris-v1": healthy(7), "iris-v2": healthy(10)})`."""
    return {(metric, version): outcome for version, outcomes in versions.items()
            for metric, outcome in outcomes.items()}
