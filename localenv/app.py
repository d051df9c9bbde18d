"""`DataPlane`: trains the models, serves HTTP, keeps in step with the cluster, runs the loads."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from localenv.cluster import ClusterSource
from localenv.engagement import Engagement
from localenv.executor import Executors
from localenv.faults import Faults
from localenv.gateway import Gateway, Upstreams
from localenv.kserve import ModelServers
from localenv.load import Loads
from localenv.models import Model, train_models
from localenv.server import DataPlaneHTTPServer, Handlers
from localenv.sync import Sync

log = logging.getLogger(__name__)

DEFAULT_POLL_SECONDS = 0.5


class DataPlane:
    """Usable as a context manager: `with DataPlane(source) as plane: requests.post(plane.url + ...)`."""

    def __init__(self, source: ClusterSource, host: str = "127.0.0.1", port: int = 0,
                 poll_seconds: float = DEFAULT_POLL_SECONDS, models: Mapping[str, Model] | None = None) -> None:
        self.models = models if models is not None else train_models()
        self.faults = Faults()
        self.executors = Executors(self.models, self.faults)
        self.model_servers = ModelServers(self.models, self.faults)
        self.upstreams = Upstreams(self.executors, self.model_servers)
        self.gateway = Gateway(self.upstreams, self.executors)
        self.loads = Loads(lambda: self.url)
        self.sync = Sync(source, self.gateway, self.executors, self.loads, poll_seconds, self.model_servers,
                         self.upstreams)
        self.engagement = Engagement()
        handlers = Handlers(self.gateway, self.executors, self.faults, self.status,
                            self.sync.synced.is_set, self.model_servers, self.upstreams, self.engagement)
        self._http = DataPlaneHTTPServer((host, port), handlers)
        self._threads: list[threading.Thread] = []
        self._started_at = time.time()

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> DataPlane:
        """Sync once (so the first request already sees the cluster), then serve and keep in step.

        If that first read fails, the plane serves anyway and the sync retries: wait on
        `sync.synced` to know when it has the cluster's objects.
        """
        self.sync.run_once()
        self._threads = [threading.Thread(target=self._http.serve_forever, args=(0.1,), name="http", daemon=True),
                         threading.Thread(target=self.sync.run, name="sync", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the sync and end the fortio processes, then the HTTP server."""
        self.sync.stop()
        self.loads.stop_all(timeout)
        self._http.shutdown()
        self._http.server_close()
        for thread in self._threads:
            thread.join(timeout)

    def __enter__(self) -> DataPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def status(self) -> dict[str, Any]:
        table = self.gateway.table()
        return {
            "url": self.url,
            "startedAt": self._started_at,
            "synced": self.sync.synced.is_set(),
            "syncPasses": self.sync.passes,
            "syncError": self.sync.last_error,
            "routes": None if table is None else {
                "hosts": list(table.hosts),
                "destinations": [{"host": d.host, "namespace": d.namespace, "weight": d.weight,
                                  "responseHeaders": dict(d.response_headers)} for d in table.destinations]},
            "served": [{"namespace": m.namespace, "deployment": m.deployment, "predictor": m.predictor,
                        "implementation": m.implementation, "modelUri": m.model_uri}
                       for m in self.executors.served().values()],
            "inferenceServices": [{"namespace": s.isvc.namespace, "name": s.isvc.name, "service": s.isvc.service,
                                   "modelFormat": s.isvc.model_format, "storageUri": s.isvc.storage_uri,
                                   "pod": s.pod} for s in self.model_servers.servers()],
            "httpRoutes": [{"namespace": r.namespace, "name": r.name, "hostnames": list(r.hostnames),
                            "rules": [[{"namespace": b.namespace, "service": b.service, "weight": b.weight,
                                        "invalid": b.reason} for b in rule.backends] for rule in r.rules]}
                           for r in self.gateway.http_routes()],
            "routed": self.gateway.routed(),
            "weightedHosts": self.gateway.weighted_hosts(),
            "feedback": self.executors.feedback_counts(),
            "engagement": self.engagement.events(),
            "loads": self.loads.stats(),
            "faults": {ns: f.to_json() for ns, f in self.faults.snapshot().items()},
        }
