"""The pods Seldon would run, and the Prometheus service discovery of their metrics endpoints.

In a cluster each SeldonDeployment's predictor runs in a pod with two metrics ports: the executor's
(`seldon-container-engine`, 8000) and the model server's (`classifier`, 6000), both on path
`/prometheus`; the seed's Prometheus finds them with Kubernetes service discovery and relabels the
`__meta_kubernetes_*` labels into `seldon_deployment_id`, `kubernetes_namespace`, ...

Here one `Pod` stands for each SeldonDeployment, and the data plane serves the same facts at
`GET /discovery/targets` in Prometheus's HTTP service-discovery format: one target per container,
all at the data plane's address, each with its own path (`/pods/<namespace>/<pod>/<container>/prometheus`)
and the `__meta_kubernetes_*` labels Kubernetes discovery would give. `localenv/prometheus.py` writes
the seed's relabelling over them. Names and labels follow docs/seldon-metrics.md.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from localenv.istio import IstioMetrics
from localenv.metrics import ExecutorMetrics, ModelServerMetrics
from localenv.routes import ServedModel

if TYPE_CHECKING:  # kserve imports the executor, which imports this module
    from localenv.engagement import Engagement
    from localenv.istio import GatewayMetrics
    from localenv.kserve import ModelServer

EXECUTOR_CONTAINER = "seldon-container-engine"
EXECUTOR_PORT = 8000
MODEL_METRICS_PORT = 6000
IMAGE_TAG = "1.13.1"
"""The tag the operator gives a prepackaged server's image (its `defaultImageVersion`)."""
DISCOVERY_PATH = "/discovery/targets"
MESH_DISCOVERY_PATH = "/discovery/mesh-targets"
TARGET_PATH = re.compile(r"^/pods/([^/]+)/([^/]+)/([^/]+)/prometheus$")


def _digest(*parts: str, length: int) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


@dataclass(frozen=True, eq=False)
class Pod:
    """One SeldonDeployment's pod: what it serves and its two containers' metrics.

    A changed spec (promotion) makes a new pod, with a new name and fresh counters, as the rolling
    update of the Deployment does in a cluster.
    """

    served: ServedModel
    image: str
    """The model container's image, `seldonio/sklearnserver:1.13.1`."""
    executor: ExecutorMetrics
    model_server: ModelServerMetrics
    sidecar: IstioMetrics
    """The pod's Istio sidecar (listed in the mesh discovery, not in the seed's)."""

    @classmethod
    def start(cls, served: ServedModel, image_name: str) -> Pod:
        image = f"{image_name}:{IMAGE_TAG}"
        return cls(served, image, ExecutorMetrics(served.deployment, served.predictor),
                   ModelServerMetrics(served.deployment, served.predictor, served.predictor, served.node, image,
                                      str(os.getpid())), IstioMetrics())

    @property
    def deployment_name(self) -> str:
        """The Kubernetes Deployment: `<sdep>-<predictor>-0-<container>`."""
        s = self.served
        return f"{s.deployment}-{s.predictor}-0-{s.node}"

    @property
    def template_hash(self) -> str:
        s = self.served
        return _digest(s.namespace, s.deployment, s.predictor, s.node, s.implementation, s.model_uri, self.image,
                       length=10)

    @property
    def name(self) -> str:
        return f"{self.deployment_name}-{self.template_hash}-{_digest(self.template_hash, length=5)}"

    def labels(self) -> dict[str, str]:
        """The pod's labels, as the operator and the Deployment controller set them."""
        s = self.served
        return {"seldon-deployment-id": s.deployment, "app": self.deployment_name, "version": s.predictor,
                "seldon-app": s.service, "seldon-app-svc": f"{s.service}-{s.node}", "seldon.io/model": "true",
                "app.kubernetes.io/managed-by": "seldon-core", "fluentd": "true",
                "pod-template-hash": self.template_hash}

    def containers(self) -> dict[str, tuple[int, ExecutorMetrics | ModelServerMetrics]]:
        return {EXECUTOR_CONTAINER: (EXECUTOR_PORT, self.executor),
                self.served.node: (MODEL_METRICS_PORT, self.model_server)}

    def path(self, container: str) -> str:
        return f"/pods/{self.served.namespace}/{self.name}/{container}/prometheus"


