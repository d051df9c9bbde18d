"""Metrics for testing a latency quantile from histogram buckets (the `sequential` algorithm's
`quantileTests`): how many predictions were slower than a bucket bound.

A quantile is tested at its limit: "p95 <= limit" holds exactly when at most 5% of the requests are
slower than the limit, which the histogram counts only when the limit is one of its bucket bounds.
So a limit between two bounds is refused under `sequential` (the core names the nearest bounds, from
the test's `bounds`): counting above the bound over the limit would show a p95 of 4200 ms "within"
3000 ms, and counting above the one under it would find breaches that are none. `with_quantile_tests`
gives every objective on one of the library's quantiles its test by default. Built from the metric
library's series and selectors, so it follows them.
"""

from __future__ import annotations

import bisect
from typing import Any

from components.metrics.seldon import PREDICTIONS, SEED_METRICS, SERVER, WINDOW
from rollout.core.spec import JQ_FIRST_VALUE

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""The bounds of the Seldon executor's histograms in seconds, fixed in its source (`DefBuckets`, which both
histograms take: the Prometheus defaults plus 0.075, 0.75 and 7.5; docs/seldon-metrics.md)."""
LIBRARY_QUANTILES = {"95th-percentile-tail-latency": 0.95}
"""The metric library's quantiles of the executor's server histogram (in ms), and the quantile each reports."""


def bucket_at_or_above(limit_ms: float, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> float:
    """The smallest bucket bound (seconds) at or above `limit_ms`; ValueError above the last bound.

    >>> bucket_at_or_above(5000), bucket_at_or_above(3000), bucket_at_or_above(2500)
    (5.0, 5.0, 2.5)
    """
    i = bisect.bisect_left(buckets, limit_ms / 1000 - 1e-12)
    if i == len(buckets):
        raise ValueError(f"limit {limit_ms:g} ms is above the largest bucket bound {buckets[-1]:g} s")
    return buckets[i]


def _le_pattern(bound: float) -> str:
    """A regex for the `le` label of `bound`, whether the exporter writes `5`, `5.0` or `5e+00`."""
    text = f"{bound:g}"
    if "e" in text or "." in text:
        return text.replace(".", "\\\\.")
    return f"{text}(\\\\.0+)?"


def slow_request_metric(limit_ms: float, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> dict[str, Any]:
    """The metric counting predictions slower than the bucket at or above `limit_ms`.

    Its name says the bound it counts above: `requests-slower-than-5000ms`. No `or vector(0)`: a
    version without traffic, or histograms without that bound, give no data (so no test), never 0.
    """
    bound = bucket_at_or_above(limit_ms, buckets)
    total = f"sum(increase({SERVER}_count{{{PREDICTIONS}}}{WINDOW}))"
    within = f'sum(increase({SERVER}_bucket{{{PREDICTIONS},le=~"{_le_pattern(bound)}"}}{WINDOW}))'
    return {
        "name": f"requests-slower-than-{1000 * bound:g}ms",
        "description": f"Predictions slower than {bound:g} s (the histogram bucket at or above {limit_ms:g} ms)",
        "type": "Counter",
        "units": "",
        "query": f"{total} - {within}",
        "jqExpression": JQ_FIRST_VALUE,
        "kind": "events",
        "sampleSize": "request-count",
    }


def _ms(seconds: float) -> float:
    return round(1000 * seconds, 9)


def quantile_test(objective: str, quantile: float, limit_ms: float,
                  buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> dict[str, Any]:
    """The `sequential.quantileTests` entry for an objective on a latency quantile: the slow count above the bound
    at or above `limit_ms`, that bound and the histogram's bounds (ms). A limit that is no bound is refused by the
    experiment's checks, naming the nearest bounds."""
    return {"objective": objective, "quantile": quantile, "slowCount": slow_request_metric(limit_ms, buckets)["name"],
            "slowerThan": _ms(bucket_at_or_above(limit_ms, buckets)), "bounds": [_ms(b) for b in buckets]}


def with_quantile_tests(experiment: dict[str, Any]) -> dict[str, Any]:
    """`experiment` (the wire shape, with `metrics`) where, under `sequential`, each objective with an upperLimit
    on one of the library's quantiles (`LIBRARY_QUANTILES`, not replaced by a metric of the user's) and no quantile
    test gets one, and its slow count is added to the metrics. A limit above the largest bound is tested against
    that bound, which the experiment's checks refuse naming it."""
    if experiment.get("algorithm") != "sequential":
        return experiment
    sequential = dict(experiment.get("sequential") or {})
    tests = list(sequential.get("quantileTests") or [])
    metrics = list(experiment.get("metrics") or [])
    library = {m["name"]: m["query"] for m in SEED_METRICS if m["name"] in LIBRARY_QUANTILES}
    queries = {m.get("name"): m.get("query") for m in metrics if isinstance(m, dict)}
    tested = {t.get("objective") for t in tests if isinstance(t, dict)}
    for objective in experiment.get("objectives") or []:
        name = objective.get("metric") if isinstance(objective, dict) else None
        name = name.rsplit("/", 1)[-1] if isinstance(name, str) else ""
        if name not in library or queries.get(name) != library[name] or name in tested:
            continue
        try:
            limit = float(objective.get("upperLimit"))  # the experiment's checks report one that is no number
        except (TypeError, ValueError):
            continue
        if isinstance(objective.get("upperLimit"), bool) or not 0 < limit < float("inf"):
            continue
        limit_ms = min(limit, _ms(DEFAULT_BUCKETS[-1]))
        slow = slow_request_metric(limit_ms)
        if slow["name"] not in queries:
            metrics.append(slow)
            queries[slow["name"]] = slow["query"]
        tests.append(quantile_test(name, LIBRARY_QUANTILES[name], limit_ms))
        tested.add(name)
    return {**experiment, "metrics": metrics, "sequential": {**sequential, "quantileTests": tests}}
