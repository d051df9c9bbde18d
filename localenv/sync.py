"""Keeps the data plane in step with the cluster: one pass reads the source and applies everything.

A source with a `changed` event (the API server's watches) wakes a pass as soon as anything
changes, and once every `RESYNC_SECONDS` anyway (a read of its cache, not of the server); a source
without (manifest files, the tests' fake) is read every `interval` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from localenv.cluster import ClusterSource, ClusterUnavailable
from localenv.executor import Executors
from localenv.fortio import FortioRun, UnsupportedLoad, fortio_run
from localenv.gateway import Gateway
from localenv.load import Loads
from localenv.routes import BadObject, RouteTable, ServedModel, route_table, served_model

log = logging.getLogger(__name__)

RESYNC_SECONDS = 5.0


def job_key(job: dict[str, Any]) -> str:
    meta = job.get("metadata") or {}
    return f"{meta.get('name', '')}/{meta.get('uid', '')}"


class Sync:
    """`run_once` reads the source; `run` repeats it on every change (or `interval`) until stopped."""

    def __init__(self, source: ClusterSource, gateway: Gateway, executors: Executors, loads: Loads,
                 interval: float) -> None:
        self._source = source
        self._gateway = gateway
        self._executors = executors
        self._loads = loads
        self._interval = interval
        self._changed: threading.Event | None = getattr(source, "changed", None)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._problems: dict[str, str] = {}
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

    def _routes(self) -> RouteTable | None:
        vs = self._source.virtual_service()
        if vs is None:
            self._note("routing-rule", "no VirtualService default/routing-rule")
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
                table, served, loads = self._routes(), self._served(), self._load_specs()
            except ClusterUnavailable as err:
                self.last_error = str(err)
                self._note("cluster", str(err))
                return
            self._note("cluster", None)
            self.last_error = None
            self._executors.update(served)
            if self._gateway.update(table) and table:
                log.info("routes: %s", ", ".join(f"{d.host}={d.weight}" for d in table.destinations))
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
