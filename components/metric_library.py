"""The seed's six metrics as data, with the seed's query mistakes fixed.

Fixes against the seed's metrics.yaml (each is listed in the README):
1. `request-count` counts requests (`..._count`), not summed latency seconds (`..._sum`).
2. Latencies are converted from the histograms' seconds to milliseconds, as their units say, so
   the seed's limits (2000 ms, 5000 ms) mean what they were meant to.
3. Latency and error metrics look only at predictions (`service="predictions"`): feedback calls
   land in the same histograms and would dilute them.
4. With no traffic, `mean-latency` and `error-rate` are 0/0 and `95th-percentile-tail-latency` is
   an empty vector: all three come back as "no data" (the client checks), never as 0.
"""

from __future__ import annotations

from typing import Any

SELECTOR = 'seldon_deployment_id="$sid",predictor_name="$predictor",kubernetes_namespace="$ns"'
PREDICTIONS = f'service="predictions",{SELECTOR}'
ERRORS = f'code!="200",{PREDICTIONS}'
FEEDBACK = f'service="feedback",{SELECTOR}'
WINDOW = "[${elapsedTime}s]"
JQ_FIRST_VALUE = ".data.result[0].value[1] | tonumber"

CLIENT = "seldon_api_executor_client_requests_seconds"
SERVER = "seldon_api_executor_server_requests_seconds"


def _increase(series: str, selector: str) -> str:
    return f"sum(increase({series}{{{selector}}}{WINDOW}))"


SEED_METRICS: tuple[dict[str, Any], ...] = (
    {
        "name": "95th-percentile-tail-latency",
        "description": "95th percentile tail latency of predictions",
        "type": "Gauge",
        "units": "milliseconds",
        "query": f"1000 * histogram_quantile(0.95, sum(rate({CLIENT}_bucket{{{PREDICTIONS}}}{WINDOW})) by (le))",
        "jqExpression": JQ_FIRST_VALUE,
        "sampleSize": "request-count",
    },
    {
        "name": "error-count",
        "description": "Number of error responses to predictions",
        "type": "Counter",
        "units": "",
        "query": f"{_increase(f'{SERVER}_count', ERRORS)} or on() vector(0)",
        "jqExpression": JQ_FIRST_VALUE,
    },
    {
        "name": "error-rate",
        "description": "Fraction of predictions with error responses",
        "type": "Gauge",
        "units": "",
        "query": f"({_increase(f'{SERVER}_count', ERRORS)} or on() vector(0))"
                 f" / {_increase(f'{SERVER}_count', PREDICTIONS)}",
        "jqExpression": JQ_FIRST_VALUE,
        "sampleSize": "request-count",
    },
    {
        "name": "mean-latency",
        "description": "Mean latency of predictions",
        "type": "Gauge",
        "units": "milliseconds",
        "query": f"1000 * {_increase(f'{CLIENT}_sum', PREDICTIONS)} / {_increase(f'{CLIENT}_count', PREDICTIONS)}",
        "jqExpression": JQ_FIRST_VALUE,
        "sampleSize": "request-count",
    },
    {
        "name": "request-count",
        "description": "Number of prediction requests",
        "type": "Counter",
        "units": "",
        "query": f"{_increase(f'{CLIENT}_count', PREDICTIONS)} or on() vector(0)",
        "jqExpression": JQ_FIRST_VALUE,
    },
    {
        "name": "user-engagement",
        "description": "Number of feedback requests",
        "type": "Gauge",
        "units": "",
        "query": f"{_increase(f'{SERVER}_count', FEEDBACK)} or on() vector(0)",
        "jqExpression": JQ_FIRST_VALUE,
    },
)
"""Metric definitions in the shape of the experiment's `metrics` input (Iter8's Metric spec)."""


def metric_library(extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The seed's metrics plus the user's own; a user metric with a seed name replaces it."""
    extra = extra or []
    names = {m.get("name") for m in extra}
    return [dict(m) for m in SEED_METRICS if m["name"] not in names] + [dict(m) for m in extra]
