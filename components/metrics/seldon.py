"""The seed's six metrics as data, with the seed's query mistakes fixed, plus a reward by value.

The series and labels are Seldon Core v1's as docs/seldon-metrics.md lists them. Fixes against the
seed's metrics.yaml (each is listed in the README):
1. `request-count` counts requests (`..._count`), not summed latency seconds (`..._sum`).
2. Latencies are converted from the histograms' seconds to milliseconds, as their units say, so
   the seed's limits (2000 ms, 5000 ms) mean what they were meant to.
3. Every prediction metric reads the executor's **server** family where `service` names the
   prediction endpoint: `predictions` over REST for every protocol (seldon, v2, tensorflow), the
   predict method's full name over gRPC. The client family's `service` is the model's path
   (`/predict`, `/v2/models/<model>/infer`, `/send-feedback`), so the seed's unfiltered client
   queries mixed feedback calls into latency and request counts.
4. With no traffic, `mean-latency` and `error-rate` are 0/0 and `95th-percentile-tail-latency` is
   an empty vector: all three come back as "no data" (the client checks), never as 0.

`feedback-reward` is new: the sum of the feedback rewards, which the model server (Seldon's Python
wrapper, `seldon` protocol) counts in `seldon_api_model_feedback_reward_total`. The seed's
`user-engagement` (feedback calls, whatever their reward) stays the seed's reward.
"""

from __future__ import annotations

from typing import Any

from rollout.core.spec import JQ_FIRST_VALUE

SELECTOR = 'seldon_deployment_id="$sid",predictor_name="$predictor",kubernetes_namespace="$ns"'
PREDICTION_SERVICES = ("predictions", "/seldon.protos.Seldon/Predict", "/inference.GRPCInferenceService/ModelInfer",
                       "/tensorflow.serving.PredictionService/Predict")
"""The server family's `service` for a prediction: REST (any protocol), then gRPC seldon, v2, tensorflow."""
FEEDBACK_SERVICES = ("feedback", "/seldon.protos.Seldon/SendFeedback")
"""The server family's `service` for feedback: REST, gRPC."""
SUCCESS_CODES = ("200", "OK")
"""`code` of a success: the HTTP status over REST, the gRPC status name over gRPC."""


PREDICTION_SERVICE = "predictions|/.+/(Predict|ModelInfer)"
"""PromQL regex (fully anchored) matching exactly PREDICTION_SERVICES among the server family's
`service` values (tests/rollout/test_metric_library.py checks it); short, because every history
entry of the record keeps the queries."""
FEEDBACK_SERVICE = "feedback|/.+/SendFeedback"
"""PromQL regex matching exactly FEEDBACK_SERVICES."""

PREDICTIONS = f'service=~"{PREDICTION_SERVICE}",{SELECTOR}'
ERRORS = f'code!~"{"|".join(SUCCESS_CODES)}",{PREDICTIONS}'
FEEDBACK = f'service=~"{FEEDBACK_SERVICE}",{SELECTOR}'
WINDOW = "[${elapsedTime}s]"

SERVER = "seldon_api_executor_server_requests_seconds"
"""Every request the executor receives, arrival to answer (what a caller of the deployment waits for)."""
FEEDBACK_REWARD = "seldon_api_model_feedback_reward_total"


def _increase(series: str, selector: str) -> str:
    return f"sum(increase({series}{{{selector}}}{WINDOW}))"


SEED_METRICS: tuple[dict[str, Any], ...] = (
    {
        "name": "95th-percentile-tail-latency",
        "description": "95th percentile tail latency of predictions",
        "type": "Gauge",
        "units": "milliseconds",
        "query": f"1000 * histogram_quantile(0.95, sum(rate({SERVER}_bucket{{{PREDICTIONS}}}{WINDOW})) by (le))",
        "jqExpression": JQ_FIRST_VALUE,
        "kind": "quantile",
        "sampleSize": "request-count",
    },
    {
        "name": "error-count",
        "description": "Number of error responses to predictions",
        "type": "Counter",
        "units": "",
        "query": f"{_increase(f'{SERVER}_count', ERRORS)} or on() vector(0)",
        "jqExpression": JQ_FIRST_VALUE,
        "kind": "events",
    },
    {
        "name": "error-rate",
        "description": "Fraction of predictions with error responses",
        "type": "Gauge",
        "units": "",
        "query": f"({_increase(f'{SERVER}_count', ERRORS)} or on() vector(0))"
                 f" / {_increase(f'{SERVER}_count', PREDICTIONS)}",
        "jqExpression": JQ_FIRST_VALUE,
        "kind": "share",
        "sampleSize": "request-count",
    },
    {
        "name": "mean-latency",
        "description": "Mean latency of predictions",
        "type": "Gauge",
        "units": "milliseconds",
        "query": f"1000 * {_increase(f'{SERVER}_sum', PREDICTIONS)} / {_increase(f'{SERVER}_count', PREDICTIONS)}",
        "jqExpression": JQ_FIRST_VALUE,
        "kind": "mean",
        "sampleSize": "request-count",
    },
    {
        "name": "request-count",
        "description": "Number of prediction requests",
        "type": "Counter",
        "units": "",
        "query": f"{_increase(f'{SERVER}_count', PREDICTIONS)} or on() vector(0)",
        "jqExpression": JQ_FIRST_VALUE,
        "kind": "events",
    },
    {
        "name": "user-engagement",
        "description": "Number of feedback requests",
        "type": "Gauge",
        "units": "",
        "query": f"{_increase(f'{SERVER}_count', FEEDBACK)} or on() vector(0)",
        "jqExpression": JQ_FIRST_VALUE,
        "kind": "events",
    },
)
"""Metric definitions in the shape of the experiment's `metrics` input (Iter8's Metric spec)."""

FEEDBACK_REWARD_METRIC: dict[str, Any] = {
    "name": "feedback-reward",
    "description": "Sum of the rewards sent as feedback (seldon protocol; zero rewards are not counted)",
    "type": "Counter",
    "units": "",
    "query": f"{_increase(FEEDBACK_REWARD, SELECTOR)} or on() vector(0)",
    "jqExpression": JQ_FIRST_VALUE,
    "kind": "values",
    "sampleSize": "user-engagement",
}
"""Reward by value: `rewards: [{metric: feedback-reward, preferredDirection: High}]`. A sum of values (`kind:
values`), so `sequential` tests it on per-look mean rewards per feedback call (`sampleSize`), never as a count."""

LIBRARY_METRICS: tuple[dict[str, Any], ...] = (*SEED_METRICS, FEEDBACK_REWARD_METRIC)


def metric_library(extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The library's metrics plus the user's own; a user metric with a library name replaces it."""
    extra = extra or []
    names = {m.get("name") for m in extra}
    return [dict(m) for m in LIBRARY_METRICS if m["name"] not in names] + [dict(m) for m in extra]
