"""Runs each fortio Job's container with the real fortio, and ends the process when its Job goes away.

One supervisor thread per Job plays kubelet and Job controller for its one container: it starts
`fortio load ...` (the Job's argv, see `localenv.fortio`) in a directory of the Job's own, with the
container's env; a process that exits 0 has completed the Job and is not started again while the
Job exists; one that fails is started again after 10 s, 20 s, 40 s ... (at most 6 min), until
`spec.backoffLimit` failures (fortio aborts at once when its first requests fail, e.g. while the
gateway has no route yet). Deleting or replacing the Job (a new `uid`), or changing its command,
ends the process by its PID: SIGTERM, as the kubelet does, then SIGKILL after `GRACE_SECONDS`.

The target is the last argument: a loopback URL is used as it is; a URL whose host is the in-cluster
gateway (the istio-ingressgateway Service's cluster IP, or its DNS names) is sent to this data
plane's own address, as kube-proxy would send it to the gateway's pods; any other target is refused.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from localenv.fortio import FortioMissing, FortioRun, fortio_executable, is_loopback, json_output, local_argv

log = logging.getLogger(__name__)

GATEWAY_NAMES = ("istio-ingressgateway.istio-system", "istio-ingressgateway.istio-system.svc",
                 "istio-ingressgateway.istio-system.svc.cluster.local")
GRACE_SECONDS = 5.0
BACKOFF_FIRST, BACKOFF_MAX = 10.0, 360.0


_LIVE: weakref.WeakSet[FortioProcess] = weakref.WeakSet()
"""Every supervisor not yet stopped: ended at interpreter exit if nobody stopped them (no orphans)."""


@atexit.register
def _end_at_exit() -> None:
    for process in list(_LIVE):
        process.stop()


class NotLoopback(ValueError):
    """A target that is neither on loopback nor the in-cluster gateway."""


def local_target(url: str, gateway_url: str, gateway_addresses: Collection[str] = ()) -> str:
    """Where the data plane lets fortio send: `url` itself on loopback, the gateway's URL redirected."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if is_loopback(host):
        return url
    if host in GATEWAY_NAMES or host in gateway_addresses:
        local = urlsplit(gateway_url)
        return urlunsplit((local.scheme, local.netloc, parts.path, parts.query, parts.fragment))
    raise NotLoopback(f"load target {url!r} is neither a loopback address nor the in-cluster gateway; not sending")


