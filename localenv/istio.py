"""Istio's standard metrics, as the ingress gateway's Envoy reports each request it forwards.

Read from istio/proxy 1.30.3, `source/extensions/filters/http/istio_stats/istio_stats.cc` (cited in
docs/istio-metrics.md): a gateway's listeners are outbound, so it reports as a client
(`reporter="source"`, its own workload as `source_*`, the endpoint's peer metadata as
`destination_*`, `"unknown"` where there is no peer, `destination_canonical_revision` `"latest"`),
one `istio_requests_total` increment and one `istio_request_duration_milliseconds` observation per
request, with the 25 labels in the order of `testdata/metric/client_request_total.yaml.tmpl`. The
buckets are Envoy's defaults (`source/common/stats/histogram_impl.cc`,
`HistogramSettingsImpl::defaultBuckets`): Istio's bootstrap sets none unless the pod has the
`sidecar.istio.io/statsHistogramBuckets` annotation. Each destination pod's sidecar reports the
same request as a server (`reporter="destination"`, the gateway as the peer, `mutual_tls`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

REQUESTS = "istio_requests"
"""`istio_requests_total` once the exposition adds `_total`."""
DURATION = "istio_request_duration_milliseconds"
LABELS = ("reporter", "source_workload", "source_canonical_service", "source_canonical_revision",
          "source_workload_namespace", "source_principal", "source_app", "source_version", "source_cluster",
          "destination_workload", "destination_workload_namespace", "destination_principal", "destination_app",
          "destination_version", "destination_service", "destination_canonical_service",
          "destination_canonical_revision", "destination_service_name", "destination_service_namespace",
          "destination_cluster", "request_protocol", "response_code", "grpc_response_status", "response_flags",
          "connection_security_policy")
BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000,
           3600000)
"""Milliseconds: Envoy's `defaultBuckets`."""
UNKNOWN, LATEST = "unknown", "latest"
CLUSTER = "Kubernetes"
"""The default `ISTIO_META_CLUSTER_ID` of a single-cluster install."""
GATEWAY_NAMESPACE, GATEWAY_WORKLOAD = "istio-system", "istio-ingressgateway"
GATEWAY_SERVICE_ACCOUNT = "istio-ingressgateway-service-account"
PROXY_CONTAINER, PROXY_PORT, PROXY_PATH = "istio-proxy", 15090, "/stats/prometheus"
NO_FLAGS, NO_ROUTE, NO_HEALTHY_UPSTREAM = "-", "NR", "UH"
"""Envoy's `ResponseFlagUtils::toShortString`: none, no route configured, no healthy upstream."""


@dataclass(frozen=True)
class Workload:
    """The peer metadata of a destination pod (what Istio's metadata exchange carries)."""

    name: str
    """The workload: the pod's Deployment."""
    namespace: str
    labels: Mapping[str, str]
    service_account: str = "default"

    @property
    def app(self) -> str:
        return self.labels.get("app") or UNKNOWN

    @property
    def version(self) -> str:
        return self.labels.get("version") or UNKNOWN

    @property
    def canonical_service(self) -> str:
        """`service.istio.io/canonical-name`, else `app.kubernetes.io/name`, else `app`, else the workload."""
        for key in ("service.istio.io/canonical-name", "app.kubernetes.io/name", "app"):
            if self.labels.get(key):
                return self.labels[key]
        return self.name

    @property
    def canonical_revision(self) -> str:
        for key in ("service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"):
            if self.labels.get(key):
                return self.labels[key]
        return LATEST

    @property
    def principal(self) -> str:
        return f"spiffe://cluster.local/ns/{self.namespace}/sa/{self.service_account}"


GATEWAY = Workload(GATEWAY_WORKLOAD, GATEWAY_NAMESPACE,
                   {"app": GATEWAY_WORKLOAD, "istio": "ingressgateway"}, GATEWAY_SERVICE_ACCOUNT)
