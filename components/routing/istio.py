"""The VirtualService that splits traffic between versions: the only writer of the weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

ISTIO_API_VERSION = "networking.istio.io/v1alpha3"
SERVING_PORT = 8000


@dataclass(frozen=True)
class Route:
    """Where one version is served."""

    version: str
    namespace: str
    deployment: str
    predictor: str
    service: str | None = None
    """The Service the version is served by (default: Seldon's predictor Service, `<deployment>-<predictor>`;
    KServe's is `<name>-predictor`, components/serving/kserve.py)."""
    port: int = SERVING_PORT

    @property
    def host(self) -> str:
        return f"{self.service or f'{self.deployment}-{self.predictor}'}.{self.namespace}.svc.cluster.local"


def _route(route: Route, version_header: str, weight: int) -> dict[str, Any]:
    return {"destination": {"host": route.host, "port": {"number": route.port}},
            "headers": {"response": {"set": {"version": version_header}}},
            "weight": weight}


def virtual_service_spec(routes: Sequence[Route], weights: Mapping[str, Any], promoted: str | None,
                         gateway: str, host: str) -> dict[str, Any]:
    """The seed's routing-rule: one route per version with its weight.

    Once a version is promoted, the baseline's deployment serves it, so there is one route, to the
    baseline's host, 100%, answering `version: <promoted>` (as the seed's promote-v2.yaml does).
    """
    names = [r.version for r in routes]
    if promoted is not None:
        if promoted not in names:
            raise ValueError(f"promoted version {promoted!r} is not one of {names}")
        http_routes = [_route(routes[0], promoted, 100)]
    else:
        ints = {name: int(weights.get(name, 0)) for name in names}
        if sum(ints.values()) != 100 or any(w < 0 for w in ints.values()):
            raise ValueError(f"weights must be non-negative and sum to 100, got {ints}")
        http_routes = [_route(r, r.version, ints[r.version]) for r in routes]
    return {"gateways": [gateway], "hosts": [host], "http": [{"route": http_routes}]}


class Routing(pulumi.ComponentResource):
    """The VirtualService `routing-rule`, with weights from the experiment's outputs."""

    weights: pulumi.Output[dict[str, int]]

    def __init__(self, name: str, *, routes: Sequence[Route], weights: pulumi.Input[Mapping[str, Any]],
                 promoted: pulumi.Input[str | None], namespace: str, gateway: str, host: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("seldon-rollout:routing:Routing", name, None, opts)
        spec = pulumi.Output.all(weights, promoted).apply(
            lambda args: virtual_service_spec(routes, args[0] or {}, args[1], gateway, host))
        vs = k8s.apiextensions.CustomResource(
            "routing-rule",
            api_version=ISTIO_API_VERSION,
            kind="VirtualService",
            metadata={"name": "routing-rule", "namespace": namespace},
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.name = cast(Any, vs).metadata["name"]
        self.weights = spec.apply(lambda s: {r["headers"]["response"]["set"]["version"]: r["weight"]
                                             for r in s["http"][0]["route"]})
        self.register_outputs({"name": self.name, "weights": self.weights})