class FortioProcess:
    """The supervisor of one Job's fortio; `stop` ends the process and returns at once."""

    def __init__(self, key: str, run: FortioRun, executable: Path, target: str, workdir: Path,
                 backoff_first: float = BACKOFF_FIRST) -> None:
        self.key = key
        self.run = run
        self.target = target
        self.workdir = workdir
        self._volumes = workdir / "volumes"
        for _, volume in run.mounts:
            (self._volumes / volume).mkdir(parents=True, exist_ok=True)
        self.argv = local_argv(run, executable, self._volumes, target)
        self._backoff_first = backoff_first
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self.state = "starting"
        self.failures = 0
        self.exit_code: int | None = None
        self._thread = threading.Thread(target=self._supervise, name=f"fortio {run.job}", daemon=True)
        _LIVE.add(self)
        self._thread.start()

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def _start(self) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self._stop.is_set():
                return None
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.workdir), **dict(self.run.env)}
            with open(self.workdir / "fortio.log", "ab") as output:
                self._process = subprocess.Popen(self.argv, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                                                 stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
            self.state = "running"
            log.info("fortio %s started, pid %d: %s", self.run.job, self._process.pid, " ".join(self.argv[1:]))
            return self._process

    def _supervise(self) -> None:
        while True:
            process = self._start()
            if process is None:
                return
            code = process.wait()
            with self._lock:
                self.exit_code = code
                if self._stop.is_set():
                    self.state = "stopped"
                    return
                if code == 0:
                    self.state = "succeeded"
                    log.info("fortio %s completed", self.run.job)
                    return
                self.failures += 1
                tail = self.log_tail()
                if self.failures > self.run.backoff_limit:
                    self.state = "failed"
                    log.warning("fortio %s failed %d times (backoffLimit %d), not started again; last output:\n%s",
                                self.run.job, self.failures, self.run.backoff_limit, tail)
                    return
                delay = min(BACKOFF_MAX, self._backoff_first * 2 ** (self.failures - 1))
                self.state = "backoff"
                log.warning("fortio %s exited %d; starting it again in %.0f s; last output:\n%s",
                            self.run.job, code, delay, tail)
            if self._stop.wait(delay):
                return

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = (self.workdir / "fortio.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """End the process by its PID (SIGTERM, SIGKILL after `GRACE_SECONDS`), without waiting."""
        _LIVE.discard(self)
        with self._lock:
            self._stop.set()
            process = self._process
            if process is None or process.poll() is not None:
                return
            log.info("fortio %s: ending pid %d", self.run.job, process.pid)
            process.send_signal(signal.SIGTERM)
        threading.Thread(target=self._kill_after_grace, args=(process,), daemon=True).start()

    @staticmethod
    def _kill_after_grace(process: subprocess.Popen[bytes]) -> None:
        try:
            process.wait(GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def join(self, timeout: float) -> bool:
        """Wait until the process has ended and will not start again; False if not within `timeout`."""
        self._thread.join(timeout)
        process = self._process
        if process is not None:
            try:
                process.wait(max(0.1, timeout))
            except subprocess.TimeoutExpired:
                return False
        return not self.running()

    def running(self) -> bool:
        return self._thread.is_alive() or self.pid is not None

    def result(self) -> dict[str, Any] | None:
        """fortio's own summary (from its `-json` file) once it has written one."""
        path = json_output(self.argv)
        if path is None:
            return None
        try:
            data = json.loads((self.workdir / path).read_text())
        except (OSError, ValueError):
            return None
        histogram = data.get("DurationHistogram") or {}
        return {"codes": data.get("RetCodes"), "calls": histogram.get("Count"), "actualQps": data.get("ActualQPS"),
                "requestedQps": data.get("RequestedQPS"), "latencyAvgSeconds": histogram.get("Avg")}

    def stats(self) -> dict[str, object]:
        return {"key": self.key, "job": self.run.job, "state": self.state, "pid": self.pid, "target": self.target,
                "argv": self.argv[1:], "exitCode": self.exit_code, "failures": self.failures, "result": self.result()}


class Loads:
    """The fortio processes in force, keyed by Job identity; `reconcile` starts new ones, ends removed ones."""

    def __init__(self, gateway_url: Callable[[], str], backoff_first: float = BACKOFF_FIRST) -> None:
        self._gateway_url = gateway_url
        self._backoff_first = backoff_first
        self._processes: dict[str, FortioProcess] = {}
        self._stopping: list[FortioProcess] = []
        self._refused: dict[str, tuple[FortioRun, str]] = {}
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="localenv-fortio-"))
        self._count = 0

    def reconcile(self, wanted: Mapping[str, FortioRun], gateway_addresses: Collection[str] = ()) -> None:
        with self._lock:
            for key, process in list(self._processes.items()):
                if wanted.get(key) != process.run:
                    log.info("fortio %s: its Job is gone or changed", process.run.job)
                    process.stop()
                    self._stopping.append(self._processes.pop(key))
            # A refused Job is tried again on every pass (the gateway's Service may appear, fortio
            # may be built meanwhile); its reason is logged when it first appears or changes.
            refused, self._refused = self._refused, {}
            for key, run in wanted.items():
                if key in self._processes:
                    continue
                try:
                    target = local_target(run.target, self._gateway_url(), gateway_addresses)
                    executable = fortio_executable()
                except (NotLoopback, FortioMissing) as err:
                    if refused.get(key) != (run, str(err)):
                        log.error("Job %s: %s", run.job, err)
                    self._refused[key] = (run, str(err))
                    continue
                self._count += 1
                workdir = self._dir / f"{self._count}-{run.job}"
                workdir.mkdir()
                self._processes[key] = FortioProcess(key, run, executable, target, workdir, self._backoff_first)
            self._stopping = [p for p in self._stopping if p.running()]

    def stats(self) -> list[dict[str, object]]:
        with self._lock:
            refused: list[dict[str, object]] = [
                {"key": key, "job": run.job, "state": "refused", "reason": reason, "target": run.target}
                for key, (run, reason) in self._refused.items()]
            return [p.stats() for p in self._processes.values()] + refused

    def processes(self) -> list[FortioProcess]:
        with self._lock:
            return list(self._processes.values())

    def stopping(self) -> list[FortioProcess]:
        with self._lock:
            return list(self._stopping)

    def stop_all(self, timeout: float) -> None:
        with self._lock:
            processes = [*self._processes.values(), *self._stopping]
            self._processes.clear()
            self._stopping = []
        for process in processes:
            process.stop()
        for process in processes:
            if not process.join(timeout):
                log.warning("fortio %s still running after %.0fs", process.run.job, timeout)
        shutil.rmtree(self._dir, ignore_errors=True)
