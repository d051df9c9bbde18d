"""KServe's model-server metrics (latency) with errors and counts from the mesh (Istio's standard metrics).

The model server's histograms (docs/kserve.md; KServe `python/kserve/kserve/metrics.py`, `PROM_LABELS =
["model_name"]`; `python/kserve/kserve/model.py`, each step inside its histogram's timer) are in
seconds and labelled by `model_name` only, the InferenceService's name (`$sid`); the version is told
apart by the pod's `namespace`, which the scrape job's pod relabelling adds (Istio's
`samples/addons/prometheus.yaml`). Latency is `request_predict_seconds`: every predict, failed ones
included (postprocess is timed only on success). KServe counts no errors, so error-count,
error-rate, request-count and user-engagement are Istio's (components/metrics/istio.py).
"""

from __future__ import annotations

from typing import Any

from components.metrics.istio import istio_library
from rollout.core.spec import JQ_FIRST_VALUE

SELECTOR = 'model_name="$sid",namespace="$ns"'
PREDICT = "request_predict_seconds"
WINDOW = "[${elapsedTime}s]"


def _increase(series: str) -> str:
    return f"sum(increase({series}{{{SELECTOR}}}{WINDOW}))"


LATENCY: tuple[dict[str, Any], ...] = (
    {
        "name": "95th-percentile-tail-latency",
        "description": "95th percentile of the model server's predict latency (KServe)",
        "type": "Gauge",
        "units": "milliseconds",
        "query": f"1000 * histogram_quantile(0.95, sum(rate({PREDICT}_bucket{{{SELECTOR}}}{WINDOW})) by (le))",
        "jqExpression": JQ_FIRST_VALUE,
        "kind": "quantile",
        "sampleSize": "request-count",
    },
    {
        "name": "mean-latency",
        "description": "Mean predict latency of the model server (KServe)",
        "type": "Gauge",
        "units": "milliseconds",
        "query": f"1000 * {_increase(f'{PREDICT}_sum')} / {_increase(f'{PREDICT}_count')}",
        "jqExpression": JQ_FIRST_VALUE,
        "kind": "mean",
        "sampleSize": "request-count",
    },
)

KSERVE_METRICS: tuple[dict[str, Any], ...] = tuple(sorted((*LATENCY, *istio_library(errors_only=True)),
                                                          key=lambda m: m["name"]))
