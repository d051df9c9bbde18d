"""Gateway API HTTPRoutes and ReferenceGrants, read as Gateway API says (pure; docs/gateway-api.md).

From kubernetes-sigs/gateway-api v1.6.1:

- `apis/v1/shared_types.go` (`BackendRef.Weight`): a backend gets weight/(sum of the rule's
  weights) of the traffic; weights are not percentages; 0 gets none; unspecified is 1;
- `apis/v1/httproute_types.go` (`HTTPRouteRule.BackendRefs`, `HTTPBackendRef`): an invalid
  backendRef (unknown kind: `InvalidKind`; no such object: `BackendNotFound`; another namespace
  without a ReferenceGrant: `RefNotPermitted`) sets the route's `ResolvedRefs` condition False with
  that reason, and the share of requests it would have had gets 500; a rule whose every backend is
  invalid gets 500 for all its traffic; a match without a path matches PathPrefix `/`;
- `apis/v1beta1/referencegrant_types.go` (an alias of `apis/v1/referencegrant_types.go`): a grant
  in the target's namespace lets the `from` (group, kind, namespace) refer to the `to` (group,
  kind, optional name); without one a cross-namespace reference MUST NOT be permitted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from localenv.routes import BadObject

GATEWAY_GROUP = "gateway.networking.k8s.io"
ROUTE_KIND = "HTTPRoute"
CONTROLLER_NAME = "localenv.seldon-rollout.dev/gateway"
"""`RouteParentStatus.controllerName` of what this data plane writes (DOMAIN/PATH)."""
ACCEPTED, RESOLVED_REFS = "Accepted", "ResolvedRefs"
REF_NOT_PERMITTED, BACKEND_NOT_FOUND, INVALID_KIND = "RefNotPermitted", "BackendNotFound", "InvalidKind"
MAX_WEIGHT = 1_000_000


@dataclass(frozen=True)
class Backend:
    """One backendRef of a rule: a Service, its weight, and why it is invalid (if it is)."""

    namespace: str
    service: str
    port: int | None
    weight: int
    reason: str | None = None
    """`RefNotPermitted`, `BackendNotFound` or `InvalidKind`: the share it would get is answered 500."""
    message: str = ""

    @property
    def host(self) -> str:
        return f"{self.service}.{self.namespace}.svc.cluster.local"


@dataclass(frozen=True)
class PathMatch:
    type: str
    """`PathPrefix` or `Exact`."""
    value: str

    def length(self, path: str) -> int | None:
        """How long a prefix of `path` this matches (for precedence), or None."""
        if self.type == "Exact":
            return len(self.value) + 1 if path == self.value else None
        prefix = self.value.rstrip("/")
        if path == prefix or path.startswith(prefix + "/") or not prefix:
            return len(prefix)
        return None


@dataclass(frozen=True)
class Rule:
    matches: tuple[PathMatch, ...]
    backends: tuple[Backend, ...]


@dataclass(frozen=True)
class HttpRoute:
    namespace: str
    name: str
    generation: int
    created: str
    hostnames: tuple[str, ...]
    parent_refs: tuple[Mapping[str, Any], ...]
    rules: tuple[Rule, ...]

    def answers(self, host_header: str) -> bool:
        host = host_header.rsplit(":", 1)[0].lower() if not host_header.startswith("[") else host_header
        if not self.hostnames:
            return True
        for name in self.hostnames:
            name = name.lower()
            if name == host or (name.startswith("*.") and host.endswith(name[1:]) and host != name[2:]):
                return True
        return False

    def invalid(self) -> list[Backend]:
        return [b for rule in self.rules for b in rule.backends if b.reason]


@dataclass(frozen=True)
class Grant:
    """One ReferenceGrant: who (`from_`) may refer to what (`to`) in `namespace`."""

    namespace: str
    from_: tuple[tuple[str, str, str], ...]
    """(group, kind, namespace)"""
    to: tuple[tuple[str, str, str | None], ...]
    """(group, kind, name or None for every name)"""


def reference_grant(obj: Mapping[str, Any]) -> Grant:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    where = f"ReferenceGrant {meta.get('namespace')}/{meta.get('name')}"
    froms, tos = spec.get("from"), spec.get("to")
    if not isinstance(froms, list) or not isinstance(tos, list):
        raise BadObject(f"{where}: spec.from and spec.to must be lists")
    return Grant(
        namespace=str(meta.get("namespace", "default")),
        from_=tuple((str(f.get("group", "")), str(f.get("kind", "")), str(f.get("namespace", "")))
                    for f in froms if isinstance(f, dict)),
        to=tuple((str(t.get("group", "")), str(t.get("kind", "")), t.get("name") or None)
                 for t in tos if isinstance(t, dict)))


def permitted(route_namespace: str, namespace: str, service: str, grants: Iterable[Grant]) -> bool:
    """May an HTTPRoute in `route_namespace` refer to Service `namespace/service`?"""
    if namespace == route_namespace:
        return True
    for grant in grants:
        if grant.namespace != namespace:
            continue
        if ((GATEWAY_GROUP, ROUTE_KIND, route_namespace) in grant.from_
                and any(group == "" and kind == "Service" and name in (None, service)
                        for group, kind, name in grant.to)):
            return True
    return False


def _backend(ref: Any, route_namespace: str, grants: list[Grant], exists: Callable[[str, str], bool],
             where: str) -> Backend:
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
        raise BadObject(f"{where}: a backendRef without a name")
    weight = ref.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= MAX_WEIGHT:
        raise BadObject(f"{where}: backendRef {ref['name']}: weight must be an integer in [0, {MAX_WEIGHT}], "
                        f"got {weight!r}")
    namespace = str(ref.get("namespace") or route_namespace)
    name, port = ref["name"], ref.get("port")
    group, kind = str(ref.get("group", "")), str(ref.get("kind", "Service"))
    backend = Backend(namespace, name, port if isinstance(port, int) else None, weight)
    if (group, kind) != ("", "Service"):
        return _invalid(backend, INVALID_KIND, f"backendRef {name}: kind {group or 'core'}/{kind} is not supported "
                                               "(only Services)")
    if not permitted(route_namespace, namespace, name, grants):
        return _invalid(backend, REF_NOT_PERMITTED,
                        f"backendRef to Service {namespace}/{name} is not permitted: no ReferenceGrant in namespace "
                        f"{namespace} lets HTTPRoutes of namespace {route_namespace} refer to it")
    if not exists(namespace, name):
        return _invalid(backend, BACKEND_NOT_FOUND, f"backendRef to Service {namespace}/{name}: no such Service")
    return backend


def _invalid(backend: Backend, reason: str, message: str) -> Backend:
    return Backend(backend.namespace, backend.service, backend.port, backend.weight, reason, message)


def _matches(rule: Mapping[str, Any], where: str) -> tuple[PathMatch, ...]:
    found = []
    for match in rule.get("matches") or [{}]:
        if not isinstance(match, dict):
            raise BadObject(f"{where}: a match must be an object")
        if set(match) - {"path"}:
            # header, query and method matches are not implemented: such a match never matches here
            continue
        path = match.get("path") or {}
        kind, value = path.get("type", "PathPrefix"), path.get("value", "/")
        if kind not in ("PathPrefix", "Exact") or not isinstance(value, str):
            continue
        found.append(PathMatch(kind, value))
    return tuple(found)


def http_route(obj: Mapping[str, Any], grants: list[Grant], exists: Callable[[str, str], bool]) -> HttpRoute:
    """An HTTPRoute with each backendRef resolved (weight, and why it is invalid if it is)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    namespace = str(meta.get("namespace", "default"))
    where = f"HTTPRoute {namespace}/{meta.get('name')}"
    hostnames = spec.get("hostnames") or []
    if not isinstance(hostnames, list) or not all(isinstance(h, str) for h in hostnames):
        raise BadObject(f"{where}: spec.hostnames must be a list of strings")
    rules = []
    for i, rule in enumerate(spec.get("rules") or [{}]):
        if not isinstance(rule, dict):
            raise BadObject(f"{where}: spec.rules[{i}] must be an object")
        backends = tuple(_backend(ref, namespace, grants, exists, f"{where} spec.rules[{i}]")
                         for ref in rule.get("backendRefs") or [])
        rules.append(Rule(_matches(rule, f"{where} spec.rules[{i}]"), backends))
    return HttpRoute(namespace=namespace, name=str(meta.get("name", "")),
                     generation=int(meta.get("generation") or 0), created=str(meta.get("creationTimestamp") or ""),
                     hostnames=tuple(hostnames),
                     parent_refs=tuple(p for p in spec.get("parentRefs") or [] if isinstance(p, dict)),
                     rules=tuple(rules))


