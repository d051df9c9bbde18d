"""The seed's story end to end on the local environment: real engine, API server, Prometheus, data plane.

Each scenario runs its own stack in a throwaway project and destroys it at the end; the local API
server, the data plane and its Prometheus are shared by the module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from testbed.e2e import DataPlane, Rollout, Traffic, seed_config
from testbed.live import LivePrometheus
from testbed.toolchain import LocalCluster, PulumiCli

pytestmark = pytest.mark.timeout(900)
BASELINE, CANDIDATE = "iris-v1", "iris-v2"
CANDIDATE_HOST = "iris-default.ns-candidate.svc.cluster.local"
BASELINE_HOST = "iris-default.ns-baseline.svc.cluster.local"


@pytest.fixture
def rollout(request: pytest.FixtureRequest, tmp_path: Path, pulumi_cli: PulumiCli, local_cluster: LocalCluster,
            plane: DataPlane, plane_prometheus: LivePrometheus) -> Iterator[Rollout]:
    overrides = getattr(request, "param", {})
    plane.clear_faults()
    r = Rollout.create(pulumi_cli, tmp_path, "scenario", local_cluster,
                       seed_config(local_cluster, plane, plane_prometheus, **overrides), Traffic(plane, plane_prometheus))
    try:
        yield r
    finally:
        plane.clear_faults()
        r.destroy()
        # `pulumi destroy` leaves nothing of the stack in the API server.
        for kind, ns in (("seldondeployments.machinelearning.seldon.io", "ns-baseline"),
                         ("seldondeployments.machinelearning.seldon.io", "ns-candidate"),
                         ("virtualservices.networking.istio.io", "default"), ("jobs", "default"),
                         ("configmaps", "iter8-seldon")):
            left = local_cluster.kubectl("get", kind, "-n", ns, "-o", "name", check=False).stdout
            assert not [n for n in left.split() if "routing-rule" in n or "fortio" in n or "iris" in n
                        or "seldon-rollout" in n], left


def candidate_weights(records: list[dict[str, Any]]) -> list[int]:
    return [int(r["weights"][CANDIDATE]) for r in records]


def test_seed_scenario_moves_traffic_step_by_step_and_promotes_the_xgboost_model(
        rollout: Rollout, plane: DataPlane) -> None:
    first = rollout.up()
    assert rollout.weights_in_cluster() == {BASELINE: 100, CANDIDATE: 0}
    assert "downloading" not in first.stdout.lower()
    rollout.wait_for_next_iteration()
    routed_before = plane.status()["routed"]
    records: list[dict[str, Any]] = []
    splits = []
    for _ in range(12):
        rollout.up()
        record = rollout.record()
        records.append(record)
        if record["stage"] != "Running":
            break
        assert rollout.weights_in_cluster() == {k: int(v) for k, v in record["weights"].items()}
        rollout.wait_for_next_iteration()
        routed_after = plane.status()["routed"]
        new = {h: routed_after.get(h, 0) - routed_before.get(h, 0) for h in (BASELINE_HOST, CANDIDATE_HOST)}
        splits.append((int(record["weights"][CANDIDATE]), new))
        routed_before = routed_after
    # The candidate has no predictions at 0%, so it is not yet feasible at iteration 1 (5%), then
    # climbs by the 10-point cap; the last iteration completes the experiment and promotes iris-v2: its
    # split (the mix's 95%) is never written, and the history records what the VirtualService received.
    history = records[-1]["history"]
    assert [int(h["weights"][CANDIDATE]) for h in history] == [5, 15, 25, 35, 45, 55, 65, 75, 85, 100]
    assert history[-1]["promoted"] == CANDIDATE
    assert len(json.dumps(records[-1], separators=(",", ":"))) < 32 * 1024  # the record stays small
    outputs = rollout.outputs()
    assert (outputs["stage"], outputs["iteration"], outputs["winner"], outputs["promoted"]) == (
        "Completed", 10, CANDIDATE, CANDIDATE)
    assert outputs["weights"] == {BASELINE: 0, CANDIDATE: 100}
    # Promotion: the baseline SeldonDeployment serves the XGBoost model and takes all the traffic.
    sdep = json.loads(rollout.cluster.kubectl("get", "seldondeployments.machinelearning.seldon.io", "iris", "-n",
                                              "ns-baseline", "-o", "json").stdout)
    assert sdep["spec"]["predictors"][0]["graph"]["implementation"] == "XGBOOST_SERVER"
    assert rollout.weights_in_cluster() == {CANDIDATE: 100}
    served = {m["namespace"]: m["implementation"] for m in plane.status()["served"]}
    assert served["ns-baseline"] == "XGBOOST_SERVER"
    reply = requests.post(plane.url + "/api/v1.0/predictions", headers={"Host": "iris.example.com"},
                          json={"data": {"ndarray": [[6.8, 2.8, 4.8, 1.4]]}}, timeout=5)
    assert reply.status_code == 200
    assert reply.headers["version"] == CANDIDATE
    # The data plane's split followed the weights in force during each interval.
    for weight, counts in splits:
        total = sum(counts.values())
        if total >= 20:
            assert abs(100 * counts[CANDIDATE_HOST] / total - weight) <= 10, (weight, counts)


@pytest.mark.parametrize("rollout", [{"iterationsPerLoop": 20}], indirect=True)
def test_candidate_with_five_percent_errors_is_rolled_back(rollout: Rollout, plane: DataPlane) -> None:
    plane.faults({"ns-candidate": {"errorRate": 0.05, "extraLatencyMs": 0}})
    rollout.up()
    rollout.wait_for_next_iteration()
    records = rollout.run_until_finished(max_ups=20)
    final = records[-1]
    # Rollback on failure: the candidate goes to 0% at once and the experiment ends Failed, with
    # all traffic on the baseline and nothing promoted (it did not succeed; a CI gate must see that).
    assert final["stage"] == "Failed"
    assert final.get("promoted") is None
    assert {k: int(v) for k, v in final["weights"].items()} == {BASELINE: 100, CANDIDATE: 0}
    assert "iris-v2 broke error-rate <= 0.01" in final["messages"][0]
    assert rollout.weights_in_cluster() == {BASELINE: 100, CANDIDATE: 0}
    assert final["values"]["error-rate"][CANDIDATE]["value"] > 0.01


@pytest.mark.parametrize("rollout", [{"iterationsPerLoop": 20, "consecutiveErrorLimit": 3}], indirect=True)
def test_prometheus_outage_holds_weights_resumes_and_rolls_back_at_the_limit(
        rollout: Rollout, plane_prometheus: LivePrometheus) -> None:
    rollout.up()
    for _ in range(3):
        rollout.wait_for_next_iteration()
        rollout.up()
    before = rollout.record()
    assert (before["iteration"], int(before["weights"][CANDIDATE])) == (3, 25), [
        {k: h.get(k) for k in ("iteration", "time", "weights", "reason", "values", "unmet")} for h in before["history"]]
    plane_prometheus.stop()
    try:
        rollout.wait_for_next_iteration()
        rollout.up()
        held = rollout.record()
        assert held["iteration"] == 3
        assert held["weights"] == before["weights"]
        assert held["consecutiveErrors"] == 1
        assert "Held weights (1/3 before rollback)" in held["messages"][0]
        assert "cannot reach" in held["messages"][0]
        assert rollout.weights_in_cluster() == {k: int(v) for k, v in before["weights"].items()}
    finally:
        plane_prometheus.start()
    rollout.wait_for_next_iteration()
    rollout.up()
    resumed = rollout.record()
    assert (resumed["iteration"], resumed["consecutiveErrors"], int(resumed["weights"][CANDIDATE])) == (4, 0, 35)
    plane_prometheus.stop()
    try:
        stages = []
        for _ in range(3):
            rollout.wait_for_next_iteration()
            rollout.up()
            stages.append(rollout.record()["stage"])
        assert stages == ["Running", "Running", "Failed"]
        final = rollout.record()
        assert {k: int(v) for k, v in final["weights"].items()} == {BASELINE: 100, CANDIDATE: 0}
        assert "Failed after 3 iterations in a row" in final["messages"][0]
        assert rollout.weights_in_cluster() == {BASELINE: 100, CANDIDATE: 0}
    finally:
        plane_prometheus.start()


def test_up_killed_mid_iteration_leaves_consistent_state_and_counts_once(rollout: Rollout) -> None:
    rollout.up()
    rollout.wait_for_next_iteration()
    rollout.up()
    assert rollout.record()["iteration"] == 1
    rollout.wait_for_next_iteration()
    log = rollout.up_killed_mid_iteration()
    assert "rollout:Experiment experiment updating" in log
    # The killed `up` left its lock (and maybe a pending operation); the next command clears the
    # stale lock, says so, and proceeds. The iteration it was running counted at most once.
    state = rollout.cli.run("stack", "output", "iteration", cwd=rollout.project, stack=rollout.stack)
    assert "removed the lock of stack 'scenario'" in state.stderr
    assert state.stdout.strip() in ("1", "2")
    rollout.up()
    record = rollout.record()
    iterations = [int(h["iteration"]) for h in record["history"]]
    assert iterations == sorted(set(iterations)), iterations
    assert record["iteration"] == iterations[-1] == 2
    assert rollout.weights_in_cluster() == {k: int(v) for k, v in record["weights"].items()}