"""The ingress gateway's own workload (its Deployment and labels as Istio's gateway chart sets them)."""


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def gateway_labels(service_host: str | None, peer: Workload | None, code: int, flags: str) -> tuple[str, ...]:
    """A request the ingress gateway reports (`Reporter::ClientSidecar`): itself as the source, the
    endpoint's peer metadata as the destination; `service_host` None when no route answered."""
    service_name, _, rest = (service_host or "").partition(".")
    service_namespace = rest.split(".")[0] if rest else ""
    return (
        "source", GATEWAY_WORKLOAD, GATEWAY_WORKLOAD, LATEST, GATEWAY_NAMESPACE,
        GATEWAY.principal if peer else UNKNOWN,
        GATEWAY_WORKLOAD, UNKNOWN, CLUSTER,
        peer.name if peer else UNKNOWN,
        peer.namespace if peer else (service_namespace or UNKNOWN),
        peer.principal if peer else UNKNOWN,
        peer.app if peer else UNKNOWN,
        peer.version if peer else UNKNOWN,
        service_host or UNKNOWN,
        peer.canonical_service if peer else UNKNOWN,
        peer.canonical_revision if peer else LATEST,
        service_name or UNKNOWN,
        service_namespace or UNKNOWN,
        CLUSTER if peer else UNKNOWN,
        "http", str(code), "", flags, UNKNOWN,
    )


def sidecar_labels(service_host: str, local: Workload, code: int) -> tuple[str, ...]:
    """The same request as the destination pod's sidecar reports it (`Reporter::ServerSidecar`): the
    gateway as the peer (`source_*`), itself as the destination; the connection is mutual TLS."""
    service_name = service_host.partition(".")[0]
    return (
        "destination", GATEWAY.name, GATEWAY.canonical_service, GATEWAY.canonical_revision, GATEWAY.namespace,
        GATEWAY.principal, GATEWAY.app, GATEWAY.version, CLUSTER,
        local.name, local.namespace, local.principal, local.app, local.version, service_host,
        local.canonical_service, local.canonical_revision, service_name, local.namespace, CLUSTER,
        "http", str(code), "", NO_FLAGS, "mutual_tls",
    )


class IstioMetrics(Collector):
    """One Envoy's `istio_requests_total` and `istio_request_duration_milliseconds` (the gateway's, or
    a pod's sidecar)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, ...], int] = {}
        self._durations: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)

    def record(self, labels: tuple[str, ...], milliseconds: float) -> None:
        with self._lock:
            self._counts[labels] = self._counts.get(labels, 0) + 1
            buckets, total = self._durations.setdefault(labels, ([0] * (len(BUCKETS) + 1), [0.0]))
            for i, bound in enumerate(BUCKETS):
                if milliseconds <= bound:
                    buckets[i] += 1
            buckets[-1] += 1
            total[0] += milliseconds

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts = sorted(self._counts.items())
            durations = sorted((k, (list(b), t[0])) for k, (b, t) in self._durations.items())
        if not counts:
            return
        requests = CounterMetricFamily(REQUESTS, "", labels=LABELS)
        for labels, n in counts:
            requests.add_metric(list(labels), float(n))
        yield requests
        histogram = HistogramMetricFamily(DURATION, "", labels=LABELS)
        bounds = [*(_bound(b) for b in BUCKETS), "+Inf"]
        for labels, (buckets, total) in durations:
            histogram.add_metric(list(labels), [(b, float(n)) for b, n in zip(bounds, buckets, strict=True)], total)
        yield histogram

    def exposition(self) -> bytes:
        return generate_latest(self._registry)


class GatewayMetrics(IstioMetrics):
    """The ingress gateway's Envoy: one pod in `istio-system`."""

    def __init__(self) -> None:
        super().__init__()
        template = hashlib.sha256(b"istio-ingressgateway").hexdigest()[:10]
        self.pod = f"{GATEWAY_WORKLOAD}-{template}-{hashlib.sha256(template.encode()).hexdigest()[:5]}"

    def request(self, service_host: str | None, destination: Workload | None, code: int, flags: str,
                milliseconds: float) -> None:
        """One request the gateway answered: `service_host` the route's destination (None: no route)."""
        self.record(gateway_labels(service_host, destination, code, flags), milliseconds)

    def pod_labels(self) -> dict[str, str]:
        return dict(GATEWAY.labels)