def select(routes: Iterable[HttpRoute], host: str, path: str) -> tuple[HttpRoute, int] | None:
    """The route and rule index a request goes to, by Gateway API's precedence: an Exact match over the
    longest prefix; then the oldest route, then namespace/name; then the rule's order."""
    best: tuple[tuple[int, str, str, str, int], HttpRoute, int] | None = None
    for route in routes:
        if not route.answers(host):
            continue
        for index, rule in enumerate(route.rules):
            lengths = [n for n in (m.length(path) for m in rule.matches) if n is not None]
            if not lengths:
                continue
            key = (-max(lengths), route.created, route.namespace, route.name, index)
            if best is None or key < best[0]:
                best = (key, route, index)
    return None if best is None else (best[1], best[2])


def _condition(kind: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {"type": kind, "status": "True" if ok else "False", "reason": reason, "message": message,
            "observedGeneration": generation}


def route_status(route: HttpRoute, current: Mapping[str, Any] | None, now: str) -> dict[str, Any]:
    """The route's `status` with this controller's entry per parentRef (others' entries are kept).

    `ResolvedRefs` is False with the first invalid backendRef's reason (all of them in the message);
    a condition keeps its `lastTransitionTime` while its status does not change.
    """
    invalid = route.invalid()
    resolved = _condition(RESOLVED_REFS, not invalid, invalid[0].reason or "" if invalid else RESOLVED_REFS,
                          "; ".join(b.message for b in invalid) if invalid else "every backendRef resolved",
                          route.generation)
    accepted = _condition(ACCEPTED, True, ACCEPTED, "attached to the local data plane's gateway", route.generation)
    old_parents = [p for p in (current or {}).get("parents") or [] if isinstance(p, dict)]
    others = [p for p in old_parents if p.get("controllerName") != CONTROLLER_NAME]
    ours = {repr(sorted((p.get("parentRef") or {}).items())): p for p in old_parents
            if p.get("controllerName") == CONTROLLER_NAME}
    parents = []
    for ref in route.parent_refs or ({"name": "local-gateway"},):
        old = ours.get(repr(sorted(ref.items())), {})
        old_conditions = {c.get("type"): c for c in old.get("conditions") or [] if isinstance(c, dict)}
        conditions = []
        for condition in (accepted, resolved):
            before = old_conditions.get(condition["type"]) or {}
            same = before.get("status") == condition["status"] and before.get("lastTransitionTime")
            conditions.append({**condition, "lastTransitionTime": before["lastTransitionTime"] if same else now})
        parents.append({"parentRef": dict(ref), "controllerName": CONTROLLER_NAME, "conditions": conditions})
    return {"parents": others + parents}
