"""Metrics for testing a latency quantile from histogram buckets (the `sequential` algorithm's
`quantileTests`): how many predictions were slower than the bucket bound at or above a limit.

A limit that falls between two bucket bounds is rounded *up* to the next bound: the share of
requests slower than that bound is never more than the share slower than the limit, so a test that
finds it too high has found the quantile above the limit. Built from the metric library's series
and selectors, so it follows them.
"""

from __future__ import annotations

import bisect
from typing import Any

from components.metrics.seldon import PREDICTIONS, SERVER, WINDOW
from rollout.core.spec import JQ_FIRST_VALUE

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""The bounds of the Seldon executor's histograms in seconds: the Prometheus defaults plus 0.075, 0.75
and 7.5 (docs/seldon-metrics.md)."""


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
        "sampleSize": "request-count",
    }


def quantile_test(objective: str, quantile: float, limit_ms: float,
                  buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> dict[str, Any]:
    """The `sequential.quantileTests` entry for an objective on a latency quantile."""
    return {"objective": objective, "quantile": quantile,
            "slowCount": slow_request_metric(limit_ms, buckets)["name"]}
