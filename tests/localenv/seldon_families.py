"""docs/seldon-metrics.md as data: Seldon Core v1's metric families, labels and `service` values.

Transcribed by hand from the doc's tables (which name the files of SeldonIO/seldon-core v1.13.1 they
were read from), not from `localenv`: the conformance test checks the data plane against this.
"""

from __future__ import annotations

from dataclasses import dataclass

EXECUTOR, MODEL_SERVER = "executor", "model server"
COMMON = frozenset({"deployment_name", "predictor_name", "predictor_version", "service", "method", "code"})


@dataclass(frozen=True)
class Family:
    name: str
    """As a text-format parser names the family (a counter without `_total`)."""
    type: str
    container: str
    labels: frozenset[str]
    """Label names as exported (without `le` and `quantile`)."""
    source: str


FAMILIES = (
    Family("seldon_api_executor_server_requests_seconds", "histogram", EXECUTOR, COMMON,
           "executor/api/metric/server.go"),
    Family("seldon_api_executor_server_requests_seconds_summary", "summary", EXECUTOR, COMMON,
           "executor/api/metric/server.go"),
    Family("seldon_api_executor_client_requests_seconds", "histogram", EXECUTOR,
           COMMON | {"model_name", "model_image", "model_version"}, "executor/api/metric/client.go"),
    Family("seldon_api_executor_client_requests_seconds_summary", "summary", EXECUTOR,
           COMMON | {"model_name", "model_image", "model_version"}, "executor/api/metric/client.go"),
    Family("seldon_api_model_feedback", "counter", MODEL_SERVER,
           frozenset({"method", "deployment_name", "model_name", "model_image", "model_version", "predictor_name",
                      "predictor_version", "seldon_deployment_name", "image_name", "image_version", "worker_id"}),
           "python/seldon_core/metrics.py"),
    Family("seldon_api_model_feedback_reward", "counter", MODEL_SERVER,
           frozenset({"method", "deployment_name", "model_name", "model_image", "model_version", "predictor_name",
                      "predictor_version", "seldon_deployment_name", "image_name", "image_version", "worker_id"}),
           "python/seldon_core/metrics.py"),
)

SERVICE = {
    # (family, transport, protocol): service values of a prediction and of a feedback call
    ("server", "rest", "seldon"): ("predictions", "feedback"),
    ("server", "rest", "v2"): ("predictions", None),
    ("server", "rest", "tensorflow"): ("predictions", "feedback"),
    ("server", "grpc", "seldon"): ("/seldon.protos.Seldon/Predict", "/seldon.protos.Seldon/SendFeedback"),
    ("server", "grpc", "v2"): ("/inference.GRPCInferenceService/ModelInfer", None),
    ("server", "grpc", "tensorflow"): ("/tensorflow.serving.PredictionService/Predict", None),
    ("client", "rest", "seldon"): ("/predict", "/send-feedback"),
    ("client", "rest", "v2"): ("/v2/models/{model}/infer", None),
    ("client", "rest", "tensorflow"): ("/v1/models/{model}:predict", None),
    ("client", "grpc", "seldon"): ("/seldon.protos.Model/Predict", "/seldon.protos.Model/SendFeedback"),
    ("client", "grpc", "v2"): ("/inference.GRPCInferenceService/ModelInfer", None),
    ("client", "grpc", "tensorflow"): ("/tensorflow.serving.PredictionService/Predict", None),
}
"""None: no such call is made (only the seldon protocol forwards feedback to the model)."""

METHOD = {"rest": "post", "grpc": "unary", MODEL_SERVER: "feedback"}
BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1", "2.5", "5", "7.5", "10",
           "+Inf")
QUANTILES = ("0.5", "0.75", "0.9", "0.98", "0.99", "1")
ADDED_BY_PROMETHEUS = {"seldon_deployment_id", "kubernetes_namespace", "kubernetes_pod_name", "app", "version",
                       "seldon_app", "seldon_app_svc", "seldon_io_model", "app_kubernetes_io_managed_by", "fluentd",
                       "pod_template_hash"}
"""From the pod's labels and namespace by job `kubernetes-pods` of seldon-core-analytics; never exported."""
