"""Keeps the data plane in step with the cluster: one pass reads the source and applies everything.

A source with a `changed` event (the API server's watches) wakes a pass as soon as anything
changes, and once every `RESYNC_SECONDS` anyway (a read of its cache, not of the server); a source
without (manifest files, the tests' fake) is read every `interval` seconds.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from typing import Any

from localenv.cluster import ClusterSource, ClusterUnavailable
from localenv.executor import Executors
from localenv.fortio import FortioRun, UnsupportedLoad, fortio_run
from localenv.gateway import Gateway, Upstreams
from localenv.httproute import Grant, HttpRoute, http_route, reference_grant, route_status
from localenv.kserve import InferenceService, ModelServers, inference_service
from localenv.load import Loads
from localenv.routes import BadObject, RouteTable, ServedModel, route_table, served_model

log = logging.getLogger(__name__)

RESYNC_SECONDS = 5.0
Obj = dict[str, Any]


def job_key(job: dict[str, Any]) -> str:
    meta = job.get("metadata") or {}
    return f"{meta.get('name', '')}/{meta.get('uid', '')}"


def _timeless(status: Obj) -> Obj:
    """A route status without its conditions' `lastTransitionTime` (what a comparison should ignore)."""
    return {**status, "parents": [
        {**p, "conditions": [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                             for c in p.get("conditions") or [] if isinstance(c, dict)]}
        for p in status.get("parents") or [] if isinstance(p, dict)]}


