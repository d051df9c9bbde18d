"""Istio's standard metrics as the experiment's metric library: for any model server behind Istio
sidecars, whatever the route object (VirtualService or HTTPRoute).

Series and labels as docs/istio-metrics.md lists them (istio/proxy 1.30.3,
`source/extensions/filters/http/istio_stats/istio_stats.cc`): `istio_requests_total` and
`istio_request_duration_milliseconds` (a histogram in milliseconds, Envoy's default buckets). Each
version is selected by `destination_workload_namespace="$ns"` (each version has a namespace of its
own) with `reporter="destination"`: the version's own sidecar reports every request that reached it
once, so the gateway's client-side series (`reporter="source"`) are not counted twice (Flagger selects
the same reporter). An error is a 5xx `response_code`.

There is no reward here (no `user-engagement`): KServe has no feedback endpoint and Istio sees no
business outcome, and a count of successes would reward the version with the most traffic. An A/B test
needs your own reward metric (`extraMetrics`); without one, test Canary (Pulumi.kserve.yaml).
"""

from __future__ import annotations

from typing import Any

from rollout.core.spec import JQ_FIRST_VALUE

SELECTOR = 'reporter="destination",destination_workload_namespace="$ns"'
ERRORS = f'response_code=~"5..",{SELECTOR}'
WINDOW = "[${elapsedTime}s]"
REQUESTS = "istio_requests_total"
DURATION = "istio_request_duration_milliseconds"


def _increase(series: str, selector: str) -> str:
    return f"sum(increase({series}{{{selector}}}{WINDOW}))"


def istio_library(errors_only: bool = False) -> tuple[dict[str, Any], ...]:
    """The library in the shape of the experiment's `metrics` input; only the error metrics with `errors_only`
    (the KServe library takes its errors from the mesh)."""
    errors = (
        {
            "name": "error-count",
            "description": "Number of 5xx responses to requests (Istio, reported by the version's sidecar)",
            "type": "Counter",
            "units": "",
            "query": f"{_increase(REQUESTS, ERRORS)} or on() vector(0)",
            "jqExpression": JQ_FIRST_VALUE,
            "kind": "events",
        },
        {
            "name": "error-rate",
            "description": "Fraction of requests answered 5xx (Istio)",
            "type": "Gauge",
            "units": "",
            "query": f"({_increase(REQUESTS, ERRORS)} or on() vector(0)) / {_increase(REQUESTS, SELECTOR)}",
            "jqExpression": JQ_FIRST_VALUE,
            "kind": "share",
            "sampleSize": "request-count",
        },
        {
            "name": "request-count",
            "description": "Number of requests (Istio)",
            "type": "Counter",
            "units": "",
            "query": f"{_increase(REQUESTS, SELECTOR)} or on() vector(0)",
            "jqExpression": JQ_FIRST_VALUE,
            "kind": "events",
        },
    )
    if errors_only:
        return errors
    latency = (
        {
            "name": "95th-percentile-tail-latency",
            "description": "95th percentile tail latency of requests (Istio)",
            "type": "Gauge",
            "units": "milliseconds",
            "query": f"histogram_quantile(0.95, sum(rate({DURATION}_bucket{{{SELECTOR}}}{WINDOW})) by (le))",
            "jqExpression": JQ_FIRST_VALUE,
            "kind": "quantile",
            "sampleSize": "request-count",
        },
        {
            "name": "mean-latency",
            "description": "Mean latency of requests (Istio)",
            "type": "Gauge",
            "units": "milliseconds",
            "query": f"{_increase(f'{DURATION}_sum', SELECTOR)} / {_increase(f'{DURATION}_count', SELECTOR)}",
            "jqExpression": JQ_FIRST_VALUE,
            "kind": "mean",
            "sampleSize": "request-count",
        },
    )
    return tuple(sorted((*latency, *errors), key=lambda m: m["name"]))


ISTIO_METRICS = istio_library()
