"""The HTTP front: Seldon's REST paths, the gateway, `/metrics` and the admin API, on one port.

| method and path | what |
|---|---|
| POST /api/v1.0/predictions | through the gateway: routed by an HTTPRoute or the VirtualService for the `Host` |
| POST any other path an HTTPRoute answers | through the gateway (e.g. KServe's `/v1/models/<name>:predict`) |
| POST /services/<ns>/<service>/<path> | straight to that Service's pod (no routing, no gateway metrics) |
| POST /seldon/<ns>/<deployment>/api/v1.0/predictions | to that executor by Seldon's own route (no weights) |
| POST /seldon/<ns>/<deployment>/api/v1.0/feedback | feedback to that executor |
| POST /app/engagement/<ns> | an engagement event for the version in <ns> (`localenv/engagement.py`) |
| GET /discovery/targets | Prometheus HTTP service discovery of the Seldon pods' metrics endpoints |
| GET /discovery/mesh-targets | the same for the gateway's Envoy and the KServe predictor pods |
| GET /pods/<ns>/<pod>/<container>/prometheus | one container's metrics (executor or model server) |
| GET /healthz | `ok` once the cluster has been read; 503 before |
| GET /admin/status | routes, served models, predictions routed per destination, loads, faults |
| GET, POST, DELETE /admin/faults | read, set (per namespace; null clears one), clear all |
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from localenv.discovery import DISCOVERY_PATH, MESH_DISCOVERY_PATH, TARGET_PATH, mesh_targets, target_groups
from localenv.engagement import Engagement
from localenv.executor import Executors, Reply, failure
from localenv.faults import BadFaults, Faults, parse_faults
from localenv.gateway import Gateway, Upstreams
from localenv.kserve import ModelServers
from localenv.metrics import CONTENT_TYPE

log = logging.getLogger(__name__)

SERVICE_PATH = re.compile(r"^/services/([^/]+)/([^/]+)(/.*)$")
SELDON_PATH = re.compile(r"^/seldon/([^/]+)/([^/]+)/api/v1\.0/(predictions|feedback)$")
GATEWAY_PATH = "/api/v1.0/predictions"
MAX_BODY = 1 << 20


class Handlers:
    """What the HTTP layer calls; built by `app.DataPlane`."""

    def __init__(self, gateway: Gateway, executors: Executors, faults: Faults,
                 status: Callable[[], dict[str, Any]], synced: Callable[[], bool], model_servers: ModelServers,
                 upstreams: Upstreams, engagement: Engagement | None = None) -> None:
        self.engagement = engagement
        self.model_servers = model_servers
        self.upstreams = upstreams
        self.gateway = gateway
        self.executors = executors
        self.faults = faults
        self.status = status
        self.synced = synced

    def post(self, path: str, host: str, body: bytes) -> Reply:
        if path == "/admin/faults":
            return self.set_faults(body)
        match = SERVICE_PATH.match(path)
        if match:
            namespace, service, rest = match.groups()
            upstream = self.upstreams.find(namespace, service)
            if upstream is None:
                return failure(503, "NO_HEALTHY_UPSTREAM", f"no pod serves Service {namespace}/{service}")
            return upstream.call(rest, body)
        match = SELDON_PATH.match(path)
        if match:
            namespace, deployment, service = match.groups()
            return self.gateway.seldon(namespace, deployment, f"/api/v1.0/{service}", body)
        recorded = self.engagement.post(path, body) if self.engagement is not None else None
        if recorded is not None:
            return recorded
        forwarded = self.gateway.forward(path, host, body)
        if forwarded is not None:
            return forwarded
        self.gateway.metrics.request(None, None, 404, "NR", 0.0)
        return failure(404, "NO_ROUTE", f"no route for host {host!r} and path {path}")

    def exposition(self, path: str) -> bytes | None:
        """The metrics of the container `path` names, if that pod is current."""
        for target in mesh_targets(self.gateway.metrics, self.model_servers.servers(), self.executors.pods(),
                                   self.engagement):
            if target.path == path:
                return target.exposition()
        match = TARGET_PATH.match(path)
        if match:
            namespace, name, container = match.groups()
            for pod in self.executors.pods():
                if pod.served.namespace == namespace and pod.name == name and container in pod.containers():
                    return pod.containers()[container][1].exposition()
        return None

    def set_faults(self, body: bytes) -> Reply:
        try:
            changes = parse_faults(json.loads(body or b"null"))
        except (ValueError, BadFaults) as err:
            return failure(400, "BAD_FAULTS", str(err))
        self.faults.update(changes)
        log.info("faults now %s", {ns: f.to_json() for ns, f in self.faults.snapshot().items()} or "none")
        return self.fault_reply()

    def fault_reply(self) -> Reply:
        return Reply(200, {ns: f.to_json() for ns, f in self.faults.snapshot().items()})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: DataPlaneHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: bytes, content_type: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reply(self, reply: Reply) -> None:
        self._send(reply.status, json.dumps(reply.body).encode(), "application/json", reply.headers)

    def _body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self._reply(failure(413, "TOO_LARGE", f"body over {MAX_BODY} bytes"))
            return None
        return self.rfile.read(length) if length > 0 else b""

    def do_GET(self) -> None:
        handlers = self.server.handlers
        path = self.path.split("?", 1)[0]
        exposition = handlers.exposition(path) if path.startswith("/pods/") else None
        if exposition is not None:
            self._send(200, exposition, CONTENT_TYPE)
        elif path == DISCOVERY_PATH:
            host, port = self.server.server_address[:2]
            groups = target_groups(handlers.executors.pods(), f"{host!s}:{port}")
            self._send(200, json.dumps(groups).encode(), "application/json")
        elif path == MESH_DISCOVERY_PATH:
            host, port = self.server.server_address[:2]
            targets = mesh_targets(handlers.gateway.metrics, handlers.model_servers.servers(),
                                   handlers.executors.pods(), handlers.engagement)
            self._send(200, json.dumps([t.group(f"{host!s}:{port}") for t in targets]).encode(), "application/json")
        elif path == "/healthz":
            synced = handlers.synced()
            self._send(200 if synced else 503, b"ok\n" if synced else b"not synced with the cluster yet\n",
                       "text/plain")
        elif path == "/admin/status":
            self._reply(Reply(200, handlers.status()))
        elif path == "/admin/faults":
            self._reply(handlers.fault_reply())
        else:
            self._reply(failure(404, "NOT_FOUND", f"no such path {path}"))

    def do_POST(self) -> None:
        body = self._body()
        if body is not None:
            self._reply(self.server.handlers.post(self.path.split("?", 1)[0], self.headers.get("Host", ""), body))

    def do_DELETE(self) -> None:
        if self.path.split("?", 1)[0] == "/admin/faults":
            self.server.handlers.faults.clear()
            log.info("faults cleared")
            self._reply(self.server.handlers.fault_reply())
        else:
            self._reply(failure(404, "NOT_FOUND", f"no such path {self.path}"))


class DataPlaneHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handlers: Handlers) -> None:
        super().__init__(address, _Handler)
        self.handlers = handlers
