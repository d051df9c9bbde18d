"""The ingress gateway: routes by an HTTPRoute or the VirtualService, calls the chosen model server.

A request whose Host and path an HTTPRoute answers (Gateway API semantics, `httproute`) goes to a
backend of the matching rule, picked by the rule's weights; otherwise `POST /api/v1.0/predictions`
is routed by the VirtualService's weights (as before). Routing is deterministic (smooth weighted
round-robin, see `balancer`): each rule's balancer keeps its state while its backends and weights
stay the same and restarts when a sync changes them. Answers that Envoy would give: 404 when no
route answers, 503 when the chosen destination has no serving pod (or every VirtualService weight is
0), and for an HTTPRoute 500 for the share of an invalid backendRef (and for a rule whose weights
are all 0). Every request the gateway answers is counted in Istio's standard metrics (`istio`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from localenv.balancer import SmoothWeightedRoundRobin
from localenv.executor import Executors, Reply, failure
from localenv.httproute import Backend, HttpRoute, select
from localenv.istio import (
    NO_FLAGS,
    NO_HEALTHY_UPSTREAM,
    NO_ROUTE,
    GatewayMetrics,
    IstioMetrics,
    Workload,
    sidecar_labels,
)
from localenv.kserve import ModelServers
from localenv.routes import Destination, RouteTable

SELDON_PREDICTIONS = "/api/v1.0/predictions"
SELDON_FEEDBACK = "/api/v1.0/feedback"


@dataclass(frozen=True)
class Upstream:
    """A Service's pod: who it is (for Istio's labels) and how to call it."""

    workload: Workload
    call: Callable[[str, bytes], Reply]
    sidecar: IstioMetrics

    def forward(self, service_host: str, path: str, body: bytes) -> Reply:
        """Through the pod's sidecar, which reports the request as its destination."""
        started = time.perf_counter()
        reply = self.call(path, body)
        self.sidecar.record(sidecar_labels(service_host, self.workload, reply.status),
                            (time.perf_counter() - started) * 1000)
        return reply


class Upstreams:
    """Finds the pod behind a Service: a KServe predictor (`<isvc>-predictor`) or a Seldon predictor
    (`<deployment>-<predictor>`)."""

    def __init__(self, executors: Executors, model_servers: ModelServers) -> None:
        self._executors = executors
        self._model_servers = model_servers

    def find(self, namespace: str, service: str) -> Upstream | None:
        server = self._model_servers.by_service(namespace, service)
        if server is not None:
            return Upstream(Workload(server.isvc.service, namespace, server.labels()), server.handle, server.sidecar)
        served = self._executors.by_service(namespace, service)
        if served is None:
            return None
        pod = next((p for p in self._executors.pods() if p.served == served), None)
        if pod is None:  # replaced by a sync just now
            return None
        workload = Workload(pod.deployment_name, namespace, pod.labels())

        def call(path: str, body: bytes) -> Reply:
            if path == SELDON_PREDICTIONS:
                return self._executors.predict(served, body)
            if path == SELDON_FEEDBACK:
                return self._executors.feedback(served, body)
            return failure(404, "NOT_FOUND", f"no such path {path}")
        return Upstream(workload, call, pod.sidecar)

    def exists(self, namespace: str, service: str) -> bool:
        return (self._model_servers.by_service(namespace, service) is not None
                or self._executors.by_service(namespace, service) is not None)


