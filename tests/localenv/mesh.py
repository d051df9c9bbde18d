"""A fake cluster with KServe InferenceServices, Gateway API HTTPRoutes and ReferenceGrants.

The objects are written by hand from the APIs (serving.kserve.io/v1beta1, gateway.networking.k8s.io
v1 and v1beta1), as the program creates them: one InferenceService `iris` per version namespace,
an HTTPRoute in `default` whose backendRefs point at each version's predictor Service
(`iris-predictor`, port 80), and a ReferenceGrant in each version's namespace.
"""

from __future__ import annotations

import copy
from typing import Any

from testbed.fakes import FakeCluster

Obj = dict[str, Any]
HOST = "iris.example.com"
V1_PAYLOAD = {"instances": [[6.8, 2.8, 4.8, 1.4]]}
V2_PAYLOAD = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [6.8, 2.8, 4.8, 1.4]}]}


def inference_service(namespace: str, model_format: str, name: str = "iris",
                      storage_uri: str = "gs://kfserving-examples/models/sklearn/1.0/model") -> Obj:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": namespace,
                         "annotations": {"serving.kserve.io/deploymentMode": "Standard"}},
            "spec": {"predictor": {"model": {"modelFormat": {"name": model_format}, "storageUri": storage_uri}}}}


def backend(namespace: str, weight: int | None, name: str = "iris-predictor") -> Obj:
    ref: Obj = {"name": name, "namespace": namespace, "port": 80}
    if weight is not None:
        ref["weight"] = weight
    return ref


def http_route(*backends: Obj, name: str = "iris", namespace: str = "default", hostnames: tuple[str, ...] = (HOST,),
               created: str = "2026-01-01T00:00:00Z") -> Obj:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": namespace, "generation": 1, "creationTimestamp": created},
            "spec": {"parentRefs": [{"name": "iris-gateway", "namespace": "istio-system"}],
                     "hostnames": list(hostnames),
                     "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                "backendRefs": list(backends)}]}}


def reference_grant(namespace: str, from_namespace: str = "default", service: str | None = None) -> Obj:
    to: Obj = {"group": "", "kind": "Service"}
    if service is not None:
        to["name"] = service
    return {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
            "metadata": {"name": "allow-default-routes", "namespace": namespace},
            "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                               "namespace": from_namespace}], "to": [to]}}


class MeshCluster(FakeCluster):
    """FakeCluster plus the KServe and Gateway API kinds; records the route statuses written."""

    def __init__(self) -> None:
        super().__init__()
        self.vs = None
        self.deployments = []
        self.isvcs: list[Obj] = [inference_service("ns-baseline", "sklearn"),
                                 inference_service("ns-candidate", "xgboost")]
        self.routes: list[Obj] = [http_route(backend("ns-baseline", 9), backend("ns-candidate", 1))]
        self.grants: list[Obj] = [reference_grant("ns-baseline"), reference_grant("ns-candidate")]
        self.statuses: list[tuple[str, str, Obj]] = []

    def inference_services(self) -> list[Obj]:
        with self._lock:
            return copy.deepcopy(self.isvcs)

    def http_routes(self) -> list[Obj]:
        with self._lock:
            return copy.deepcopy(self.routes)

    def reference_grants(self) -> list[Obj]:
        with self._lock:
            return copy.deepcopy(self.grants)

    def write_route_status(self, namespace: str, name: str, status: Obj) -> None:
        """As the status subresource does: only `status` changes."""
        with self._lock:
            self.statuses.append((namespace, name, copy.deepcopy(status)))
            for route in self.routes:
                if (route["metadata"]["namespace"], route["metadata"]["name"]) == (namespace, name):
                    route["status"] = copy.deepcopy(status)
