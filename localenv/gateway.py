"""The Istio ingress gateway: picks a route of the VirtualService by weight, calls that executor.

Routing is deterministic (smooth weighted round-robin, see `balancer`). The balancer keeps its
state while the weights stay the same and restarts when a sync brings different routes or weights.
Answers that Envoy would give: 404 when no VirtualService answers for the Host, 503 when every
weight is zero or the chosen destination has no serving SeldonDeployment.
"""

from __future__ import annotations

import threading
from collections import Counter

from localenv.balancer import SmoothWeightedRoundRobin
from localenv.executor import Executors, Reply, failure
from localenv.routes import Destination, RouteTable


class Gateway:
    def __init__(self, executors: Executors) -> None:
        self._executors = executors
        self._lock = threading.Lock()
        self._table: RouteTable | None = None
        self._balancer: SmoothWeightedRoundRobin[Destination] = SmoothWeightedRoundRobin()
        self._routed: Counter[str] = Counter()

    def update(self, table: RouteTable | None) -> bool:
        """Use `table` from now on; True if it differs from the one in force."""
        with self._lock:
            if table == self._table:
                return False
            self._table = table
            self._balancer.reset([(d, d.weight) for d in table.destinations] if table else [])
            return True

    def table(self) -> RouteTable | None:
        with self._lock:
            return self._table

    def routed(self) -> dict[str, int]:
        """Predictions routed so far, by destination host (whatever the executor answered)."""
        with self._lock:
            return dict(self._routed)

    def predict(self, host_header: str, body: bytes) -> Reply:
        with self._lock:
            table = self._table
            destination = self._balancer.pick() if table and table.matches(host_header) else None
            if destination is not None:
                self._routed[destination.host] += 1
        if table is None or not table.matches(host_header):
            return failure(404, "NO_ROUTE", f"no VirtualService route for host {host_header!r}")
        if destination is None:
            return failure(503, "NO_HEALTHY_UPSTREAM", "every route has weight 0")
        served = self._executors.by_service(destination.namespace, destination.service)
        if served is None:
            return failure(503, "NO_HEALTHY_UPSTREAM", f"no SeldonDeployment serves {destination.host}")
        reply = self._executors.predict(served, body)
        return Reply(reply.status, reply.body, reply.headers + destination.response_headers)
