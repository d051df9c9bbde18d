"""The Gateway API HTTPRoute that splits traffic between versions (the only writer of the weights), and the
ReferenceGrant each version's namespace needs for the route to refer to its Service.

Gateway API v1.6 (`apis/v1/httproute_types.go`, `apis/v1/shared_types.go` `BackendRef.Weight`,
`apis/v1beta1/referencegrant_types.go`): a backend gets weight / (sum of the rule's weights) of the
rule's requests, 0 none; a backendRef to a Service in another namespace is refused unless a
ReferenceGrant in that namespace allows HTTPRoutes of the route's namespace to refer to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
REFERENCE_GRANT_API_VERSION = "gateway.networking.k8s.io/v1beta1"
GATEWAY_GROUP = "gateway.networking.k8s.io"


@dataclass(frozen=True)
class Backend:
    """Where one version is served: its Service and port."""

    version: str
    namespace: str
    service: str
    port: int


def parent_ref(gateway: str) -> dict[str, str]:
    """The route's parentRef from `namespace/name` (or `name`, the route's namespace).

    >>> parent_ref("istio-system/seldon-gateway")
    {'name': 'seldon-gateway', 'namespace': 'istio-system'}
    """
    namespace, _, name = gateway.rpartition("/")
    return {"name": name, **({"namespace": namespace} if namespace else {})}


def http_route_spec(backends: Sequence[Backend], weights: Mapping[str, Any], promoted: str | None,
                    gateway: str, host: str) -> dict[str, Any]:
    """One rule with a backendRef per version and its weight; once a version is promoted, the baseline's
    Service serves it: one backendRef, to the baseline, weight 100 (as the VirtualService does)."""
    names = [b.version for b in backends]

    def ref(backend: Backend, weight: int) -> dict[str, Any]:
        return {"name": backend.service, "namespace": backend.namespace, "port": backend.port, "weight": weight}

    if promoted is not None:
        if promoted not in names:
            raise ValueError(f"promoted version {promoted!r} is not one of {names}")
        refs = [ref(backends[0], 100)]
    else:
        ints = {name: int(weights.get(name, 0)) for name in names}
        if sum(ints.values()) != 100 or any(w < 0 for w in ints.values()):
            raise ValueError(f"weights must be non-negative and sum to 100, got {ints}")
        refs = [ref(b, ints[b.version]) for b in backends]
    return {"parentRefs": [parent_ref(gateway)], "hostnames": [host], "rules": [{"backendRefs": refs}]}


def applied_weights(spec: Mapping[str, Any], backends: Sequence[Backend], promoted: str | None) -> dict[str, int]:
    """The weights the route gives each version (after a promotion: the promoted version, 100)."""
    if promoted is not None:
        return {promoted: 100}
    by_service = {(b.namespace, b.service): b.version for b in backends}
    return {by_service[(r["namespace"], r["name"])]: r["weight"] for r in spec["rules"][0]["backendRefs"]}


def reference_grant_spec(route_namespace: str, service: str) -> dict[str, Any]:
    """Allows HTTPRoutes of `route_namespace` to refer to Service `service` of the grant's namespace."""
    return {"from": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute", "namespace": route_namespace}],
            "to": [{"group": "", "kind": "Service", "name": service}]}


class GatewayRouting(pulumi.ComponentResource):
    """The HTTPRoute `routing-rule`, with weights from the experiment's outputs, and a ReferenceGrant in each
    version's namespace other than the route's."""

    weights: pulumi.Output[dict[str, int]]

    def __init__(self, name: str, *, backends: Sequence[Backend], weights: pulumi.Input[Mapping[str, Any]],
                 promoted: pulumi.Input[str | None], namespace: str, gateway: str, host: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("seldon-rollout:routing:GatewayRouting", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        grants = [k8s.apiextensions.CustomResource(
            f"{b.version}-grant", api_version=REFERENCE_GRANT_API_VERSION, kind="ReferenceGrant",
            metadata={"name": f"routing-rule-{b.service}", "namespace": b.namespace},
            spec=reference_grant_spec(namespace, b.service), opts=child)
            for b in backends if b.namespace != namespace]
        args = pulumi.Output.all(weights, promoted)
        spec = args.apply(lambda a: http_route_spec(backends, a[0] or {}, a[1], gateway, host))
        route = k8s.apiextensions.CustomResource(
            "routing-rule",
            api_version=GATEWAY_API_VERSION,
            kind="HTTPRoute",
            metadata={"name": "routing-rule", "namespace": namespace},
            spec=spec,
            # The grants first: a route applied before them would send its cross-namespace share to 500s.
            opts=pulumi.ResourceOptions(parent=self, depends_on=grants),
        )
        self.name = cast(Any, route).metadata["name"]
        self.weights = pulumi.Output.all(spec, promoted).apply(lambda a: applied_weights(a[0], backends, a[1]))
        self.register_outputs({"name": self.name, "weights": self.weights})
