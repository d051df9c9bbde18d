"""Seldon's executor histograms, in seconds, with the labels the project's PromQL selects on.

- `seldon_api_executor_server_requests_seconds`: every request the executor receives (service
  `predictions` or `feedback`), timed from arrival to answer;
- `seldon_api_executor_client_requests_seconds`: the executor's call to the model, for predictions.

Labels: `seldon_deployment_id` (the SeldonDeployment's name), `predictor_name`,
`kubernetes_namespace` (which Prometheus adds from pod metadata in a cluster; set here directly),
`code` (the HTTP status as a string) and `service`. Buckets are the Prometheus client defaults, as
the executor's are.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

SERVER = "seldon_api_executor_server_requests_seconds"
CLIENT = "seldon_api_executor_client_requests_seconds"
LABELS = ("seldon_deployment_id", "predictor_name", "kubernetes_namespace", "code", "service")
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ExecutorMetrics:
    """One registry per data plane (never the process-global one), so tests stay independent."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._server = Histogram(SERVER, "Executor: incoming requests", LABELS, registry=self.registry)
        self._client = Histogram(CLIENT, "Executor: requests to the model", LABELS, registry=self.registry)

    def server_request(self, deployment: str, predictor: str, namespace: str, code: int, service: str,
                       seconds: float) -> None:
        self._server.labels(deployment, predictor, namespace, str(code), service).observe(seconds)

    def client_request(self, deployment: str, predictor: str, namespace: str, code: int, service: str,
                       seconds: float) -> None:
        self._client.labels(deployment, predictor, namespace, str(code), service).observe(seconds)

    def exposition(self) -> bytes:
        """The Prometheus text format of every series."""
        return generate_latest(self.registry)
