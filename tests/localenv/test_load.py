"""The fortio Jobs run with the real fortio: started from the Job spec, through the gateway, ended with the Job.

Needs the fortio that `make toolchain` builds (skipped without it, failed in CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from components.load import LoadJob
from localenv.app import DataPlane
from localenv.fortio import fortio_run
from localenv.load import FortioProcess, Loads, NotLoopback, local_target
from localenv.metrics import CLIENT, SERVER
from localenv.models import Model
from testbed.fakes import FakeCluster, job, routing_rule, seed_jobs
from testbed.toolchain import require_executables
from testbed.waiting import wait_for
from tests.localenv.helpers import count, samples

PAYLOAD = {"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}}


@pytest.fixture(autouse=True)
def fortio_built() -> None:
    require_executables(("fortio",))


def alive(pid: int) -> bool:
    """Whether a process of ours with this PID still exists (reaped children do not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stats_of(plane: DataPlane, job_name: str) -> dict[str, Any]:
    return next(s for s in plane.loads.stats() if s["job"] == job_name)


def test_the_seeds_jobs_become_traffic_and_their_processes_end_with_their_jobs(
        cluster: FakeCluster, plane: DataPlane, http: requests.Session) -> None:
    cluster.set(vs=routing_rule(50, 50), job_list=seed_jobs(plane.url, prediction_qps=20, reward_qps=(10, 20)))
    plane.sync.run_once()
    assert sorted(str(s["job"]) for s in plane.loads.stats()) == [
        "fortio-irisv1-rewards", "fortio-irisv2-rewards", "fortio-requests"]

    def enough() -> bool:
        found = samples(http, plane.url)
        return (count(found, CLIENT, "ns-baseline") >= 5 and count(found, CLIENT, "ns-candidate") >= 5
                and count(found, SERVER, "ns-baseline", service="feedback") >= 5
                and count(found, SERVER, "ns-candidate", service="feedback") >= 5)

    wait_for(enough, 30, "predictions and feedback from the three fortio processes", every=0.1)
    pids = [int(str(s["pid"])) for s in plane.loads.stats()]
    assert all(alive(pid) for pid in pids)
    assert all(s["state"] == "running" for s in plane.loads.stats())
    assert plane.gateway.routed().keys() == {"iris-default.ns-baseline.svc.cluster.local",
                                             "iris-default.ns-candidate.svc.cluster.local"}

    cluster.set(job_list=[])
    plane.sync.run_once()
    assert plane.loads.stats() == []
    for process in plane.loads.stopping():
        assert process.join(10), f"{process.run.job} still running"
    assert not any(alive(pid) for pid in pids), "every fortio process ended by its PID"
    stopped = samples(http, plane.url)
    plane.sync.run_once()
    assert samples(http, plane.url) == stopped, "no request after the Jobs were deleted"


def test_a_job_runs_to_completion_at_its_rate_and_is_not_restarted(cluster: FakeCluster, plane: DataPlane,
                                                                   http: requests.Session) -> None:
    cluster.set(job_list=[job(LoadJob("fortio-requests", "/api/v1.0/predictions", 40, PAYLOAD, 1,
                                      "iris.example.com"), plane.url)])
    plane.sync.run_once()
    done: dict[str, Any] = wait_for(lambda: stats_of(plane, "fortio-requests")["state"] == "succeeded"
                    and stats_of(plane, "fortio-requests"), 20, "the 1 s fortio run to complete")
    result = done["result"]
    assert result is not None, "fortio wrote its -json result to the Job's emptyDir"
    assert result["codes"] == {"200": result["calls"]}
    assert 38 <= result["calls"] <= 40
    found = samples(http, plane.url)
    assert count(found, CLIENT, "ns-baseline") == result["calls"] + 4, "the calls plus fortio's 4 warm-up requests"
    plane.sync.run_once()
    assert stats_of(plane, "fortio-requests")["state"] == "succeeded", "a completed Job is not run again"


def test_fault_injection_shows_in_fortios_codes(cluster: FakeCluster, plane: DataPlane,
                                                http: requests.Session) -> None:
    assert http.post(f"{plane.url}/admin/faults", json={"ns-baseline": {"errorRate": 0.1}}, timeout=10).ok
    cluster.set(job_list=[job(LoadJob("fortio-requests", "/api/v1.0/predictions", 40, PAYLOAD, 1,
                                      "iris.example.com"), plane.url)])
    plane.sync.run_once()
    def ended() -> dict[str, Any] | None:
        stats: dict[str, Any] = stats_of(plane, "fortio-requests")
        return stats if stats["state"] in ("succeeded", "failed", "backoff") else None

    done = wait_for(ended, 20, "the fortio run to end")
    codes = done["result"]["codes"]
    assert set(codes) == {"200", "500"}
    assert codes["500"] == pytest.approx(0.1 * (codes["200"] + codes["500"] + 4), abs=1)
    assert count(samples(http, plane.url), CLIENT, "ns-baseline", code="500") == codes["500"]


def test_a_replaced_job_restarts_its_process(cluster: FakeCluster, plane: DataPlane) -> None:
    load = LoadJob("fortio-requests", "/api/v1.0/predictions", 1, PAYLOAD, 600, "iris.example.com")
    cluster.set(job_list=[job(load, plane.url, uid="first")])
    plane.sync.run_once()
    first = wait_for(lambda: stats_of(plane, "fortio-requests")["pid"], 10, "the first process")
    cluster.set(job_list=[job(load, plane.url, uid="second")])
    plane.sync.run_once()
    assert [s["key"] for s in plane.loads.stats()] == ["fortio-requests/second"]
    second = wait_for(lambda: stats_of(plane, "fortio-requests")["pid"], 10, "the second process")
    assert second != first
    for process in plane.loads.stopping():
        assert process.join(10)
    assert not alive(int(first))


@pytest.fixture
def gateway_cluster() -> FakeCluster:
    class WithGatewayService(FakeCluster):
        def gateway_addresses(self) -> set[str]:
            return {"10.96.0.7"}
    return WithGatewayService()


@pytest.fixture
def gateway_plane(gateway_cluster: FakeCluster, models: dict[str, Model]) -> Iterator[DataPlane]:
    with DataPlane(gateway_cluster, poll_seconds=0.05, models=models) as started:
        yield started


@pytest.mark.parametrize("gateway", ["http://10.96.0.7", "http://istio-ingressgateway.istio-system.svc.cluster.local"])
def test_a_job_pointed_at_the_in_cluster_gateway_reaches_the_local_one(
        gateway: str, gateway_cluster: FakeCluster, gateway_plane: DataPlane, http: requests.Session) -> None:
    gateway_cluster.set(job_list=seed_jobs(gateway)[:1])
    gateway_plane.sync.run_once()
    [stats] = gateway_plane.loads.stats()
    assert stats["target"] == f"{gateway_plane.url}/api/v1.0/predictions"
    wait_for(lambda: count(samples(http, gateway_plane.url), CLIENT, "ns-baseline") >= 5, 20,
             "predictions sent to the cluster's gateway address to arrive here")


def test_loads_go_only_to_loopback_or_the_gateway(cluster: FakeCluster, plane: DataPlane) -> None:
    here = "http://127.0.0.1:8080"
    for url in ("http://127.0.0.1:1/x", "http://localhost:1/x", "http://[::1]:1/x", "http://127.3.4.5/x"):
        assert local_target(url, here) == url
    assert local_target("http://10.96.0.7/p?q=1", here, {"10.96.0.7"}) == "http://127.0.0.1:8080/p?q=1"
    assert local_target("http://istio-ingressgateway.istio-system/p", here) == "http://127.0.0.1:8080/p"
    for url in ("http://10.0.0.1/x", "http://example.com/x", "http://192.168.1.1/x"):
        with pytest.raises(NotLoopback):
            local_target(url, here, {"10.96.0.7"})
    cluster.set(job_list=[job(LoadJob("fortio-requests", "/api/v1.0/predictions", 5, PAYLOAD, 600,
                                      "iris.example.com"), "http://10.0.0.7")])
    plane.sync.run_once()
    [refused] = plane.loads.stats()
    assert refused["state"] == "refused"
    assert "neither a loopback address nor the in-cluster gateway" in str(refused["reason"])


def test_a_missing_fortio_is_reported_with_make_toolchain(cluster: FakeCluster, plane: DataPlane, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELDON_ROLLOUT_FORTIO", str(tmp_path / "no-fortio"))
    cluster.set(job_list=seed_jobs(plane.url)[:1])
    plane.sync.run_once()
    [refused] = plane.loads.stats()
    assert refused["state"] == "refused"
    assert "make toolchain" in str(refused["reason"])


def test_a_failing_fortio_is_started_again_until_the_backoff_limit(plane: DataPlane) -> None:
    """fortio aborts when its warm-up requests fail (here: 404, no such path); the Job controller retries."""
    failing = job(LoadJob("fortio-requests", "/no/such/path", 5, PAYLOAD, 600, "iris.example.com"), plane.url)
    failing["spec"]["backoffLimit"] = 2
    run = fortio_run(failing)
    assert run is not None
    loads = Loads(lambda: plane.url, backoff_first=0.05)
    try:
        loads.reconcile({"fortio-requests/x": run})
        [process] = loads.processes()
        assert isinstance(process, FortioProcess)
        wait_for(lambda: process.state == "failed", 30, "three failed runs (backoffLimit 2)")
        assert process.failures == 3
        assert process.exit_code not in (None, 0)
        assert "404" in process.log_tail(20)
    finally:
        loads.stop_all(10)


def test_a_refused_job_starts_once_the_gateway_service_appears(models: dict[str, Model]) -> None:
    class GatewayLater(FakeCluster):
        addresses: frozenset[str] = frozenset()

        def gateway_addresses(self) -> set[str]:
            return set(self.addresses)

    cluster = GatewayLater()
    with DataPlane(cluster, poll_seconds=0.05, models=models) as plane:
        cluster.set(job_list=seed_jobs("http://10.96.0.7")[:1])
        plane.sync.run_once()
        assert [s["state"] for s in plane.loads.stats()] == ["refused"]
        cluster.set(addresses=frozenset({"10.96.0.7"}))
        plane.sync.run_once()
        wait_for(lambda: [s["state"] for s in plane.loads.stats()] == ["running"], 10, "the fortio process")


CHILD = """
import sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from localenv.fortio import fortio_run
from localenv.load import Loads

class Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()

server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/"
job = {"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [
    {"name": "fortio", "command": ["fortio", "load", "-t", "600s", "-qps", "2", url]}]}}}}
loads = Loads(lambda: url)
loads.reconcile({"j/1": fortio_run(job)})
deadline = time.monotonic() + 10
while not (loads.processes()[0].pid and loads.processes()[0].state == "running") and time.monotonic() < deadline:
    time.sleep(0.05)
print(loads.processes()[0].pid, flush=True)
"""


def test_fortio_processes_end_when_the_interpreter_exits_without_a_stop() -> None:
    """Nobody called stop_all (a test or a script that just returns): no fortio is left behind."""
    done = subprocess.run([sys.executable, "-c", CHILD], cwd=Path(__file__).resolve().parents[2], text=True,
                          capture_output=True, timeout=60, check=True)
    pid = int(done.stdout.strip())
    wait_for(lambda: not alive(pid), 10, f"fortio pid {pid} to end with the interpreter")
