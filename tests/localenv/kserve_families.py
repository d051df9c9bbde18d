"""docs/kserve.md's metric table as data: the KServe Python model server's families and labels.

Transcribed by hand from the doc (read from kserve/kserve v0.20.0, `python/kserve/kserve/metrics.py`
and `model.py`), not from `localenv`: the conformance test checks the data plane against this.
"""

from __future__ import annotations

FAMILIES = {
    # name: help, as `Histogram(name, help, ["model_name"])` declares it
    "request_preprocess_seconds": "pre-process request latency",
    "request_postprocess_seconds": "post-process request latency",
    "request_predict_seconds": "predict request latency",
    "request_explain_seconds": "explain request latency",
}
TYPE = "histogram"
LABELS = frozenset({"model_name"})
OBSERVED_BY_PREDICT = frozenset({"request_preprocess_seconds", "request_predict_seconds",
                                 "request_postprocess_seconds"})
"""`Model.__call__` with verb PREDICT (v1 `:predict`, v2 `/infer`): explain only for `:explain`."""
BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1.0", "2.5", "5.0", "7.5",
           "10.0", "+Inf")
"""prometheus_client's `Histogram.DEFAULT_BUCKETS`, as the Python client writes them."""
CONTAINER, PORT, PATH = "kserve-container", "8080", "/metrics"
"""config/runtimes/kserve-sklearnserver.yaml: `prometheus.kserve.io/port: '8080'`, `/path: "/metrics"`."""
