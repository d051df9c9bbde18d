"""`sequential` on the data path as it is, live: the real engine, API server, data plane and Prometheus.

Two cases of issue 16, each failing before its fix in the unit tests (tests/rollout/test_sequential_data_path.py):

- **One empty answer.** Equal versions (the same feedback rate); at one look Prometheus answers the
  candidate's reward empty (a pass-through in front of the real server blanks it: a real Prometheus
  cannot be made to on demand). Read as 0 and then as a counter reset, the next look replayed the
  whole total as new events and promoted the candidate (97-100% of runs). Now the look holds the
  candidate's comparison: the budget ends with nothing promoted but the baseline.
- **A shared incident.** The seed's rewards (candidate better); for four looks every version fails 30%
  of its predictions. Judged alone against the 1% limit, the candidate was rolled back (100% of runs).
  Now a rollback needs it worse than the baseline in the same looks: it is never rolled back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.metrics.latency import quantile_test, slow_request_metric
from testbed.blanking import BlankingProxy
from testbed.e2e import DataPlane, Rollout, seed_config
from testbed.live import LivePrometheus
from testbed.toolchain import LocalCluster, PulumiCli

pytestmark = pytest.mark.timeout(600)
BASELINE, CANDIDATE = "iris-v1", "iris-v2"
INTERVAL = 5
P95 = "95th-percentile-tail-latency"


def config(cluster: LocalCluster, plane: DataPlane, prometheus: LivePrometheus, url: str, budget: int,
           reward_qps: list[float]) -> dict[str, Any]:
    settings = seed_config(cluster, plane, prometheus, algorithm="sequential", intervalSeconds=INTERVAL,
                           iterationsPerLoop=budget, sequential={"quantileTests": [quantile_test(P95, 0.95, 5000)]})
    settings["prometheusUrl"] = url
    settings["extraMetrics"] = [slow_request_metric(5000)]
    settings["load"] = {**settings["load"], "predictionQps": 20, "rewardQps": reward_qps}
    return settings


@pytest.fixture
def proxy(plane_prometheus: LivePrometheus) -> Iterator[BlankingProxy]:
    with BlankingProxy(plane_prometheus.url) as server:
        yield server


def stack(tmp_path: Path, pulumi_cli: PulumiCli, cluster: LocalCluster, settings: dict[str, Any]) -> Rollout:
    return Rollout.create(pulumi_cli, tmp_path, "faults", cluster, settings)


def candidates_reward(query: str) -> bool:
    return 'kubernetes_namespace="ns-candidate"' in query and "feedback" in query and "_count" in query


def test_one_empty_answer_for_the_candidates_reward_promotes_nothing(
        tmp_path: Path, pulumi_cli: PulumiCli, local_cluster: LocalCluster, plane: DataPlane,
        plane_prometheus: LivePrometheus, proxy: BlankingProxy) -> None:
    plane.clear_faults()
    rollout = stack(tmp_path, pulumi_cli, local_cluster,
                    config(local_cluster, plane, plane_prometheus, proxy.url, 7, [2.5, 2.5]))
    try:
        rollout.up()
        records = []
        for look in range(1, 9):
            rollout.wait_for_next_iteration()
            if look == 3:
                proxy.blank(candidates_reward)
            rollout.up()
            records.append(rollout.record())
            if records[-1]["stage"] != "Running":
                break
        assert len(proxy.blanked) == 1, proxy.blanked
        blanked = next(r for r in records if r["values"]["user-engagement"][CANDIDATE]["status"] != "ok")
        assert blanked["values"]["user-engagement"][CANDIDATE]["status"] == "no data"
        final = records[-1]
        assert (final["stage"], final["promoted"]) == ("Completed", BASELINE), final["messages"]
        assert all(r.get("promoted") != CANDIDATE and r["evidence"].get("decided") != CANDIDATE for r in records)
    finally:
        rollout.destroy()


def test_an_incident_every_version_suffers_does_not_roll_the_candidate_back(
        tmp_path: Path, pulumi_cli: PulumiCli, local_cluster: LocalCluster, plane: DataPlane,
        plane_prometheus: LivePrometheus) -> None:
    plane.clear_faults()
    rollout = stack(tmp_path, pulumi_cli, local_cluster,
                    config(local_cluster, plane, plane_prometheus, plane_prometheus.url, 9, [2.1, 3.0]))
    incident = {"errorRate": 0.3, "extraLatencyMs": 0}
    try:
        rollout.up()
        records = []
        for look in range(1, 11):
            rollout.wait_for_next_iteration()
            if look == 2:
                plane.faults({"ns-baseline": incident, "ns-candidate": incident})
            if look == 6:
                plane.clear_faults()
            rollout.up()
            records.append(rollout.record())
            if records[-1]["stage"] != "Running":
                break
        # The incident was seen: both versions' error rates went over the limit.
        assert any(all(r["values"]["error-rate"][v]["value"] > 0.01 for v in (BASELINE, CANDIDATE))
                   for r in records if r["values"].get("error-rate"))
        assert all(r["stage"] != "Failed" for r in records), [r["messages"] for r in records if r["stage"] == "Failed"]
        final = records[-1]
        assert final["stage"] == "Completed" and not any("Rolled back" in m for m in final["messages"])
    finally:
        plane.clear_faults()
        rollout.destroy()