def _label_name(key: str) -> str:
    """Kubernetes discovery's sanitizing of a label key: anything but [a-zA-Z0-9_] becomes `_`."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


def target_groups(pods: list[Pod], address: str) -> list[dict[str, Any]]:
    """Prometheus HTTP SD: one group per container metrics port, with Kubernetes pod-role meta labels."""
    groups = []
    for pod in sorted(pods, key=lambda p: p.name):
        pod_labels = {f"__meta_kubernetes_pod_label_{_label_name(k)}": v for k, v in pod.labels().items()}
        for container, (port, _) in pod.containers().items():
            groups.append({"targets": [address], "labels": {
                **pod_labels,
                "__meta_kubernetes_namespace": pod.served.namespace,
                "__meta_kubernetes_pod_name": pod.name,
                "__meta_kubernetes_pod_container_name": container,
                "__meta_kubernetes_pod_container_port_name": "metrics",
                "__meta_kubernetes_pod_container_port_number": str(port),
                "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
                "__meta_kubernetes_pod_annotation_prometheus_io_path": pod.path(container),
                # All targets share the data plane's address; in a cluster `instance` is podIP:port.
                "instance": f"{pod.name}:{port}",
            }})
    return groups


@dataclass(frozen=True)
class MeshTarget:
    """A metrics endpoint of the mesh's pods: the gateway's Envoy or a KServe predictor's model server.

    Listed apart from the Seldon pods (`MESH_DISCOVERY_PATH`): their ports are not named `metrics`,
    so the seed's job would drop them; `localenv.scrape_config`'s second job scrapes them with the
    rules of Istio's Prometheus (annotations `prometheus.io/scrape`, `/path`, `/port`).
    """

    namespace: str
    pod: str
    container: str
    port: int
    port_name: str
    metrics_path: str
    labels: Mapping[str, str]
    exposition: Callable[[], bytes]

    @property
    def path(self) -> str:
        return f"/pods/{self.namespace}/{self.pod}/{self.container}{self.metrics_path}"

    def group(self, address: str) -> dict[str, Any]:
        pod_labels = {f"__meta_kubernetes_pod_label_{_label_name(k)}": v for k, v in self.labels.items()}
        return {"targets": [address], "labels": {
            **pod_labels,
            "__meta_kubernetes_namespace": self.namespace,
            "__meta_kubernetes_pod_name": self.pod,
            "__meta_kubernetes_pod_phase": "Running",
            "__meta_kubernetes_pod_container_name": self.container,
            "__meta_kubernetes_pod_container_port_name": self.port_name,
            "__meta_kubernetes_pod_container_port_number": str(self.port),
            "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
            "__meta_kubernetes_pod_annotation_prometheus_io_port": str(self.port),
            "__meta_kubernetes_pod_annotation_prometheus_io_path": self.path,
            "instance": f"{self.pod}:{self.port}",
        }}


def mesh_targets(gateway: GatewayMetrics, servers: list[ModelServer], pods: list[Pod],
                 engagement: Engagement | None = None) -> list[MeshTarget]:
    """The gateway's Envoy (`istio-proxy`, 15090 `/stats/prometheus`), each KServe predictor pod's
    model server (`kserve-container`, 8080 `/metrics`, as the runtimes' `prometheus.kserve.io` annotations
    say), every model pod's sidecar (KServe's and Seldon's `istio-proxy`) and the engagement application
    standing in for the user's own (`localenv/engagement.py`)."""
    from localenv.istio import GATEWAY_NAMESPACE, PROXY_CONTAINER, PROXY_PATH, PROXY_PORT
    from localenv.kserve import CONTAINER, HTTP_PORT, METRICS_PATH

    targets = [MeshTarget(GATEWAY_NAMESPACE, gateway.pod, PROXY_CONTAINER, PROXY_PORT, "http-envoy-prom", PROXY_PATH,
                          gateway.pod_labels(), gateway.exposition)]
    for server in sorted(servers, key=lambda s: (s.isvc.namespace, s.pod)):
        targets.append(MeshTarget(server.isvc.namespace, server.pod, CONTAINER, HTTP_PORT, "http1", METRICS_PATH,
                                  server.labels(), server.metrics.exposition))
        targets.append(MeshTarget(server.isvc.namespace, server.pod, PROXY_CONTAINER, PROXY_PORT, "http-envoy-prom",
                                  PROXY_PATH, server.labels(), server.sidecar.exposition))
    for pod in sorted(pods, key=lambda p: (p.served.namespace, p.name)):
        targets.append(MeshTarget(pod.served.namespace, pod.name, PROXY_CONTAINER, PROXY_PORT, "http-envoy-prom",
                                  PROXY_PATH, pod.labels(), pod.sidecar.exposition))
    if engagement is not None:
        from localenv import engagement as app
        targets.append(MeshTarget(app.NAMESPACE, app.POD, app.CONTAINER, app.PORT, "http", app.METRICS_PATH,
                                  app.LABELS, engagement.exposition))
    return targets
