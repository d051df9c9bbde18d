"""docs/istio-metrics.md's tables as data: the gateway's Istio standard metrics, labels and values.

Transcribed by hand from the doc (read from istio/proxy 1.30.3,
`source/extensions/filters/http/istio_stats/istio_stats.cc` and
`testdata/metric/client_request_total.yaml.tmpl`, and Envoy's `histogram_impl.cc`), not from
`localenv`: the conformance test checks the data plane against this.
"""

from __future__ import annotations

FAMILIES = {"istio_requests": "counter", "istio_request_duration_milliseconds": "histogram"}
"""As a text-format parser names them (`istio_requests_total` is the counter's sample)."""
LABELS = ("reporter", "source_workload", "source_canonical_service", "source_canonical_revision",
          "source_workload_namespace", "source_principal", "source_app", "source_version", "source_cluster",
          "destination_workload", "destination_workload_namespace", "destination_principal", "destination_app",
          "destination_version", "destination_service", "destination_canonical_service",
          "destination_canonical_revision", "destination_service_name", "destination_service_namespace",
          "destination_cluster", "request_protocol", "response_code", "grpc_response_status", "response_flags",
          "connection_security_policy")
BUCKETS = ("0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "30000",
           "60000", "300000", "600000", "1800000", "3600000", "+Inf")
GATEWAY_SOURCE = {"reporter": "source", "source_workload": "istio-ingressgateway",
                  "source_workload_namespace": "istio-system", "source_canonical_service": "istio-ingressgateway",
                  "source_canonical_revision": "latest", "request_protocol": "http", "grpc_response_status": "",
                  "connection_security_policy": "unknown"}
"""Every request the ingress gateway reports (a client-side reporter: its listeners are outbound)."""
SIDECAR_DESTINATION = {"reporter": "destination", "source_workload": "istio-ingressgateway",
                       "source_workload_namespace": "istio-system", "source_app": "istio-ingressgateway",
                       "source_canonical_service": "istio-ingressgateway", "source_canonical_revision": "latest",
                       "source_principal": "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
                       "request_protocol": "http", "response_flags": "-", "connection_security_policy": "mutual_tls"}
"""The same request as the destination pod's sidecar reports it (a server-side reporter, mTLS)."""


def kserve_destination(isvc: str, namespace: str) -> dict[str, str]:
    """A request to a KServe raw-mode predictor pod (its labels: `app: isvc.<isvc>-predictor`, no `version`)."""
    service = f"{isvc}-predictor"
    return {"destination_workload": service, "destination_workload_namespace": namespace,
            "destination_app": f"isvc.{service}", "destination_version": "unknown",
            "destination_service": f"{service}.{namespace}.svc.cluster.local",
            "destination_service_name": service, "destination_service_namespace": namespace,
            "destination_canonical_service": f"isvc.{service}", "destination_canonical_revision": "latest",
            "destination_principal": f"spiffe://cluster.local/ns/{namespace}/sa/default",
            "destination_cluster": "Kubernetes"}


NO_POD = {"destination_workload": "unknown", "destination_app": "unknown", "destination_version": "unknown",
          "destination_canonical_service": "unknown", "destination_canonical_revision": "latest",
          "destination_principal": "unknown", "destination_cluster": "unknown"}
"""No peer metadata (no endpoint answered): Istio's fallbacks."""
RESPONSE_FLAGS = {"ok": "-", "no route": "NR", "no healthy upstream": "UH"}
