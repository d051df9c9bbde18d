"""Loads from the fortio Jobs: started from the Job spec, through the gateway, stopped with the Job."""

from __future__ import annotations

import pytest
import requests

from components.load import LoadJob
from localenv.app import DataPlane
from localenv.fortio import LoadSpec
from localenv.load import LoadRunner, NotLoopback, check_loopback
from localenv.metrics import CLIENT, SERVER
from tests.localenv.fakes import FakeCluster, job, routing_rule, seed_jobs
from tests.localenv.helpers import count, samples, wait_for


def test_the_seeds_jobs_become_traffic_and_stop_with_their_jobs(cluster: FakeCluster, plane: DataPlane,
                                                                 http: requests.Session) -> None:
    cluster.set(vs=routing_rule(50, 50), job_list=seed_jobs(plane.url, prediction_qps=20, reward_qps=(10, 20)))
    plane.sync.run_once()
    assert sorted(s["job"] for s in plane.loads.stats()) == [  # type: ignore[type-var]
        "fortio-irisv1-rewards", "fortio-irisv2-rewards", "fortio-requests"]

    def enough() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        found = samples(http, plane.url)
        done = (count(found, CLIENT, "ns-baseline") >= 5 and count(found, CLIENT, "ns-candidate") >= 5
                and count(found, SERVER, "ns-baseline", service="feedback") >= 5
                and count(found, SERVER, "ns-candidate", service="feedback") >= 5)
        return found if done else None

    wait_for(enough, 30, "predictions and feedback from the three Jobs", every=0.1)
    assert plane.gateway.routed().keys() == {"iris-default.ns-baseline.svc.cluster.local",
                                             "iris-default.ns-candidate.svc.cluster.local"}

    cluster.set(job_list=[])
    plane.sync.run_once()
    assert plane.loads.stats() == []
    for runner in plane.loads.stopping():
        assert runner.join(10), f"{runner.spec.job} still sending"
    stopped = samples(http, plane.url)
    plane.sync.run_once()
    assert samples(http, plane.url) == stopped, "no request after the Jobs were deleted"


def test_a_load_sends_at_its_rate_with_its_headers(cluster: FakeCluster, plane: DataPlane,
                                                   http: requests.Session) -> None:
    load = LoadJob("fortio-requests", "/api/v1.0/predictions", 40, {"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}},
                   1, "iris.example.com")
    cluster.set(job_list=[job(load, plane.url)])
    plane.sync.run_once()
    [runner_stats] = plane.loads.stats()
    wait_for(lambda: not plane.loads.stats()[0]["running"], 10, "the 1 s load to end")
    [runner_stats] = plane.loads.stats()
    assert runner_stats["codes"] == {"200": runner_stats["sent"]}
    assert 38 <= runner_stats["sent"] <= 40  # type: ignore[operator]
    found = samples(http, plane.url)
    assert count(found, CLIENT, "ns-baseline") == runner_stats["sent"]
    plane.sync.run_once()
    assert plane.loads.stats()[0]["sent"] == runner_stats["sent"], "a finished load is not restarted"


def test_a_replaced_job_restarts_its_load(cluster: FakeCluster, plane: DataPlane) -> None:
    load = LoadJob("fortio-requests", "/api/v1.0/predictions", 1, {"x": 1}, 600, "iris.example.com")
    cluster.set(job_list=[job(load, plane.url, uid="first")])
    plane.sync.run_once()
    cluster.set(job_list=[job(load, plane.url, uid="second")])
    plane.sync.run_once()
    assert [s["key"] for s in plane.loads.stats()] == ["fortio-requests/second"]
    for runner in plane.loads.stopping():
        assert runner.join(10)


def test_loads_go_only_to_loopback(cluster: FakeCluster, plane: DataPlane) -> None:
    for url in ("http://127.0.0.1:1/x", "http://localhost:1/x", "http://[::1]:1/x", "http://127.3.4.5/x"):
        check_loopback(url)
    for url in ("http://10.0.0.1/x", "http://example.com/x", "http://192.168.1.1/x"):
        with pytest.raises(NotLoopback):
            check_loopback(url)
    with pytest.raises(NotLoopback):
        LoadRunner(LoadSpec("j", "http://10.0.0.7/api/v1.0/predictions", "GET", (), None, 1.0))
    load = LoadJob("fortio-requests", "/api/v1.0/predictions", 5, {"x": 1}, 600, "iris.example.com")
    cluster.set(job_list=[job(load, "http://10.0.0.7")])
    plane.sync.run_once()
    assert plane.loads.stats() == []