class Sync:
    """`run_once` reads the source; `run` repeats it on every change (or `interval`) until stopped."""

    def __init__(self, source: ClusterSource, gateway: Gateway, executors: Executors, loads: Loads,
                 interval: float, model_servers: ModelServers, upstreams: Upstreams) -> None:
        self._source = source
        self._gateway = gateway
        self._executors = executors
        self._model_servers = model_servers
        self._upstreams = upstreams
        self._loads = loads
        self._interval = interval
        self._changed: threading.Event | None = getattr(source, "changed", None)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._problems: dict[str, str] = {}
        self._written: dict[tuple[str, str], Obj] = {}
        """The last status written per HTTPRoute."""
        self.passes = 0
        self.last_error: str | None = None
        self.synced = threading.Event()
        """Set after the first pass that read the source successfully."""

    def _note(self, topic: str, problem: str | None) -> None:
        """Log a problem when it first appears and when it clears, not on every pass."""
        if problem is None:
            if self._problems.pop(topic, None) is not None:
                log.info("%s: fine again", topic)
        elif self._problems.get(topic) != problem:
            self._problems[topic] = problem
            log.warning("%s: %s", topic, problem)

    def _optional(self, kind: str) -> list[Obj]:
        """A kind only some sources have (KServe, Gateway API): empty for the others."""
        read = getattr(self._source, kind, None)
        return list(read()) if read is not None else []

    def _routes(self, quiet: bool) -> RouteTable | None:
        vs = self._source.virtual_service()
        if vs is None:
            self._note("routing-rule", None if quiet else "no VirtualService default/routing-rule")
            return None
        try:
            table = route_table(vs)
        except BadObject as err:
            self._note("routing-rule", str(err))
            return None
        self._note("routing-rule", None)
        return table

    def _served(self) -> list[ServedModel]:
        served = []
        for deployment in self._source.seldon_deployments():
            meta = deployment.get("metadata") or {}
            topic = f"SeldonDeployment {meta.get('namespace')}/{meta.get('name')}"
            try:
                served.append(served_model(deployment))
            except BadObject as err:
                self._note(topic, str(err))
            else:
                self._note(topic, None)
        return served

    def _inference_services(self, objects: list[Obj]) -> list[InferenceService]:
        found = []
        for obj in objects:
            meta = obj.get("metadata") or {}
            topic = f"InferenceService {meta.get('namespace')}/{meta.get('name')}"
            try:
                found.append(inference_service(obj))
            except BadObject as err:
                self._note(topic, str(err))
            else:
                self._note(topic, None)
        return found

    def _http_routes(self, objects: list[Obj], grant_objects: list[Obj]) -> list[tuple[Obj, HttpRoute]]:
        grants: list[Grant] = []
        for obj in grant_objects:
            try:
                grants.append(reference_grant(obj))
            except BadObject as err:
                self._note("ReferenceGrant", str(err))
        routes = []
        for obj in objects:
            meta = obj.get("metadata") or {}
            topic = f"HTTPRoute {meta.get('namespace')}/{meta.get('name')}"
            try:
                route = http_route(obj, grants, self._upstreams.exists)
            except BadObject as err:
                self._note(topic, str(err))
                continue
            self._note(topic, "; ".join(b.message for b in route.invalid()) or None)
            routes.append((obj, route))
        return routes

    def _write_statuses(self, routes: list[tuple[Obj, HttpRoute]]) -> None:
        """Each route's status through the status subresource, when it changed (sources that can)."""
        write = getattr(self._source, "write_route_status", None)
        if write is None:
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for obj, route in routes:
            current = obj.get("status") or {}
            status = route_status(route, current, now)
            key = (route.namespace, route.name)
            # Not again what was written last, even if the stored status reads differently (a CRD's
            # defaults): each write is a watch event, and a pass per event must not loop.
            if _timeless(status) in (_timeless(current), _timeless(self._written.get(key) or {})):
                continue
            try:
                write(route.namespace, route.name, copy.deepcopy(status))
            except ClusterUnavailable as err:
                self._note(f"HTTPRoute {route.namespace}/{route.name} status", str(err))
            else:
                self._written[key] = status
                self._note(f"HTTPRoute {route.namespace}/{route.name} status", None)

    def _load_specs(self) -> dict[str, FortioRun]:
        wanted = {}
        for job in self._source.jobs():
            if (job.get("spec") or {}).get("suspend"):
                continue
            try:
                spec = fortio_run(job)
            except UnsupportedLoad as err:
                self._note(f"Job {job_key(job)}", str(err))
                continue
            self._note(f"Job {job_key(job)}", None)
            if spec is not None:
                wanted[job_key(job)] = spec
        return wanted

    def _gateway_addresses(self) -> set[str]:
        """The in-cluster gateway's cluster IPs, when the source knows them (loads to them come here)."""
        addresses = getattr(self._source, "gateway_addresses", None)
        return set(addresses()) if addresses is not None else set()

    def run_once(self) -> None:
        """One pass. On a read failure nothing changes (the last known state stays in force)."""
        with self._lock:
            try:
                route_objects, grant_objects = self._optional("http_routes"), self._optional("reference_grants")
                isvc_objects = self._optional("inference_services")
                table, served, loads = self._routes(bool(route_objects)), self._served(), self._load_specs()
            except ClusterUnavailable as err:
                self.last_error = str(err)
                self._note("cluster", str(err))
                return
            self._note("cluster", None)
            self.last_error = None
            self._executors.update(served)
            for server in self._model_servers.update(self._inference_services(isvc_objects)):
                log.info("%s/%s now serves %s (%s) in pod %s", server.isvc.namespace, server.isvc.name,
                         server.isvc.model_format, server.isvc.storage_uri, server.pod)
            if self._gateway.update(table) and table:
                log.info("routes: %s", ", ".join(f"{d.host}={d.weight}" for d in table.destinations))
            routes = self._http_routes(route_objects, grant_objects)
            if self._gateway.update_http_routes(tuple(route for _, route in routes)):
                for _, route in routes:
                    log.info("HTTPRoute %s/%s: %s", route.namespace, route.name, "; ".join(
                        ", ".join(f"{b.host}={b.weight}{' (' + b.reason + ')' if b.reason else ''}"
                                  for b in rule.backends) for rule in route.rules))
            self._write_statuses(routes)
            self._loads.reconcile(loads, self._gateway_addresses())
            self.passes += 1
            self.synced.set()

    def run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            if self._changed is not None:
                self._changed.clear()  # before reading: a change during the pass wakes the next one
                if self._stop.is_set():  # stop() set it just before the clear
                    return
            try:
                self.run_once()
            except Exception:  # the loop must outlive an object it cannot read; the traceback is logged
                log.exception("sync pass failed; the last state stays in force")
            if self._changed is not None:
                self._changed.wait(RESYNC_SECONDS)
            else:
                self._stop.wait(max(0.0, self._interval - (time.monotonic() - started)))

    def stop(self) -> None:
        self._stop.set()
        if self._changed is not None:
            self._changed.set()
