"""The data plane against a real local API server: objects applied with kubectl drive it.

Needs the toolchain's etcd, kube-apiserver and fortio (`make toolchain` builds them); skipped without.
The data plane watches the API server, so a change applied with kubectl reaches traffic at once.
The session's cluster is shared with other tests, so the versions live in namespaces of their own
(deleted at the end without waiting: without a namespace controller they would stay Terminating,
and their names are this test's alone).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from components.load import LoadJob
from components.routing.istio import Route
from testbed.fakes import SKLEARN, XGBOOST, job, routing_rule, seldon_deployment
from testbed.toolchain import LocalCluster, require_executables
from testbed.waiting import wait_for
from tests.localenv.helpers import predict
from tests.localenv.test_cli import START_TIMEOUT, read_line

REPO = Path(__file__).resolve().parents[2]
BASELINE = Route("iris-v1", "localenv-it-baseline", "iris", "default")
CANDIDATE = Route("iris-v2", "localenv-it-candidate", "iris", "default")
WEIGHT_CHANGE_SECONDS = 1.0
"""How soon a weight change applied with kubectl must reach traffic (the plane watches the API server)."""


def apply(cluster: LocalCluster, *objects: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def rule(baseline: int, candidate: int, promoted: str | None = None) -> dict[str, Any]:
    return routing_rule(baseline, candidate, promoted, routes=(BASELINE, CANDIDATE))


@pytest.fixture
def seed_objects(local_cluster: LocalCluster) -> Iterator[LocalCluster]:
    require_executables(("fortio",))
    apply(local_cluster, namespace(BASELINE.namespace), namespace(CANDIDATE.namespace),
          seldon_deployment(BASELINE.namespace, SKLEARN), seldon_deployment(CANDIDATE.namespace, XGBOOST), rule(100, 0))
    yield local_cluster
    local_cluster.kubectl("delete", "--ignore-not-found", "-n", "default", "job/fortio-requests",
                          "virtualservice/routing-rule", check=False)
    for route in (BASELINE, CANDIDATE):
        local_cluster.kubectl("delete", "--ignore-not-found", "-n", route.namespace, "seldondeployment/iris",
                              check=False)
    local_cluster.kubectl("delete", "--ignore-not-found", "--wait=false", f"namespace/{BASELINE.namespace}",
                          f"namespace/{CANDIDATE.namespace}", check=False)


@pytest.fixture
def plane_process(seed_objects: LocalCluster, tmp_path: Path) -> Iterator[str]:
    with open(tmp_path / "localenv.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "localenv", "--kubeconfig", str(seed_objects.kubeconfig),
                                 "--listen", "127.0.0.1:0"], cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=log)
        try:
            yield read_line(proc, START_TIMEOUT).split(": ", 1)[1].strip()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
    text = (tmp_path / "localenv.log").read_text()
    assert "Traceback" not in text, text


def status(http: requests.Session, url: str) -> dict[str, Any]:
    body: dict[str, Any] = http.get(f"{url}/admin/status", timeout=10).json()
    return body


def test_kubectl_applied_objects_drive_routing_promotion_and_load(seed_objects: LocalCluster, plane_process: str,
                                                                  http: requests.Session) -> None:
    cluster, url = seed_objects, plane_process
    assert {predict(http, url).headers["version"] for _ in range(5)} == {"iris-v1"}

    cluster.kubectl("patch", "virtualservice", "routing-rule", "-n", "default", "--type", "json", "-p",
                    json.dumps([{"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 0},
                                {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 100}]))
    wait_for(lambda: predict(http, url).headers["version"] == "iris-v2", WEIGHT_CHANGE_SECONDS,
             "the weight change to reach traffic")
    # 0/100 once applied: every request goes to the candidate, none is left on the baseline.
    assert [predict(http, url).headers["version"] for _ in range(20)] == ["iris-v2"] * 20

    apply(cluster, seldon_deployment(BASELINE.namespace, XGBOOST), rule(0, 0, promoted="iris-v2"))
    # The model and the one-route rule are two objects: each is synced on its own, so wait for both.
    wait_for(lambda: predict(http, url).json()["meta"]["requestPath"] == {"classifier": "seldonio/xgboostserver:1.13.1"}
             and {m["implementation"] for m in status(http, url)["served"]
                  if m["namespace"] == BASELINE.namespace} == {"XGBOOST_SERVER"}
             and [d["namespace"] for d in status(http, url)["routes"]["destinations"]] == [BASELINE.namespace],
             10, "the promoted model behind the baseline's namespace, and the one route to it")
    promoted = predict(http, url)
    assert promoted.headers["version"] == "iris-v2"

    load = LoadJob("fortio-requests", "/api/v1.0/predictions", 10, {"data": {"ndarray": [[6.8, 2.8, 4.8, 1.4]]}},
                   600, "iris.example.com")
    created = job(load, url)
    del created["metadata"]["uid"]
    before = sum(status(http, url)["routed"].values())
    apply(cluster, created)
    [running] = wait_for(lambda: [s for s in status(http, url)["loads"] if s["state"] == "running" and s["pid"]], 20,
                         "the Job's fortio process")
    wait_for(lambda: sum(status(http, url)["routed"].values()) >= before + 5, 20,
             "the fortio process's predictions through the gateway")
    cluster.kubectl("delete", "job", "fortio-requests", "-n", "default", "--wait=false")
    wait_for(lambda: status(http, url)["loads"] == [], 10, "the process to be ended with its Job")
    wait_for(lambda: not pid_alive(running["pid"]), 10, "the fortio process to be gone")
    stopped = status(http, url)["routed"]
    stopped_passes = status(http, url)["syncPasses"]
    apply(cluster, rule(50, 50))  # a change, so a sync pass after the stop
    wait_for(lambda: status(http, url)["syncPasses"] > stopped_passes, 10, "one more sync pass")
    assert status(http, url)["routed"] == stopped, "no request after the Job was deleted"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
