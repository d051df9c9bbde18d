"""A ClusterSource whose objects the test sets, plus builders of the seed's objects."""

from __future__ import annotations

import copy
import threading
from typing import Any

from components.load import LoadJob, fortio_job_spec, seed_load_jobs
from components.routing.istio import Route, virtual_service_spec
from components.serving.seldon import seldon_deployment_spec
from components.settings import ModelSpec

Obj = dict[str, Any]
HOST = "iris.example.com"
BASELINE = Route("iris-v1", "ns-baseline", "iris", "default")
CANDIDATE = Route("iris-v2", "ns-candidate", "iris", "default")
SKLEARN = ModelSpec("SKLEARN_SERVER", "gs://seldon-models/v1.12.0-dev/sklearn/iris")
XGBOOST = ModelSpec("XGBOOST_SERVER", "gs://seldon-models/xgboost/iris")


def routing_rule(baseline: int, candidate: int, promoted: str | None = None,
                 routes: tuple[Route, Route] = (BASELINE, CANDIDATE)) -> Obj:
    """The program's VirtualService, built by the program's own builder."""
    spec = virtual_service_spec(list(routes), {"iris-v1": baseline, "iris-v2": candidate}, promoted,
                                "istio-system/seldon-gateway", HOST)
    return {"apiVersion": "networking.istio.io/v1alpha3", "kind": "VirtualService",
            "metadata": {"name": "routing-rule", "namespace": "default"}, "spec": spec}


def seldon_deployment(namespace: str, model: ModelSpec) -> Obj:
    return {"apiVersion": "machinelearning.seldon.io/v1", "kind": "SeldonDeployment",
            "metadata": {"name": "iris", "namespace": namespace}, "spec": seldon_deployment_spec(model)}


def job(load: LoadJob, gateway_url: str, uid: str = "") -> Obj:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": load.name, "namespace": "default", "uid": uid or load.name},
            "spec": fortio_job_spec(load, gateway_url)}


def seed_jobs(gateway_url: str, prediction_qps: float = 5, reward_qps: tuple[float, float] = (0.7, 1)) -> list[Obj]:
    loads = seed_load_jobs(HOST, [("ns-baseline", "iris-v1"), ("ns-candidate", "iris-v2")], "iris",
                           prediction_qps, list(reward_qps), 6000)
    return [job(load, gateway_url) for load in loads]


class FakeCluster:
    """Thread-safe: the data plane's sync thread reads while the test writes."""

    def __init__(self, baseline: int = 100, candidate: int = 0) -> None:
        self._lock = threading.Lock()
        self.vs: Obj | None = routing_rule(baseline, candidate)
        self.deployments: list[Obj] = [seldon_deployment("ns-baseline", SKLEARN),
                                       seldon_deployment("ns-candidate", XGBOOST)]
        self.job_list: list[Obj] = []

    def set(self, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self, name, value)

    def virtual_service(self) -> Obj | None:
        with self._lock:
            return copy.deepcopy(self.vs)

    def seldon_deployments(self) -> list[Obj]:
        with self._lock:
            return copy.deepcopy(self.deployments)

    def jobs(self) -> list[Obj]:
        with self._lock:
            return copy.deepcopy(self.job_list)