class Gateway:
    def __init__(self, upstreams: Upstreams, executors: Executors, metrics: GatewayMetrics | None = None) -> None:
        self._upstreams = upstreams
        self._executors = executors
        self.metrics = metrics if metrics is not None else GatewayMetrics()
        self._lock = threading.Lock()
        self._table: RouteTable | None = None
        self._balancer: SmoothWeightedRoundRobin[Destination] = SmoothWeightedRoundRobin()
        self._routes: tuple[HttpRoute, ...] = ()
        self._rule_balancers: dict[tuple[str, str, int], SmoothWeightedRoundRobin[Backend]] = {}
        self._routed: Counter[str] = Counter()

    def update(self, table: RouteTable | None) -> bool:
        """Use the VirtualService's `table` from now on; True if it differs from the one in force."""
        with self._lock:
            if table == self._table:
                return False
            self._table = table
            self._balancer.reset([(d, d.weight) for d in table.destinations] if table else [])
            return True

    def update_http_routes(self, routes: tuple[HttpRoute, ...]) -> bool:
        """Use these HTTPRoutes from now on; a rule whose backends changed restarts its balancer."""
        with self._lock:
            if routes == self._routes:
                return False
            old = {(r.namespace, r.name, i): rule for r in self._routes for i, rule in enumerate(r.rules)}
            balancers = {}
            for route in routes:
                for i, rule in enumerate(route.rules):
                    key = (route.namespace, route.name, i)
                    balancer = self._rule_balancers.get(key)
                    if balancer is None or old.get(key) != rule:
                        balancer = SmoothWeightedRoundRobin([(b, b.weight) for b in rule.backends])
                    balancers[key] = balancer
            self._routes, self._rule_balancers = routes, balancers
            return True

    def table(self) -> RouteTable | None:
        with self._lock:
            return self._table

    def http_routes(self) -> tuple[HttpRoute, ...]:
        with self._lock:
            return self._routes

    def weighted_hosts(self) -> list[str]:
        """The hosts the routes in force send a share of their requests to (weight above 0), sorted."""
        with self._lock:
            hosts = {d.host for d in self._table.destinations if d.weight > 0} if self._table else set()
            hosts.update(b.host for r in self._routes for rule in r.rules for b in rule.backends
                         if b.weight > 0 and not b.reason)
            return sorted(hosts)

    def routed(self) -> dict[str, int]:
        """Requests routed so far, by destination host (whatever the model server answered)."""
        with self._lock:
            return dict(self._routed)

    def forward(self, path: str, host_header: str, body: bytes) -> Reply | None:
        """A request to the gateway; None when no HTTPRoute answers and the path is not the
        VirtualService's (the caller answers 404 for its own paths)."""
        started = time.perf_counter()
        with self._lock:
            chosen = select(self._routes, host_header, path)
            backend = None
            if chosen is not None:
                route, index = chosen
                backend = self._rule_balancers[(route.namespace, route.name, index)].pick()
                if backend is not None and not backend.reason:
                    self._routed[backend.host] += 1
        if chosen is not None:
            return self._to_backend(backend, path, body, started)
        table = self.table()
        if path == SELDON_PREDICTIONS or (table is not None and table.matches(host_header)):
            return self.predict(host_header, body, started, path)  # any path a VirtualService's host answers
        return None

    def _to_backend(self, backend: Backend | None, path: str, body: bytes, started: float) -> Reply:
        if backend is None:
            reply = failure(500, "NO_BACKEND", "every backendRef of the matching rule has weight 0")
            return self._record(None, None, reply, NO_FLAGS, started)
        if backend.reason:
            reply = failure(500, backend.reason, backend.message)
            return self._record(None, None, reply, NO_FLAGS, started)
        upstream = self._upstreams.find(backend.namespace, backend.service)
        if upstream is None:
            reply = failure(503, "NO_HEALTHY_UPSTREAM", f"no pod serves {backend.host}")
            return self._record(backend.host, None, reply, NO_HEALTHY_UPSTREAM, started)
        return self._record(backend.host, upstream.workload, upstream.forward(backend.host, path, body), NO_FLAGS,
                            started)

    def predict(self, host_header: str, body: bytes, started: float | None = None,
                path: str = SELDON_PREDICTIONS) -> Reply:
        """`POST <path>` routed by the VirtualService (Seldon's `/api/v1.0/predictions`, KServe's v1 and v2
        protocols)."""
        started = time.perf_counter() if started is None else started
        with self._lock:
            table = self._table
            destination = self._balancer.pick() if table and table.matches(host_header) else None
            if destination is not None:
                self._routed[destination.host] += 1
        if table is None or not table.matches(host_header):
            reply = failure(404, "NO_ROUTE", f"no VirtualService route for host {host_header!r}")
            return self._record(None, None, reply, NO_ROUTE, started)
        if destination is None:
            reply = failure(503, "NO_HEALTHY_UPSTREAM", "every route has weight 0")
            return self._record(None, None, reply, NO_HEALTHY_UPSTREAM, started)
        upstream = self._upstreams.find(destination.namespace, destination.service)
        if upstream is None:
            reply = failure(503, "NO_HEALTHY_UPSTREAM", f"no pod serves {destination.host}")
            return self._record(destination.host, None, reply, NO_HEALTHY_UPSTREAM, started)
        reply = upstream.forward(destination.host, path, body)
        reply = Reply(reply.status, reply.body, reply.headers + destination.response_headers)
        return self._record(destination.host, upstream.workload, reply, NO_FLAGS, started)

    def seldon(self, namespace: str, deployment: str, path: str, body: bytes) -> Reply:
        """`/seldon/<ns>/<deployment>/<path>`: the route Seldon's operator adds for each SeldonDeployment
        (prefix rewritten to `/`, to its predictor Service), through the gateway like any other."""
        started = time.perf_counter()
        served = self._executors.get(namespace, deployment)
        if served is None:
            reply = failure(503, "NO_HEALTHY_UPSTREAM", f"no SeldonDeployment {namespace}/{deployment}")
            return self._record(None, None, reply, NO_ROUTE, started)
        host = f"{served.service}.{namespace}.svc.cluster.local"
        upstream = self._upstreams.find(namespace, served.service)
        if upstream is None:
            reply = failure(503, "NO_HEALTHY_UPSTREAM", f"no pod serves {host}")
            return self._record(host, None, reply, NO_HEALTHY_UPSTREAM, started)
        return self._record(host, upstream.workload, upstream.forward(host, path, body), NO_FLAGS, started)

    def _record(self, service_host: str | None, workload: Workload | None, reply: Reply, flags: str,
                started: float) -> Reply:
        self.metrics.request(service_host, workload, reply.status, flags, (time.perf_counter() - started) * 1000)
        return reply
