"""Pure readings of the program's objects: the VirtualService's routes and the deployments' models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class BadObject(ValueError):
    """An object the data plane cannot make sense of (it is then ignored, with this message logged)."""


@dataclass(frozen=True)
class Destination:
    """One weighted route of the VirtualService: where it goes and what it adds to the response."""

    host: str
    """The destination host, e.g. `iris-default.ns-baseline.svc.cluster.local`."""
    namespace: str
    service: str
    """The host's first label: `<deployment>-<predictor>` for a Seldon predictor's service."""
    weight: int
    response_headers: tuple[tuple[str, str], ...]
    """`headers.response.set` of the route, e.g. `(("version", "iris-v1"),)`."""


@dataclass(frozen=True)
class RouteTable:
    """The hosts a VirtualService answers for and its weighted destinations (first `http` entry)."""

    hosts: tuple[str, ...]
    destinations: tuple[Destination, ...]

    def matches(self, host_header: str) -> bool:
        host = host_header.rsplit(":", 1)[0] if not host_header.startswith("[") else host_header
        return any(h == "*" or h.lower() == host.lower() for h in self.hosts)


@dataclass(frozen=True)
class ServedModel:
    """What one SeldonDeployment's first predictor serves."""

    namespace: str
    deployment: str
    predictor: str
    node: str
    """The graph root's name (`classifier`), reported in `meta.requestPath`."""
    implementation: str
    model_uri: str

    @property
    def service(self) -> str:
        """The Kubernetes service Seldon creates for the predictor: `<deployment>-<predictor>`."""
        return f"{self.deployment}-{self.predictor}"


def _namespace_of(host: str, default: str) -> str:
    labels = host.split(".")
    return labels[1] if len(labels) > 1 else default


def route_table(virtual_service: Mapping[str, Any]) -> RouteTable:
    """The routes of the first `http` entry without a `match` (the seed's routing-rule has one)."""
    meta = virtual_service.get("metadata") or {}
    spec = virtual_service.get("spec") or {}
    hosts = spec.get("hosts") or []
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise BadObject("spec.hosts must be a list of strings")
    http = [h for h in spec.get("http") or [] if isinstance(h, dict) and not h.get("match")]
    if not http:
        raise BadObject("spec.http has no entry without a match")
    destinations = []
    for route in http[0].get("route") or []:
        host = ((route or {}).get("destination") or {}).get("host")
        if not isinstance(host, str) or not host:
            raise BadObject(f"route without destination.host: {route!r}")
        weight = route.get("weight", 0 if len(http[0]["route"]) > 1 else 100)
        if not isinstance(weight, int) or weight < 0:
            raise BadObject(f"route to {host}: weight must be a non-negative integer, got {weight!r}")
        headers = ((route.get("headers") or {}).get("response") or {}).get("set") or {}
        destinations.append(Destination(
            host=host, namespace=_namespace_of(host, meta.get("namespace", "default")),
            service=host.split(".")[0], weight=weight,
            response_headers=tuple((str(k), str(v)) for k, v in sorted(headers.items()))))
    return RouteTable(hosts=tuple(hosts), destinations=tuple(destinations))


def served_model(deployment: Mapping[str, Any]) -> ServedModel:
    """The model behind a SeldonDeployment: its first predictor's graph root."""
    meta = deployment.get("metadata") or {}
    predictors = (deployment.get("spec") or {}).get("predictors") or []
    if not predictors or not isinstance(predictors[0], dict):
        raise BadObject(f"SeldonDeployment {meta.get('namespace')}/{meta.get('name')} has no predictors")
    graph = predictors[0].get("graph") or {}
    return ServedModel(namespace=str(meta.get("namespace", "default")), deployment=str(meta.get("name", "")),
                       predictor=str(predictors[0].get("name", "")), node=str(graph.get("name", "")),
                       implementation=str(graph.get("implementation", "")),
                       model_uri=str(graph.get("modelUri", "")))
