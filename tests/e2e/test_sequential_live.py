"""The `sequential` algorithm live: the real engine, local API server, data plane and Prometheus.

Two scenarios, 5 s apart: the seed's rewards (feedback at 0.7 : 1, three times the seed's rates so
the evidence comes in a minute) promote the candidate before a 40-iteration budget; a candidate
failing 3% of its predictions (3x the limit, with a better reward) is held back as soon as its error
test leans to a breach and is never promoted within 15 iterations: all traffic ends on the baseline. The p95 objective is tested from the histogram
buckets through the metric library's slow-request count.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.metrics.latency import quantile_test, slow_request_metric
from testbed.e2e import DataPlane, Rollout, seed_config
from testbed.live import LivePrometheus
from testbed.toolchain import LocalCluster, PulumiCli

pytestmark = pytest.mark.timeout(900)
BASELINE, CANDIDATE = "iris-v1", "iris-v2"
BUDGET, BROKEN_BUDGET, INTERVAL = 40, 15, 5
P95 = "95th-percentile-tail-latency"


def sequential_config(cluster: LocalCluster, plane: DataPlane, prometheus: LivePrometheus,
                      budget: int) -> dict[str, Any]:
    config = seed_config(cluster, plane, prometheus, algorithm="sequential", intervalSeconds=INTERVAL,
                         iterationsPerLoop=budget,
                         sequential={"quantileTests": [quantile_test(P95, 0.95, 5000)]})
    config["extraMetrics"] = [slow_request_metric(5000)]
    config["load"] = {**config["load"], "predictionQps": 20, "rewardQps": [2.1, 3.0]}
    return config


@pytest.fixture
def rollout(request: pytest.FixtureRequest, tmp_path: Path, pulumi_cli: PulumiCli, local_cluster: LocalCluster,
            plane: DataPlane, plane_prometheus: LivePrometheus) -> Iterator[Rollout]:
    plane.clear_faults()
    r = Rollout.create(pulumi_cli, tmp_path, "sequential", local_cluster,
                       sequential_config(local_cluster, plane, plane_prometheus, getattr(request, "param", BUDGET)))
    try:
        yield r
    finally:
        plane.clear_faults()
        r.destroy()


def weights(record: dict[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in record["weights"].items()}


def test_seed_rewards_are_promoted_on_evidence_before_the_budget(rollout: Rollout) -> None:
    rollout.up()
    rollout.wait_for_next_iteration()
    records = rollout.run_until_finished(max_ups=BUDGET + 1)
    final = records[-1]
    assert (final["stage"], final["promoted"], final["winner"]) == ("Completed", CANDIDATE, CANDIDATE)
    assert final["iteration"] < BUDGET, final["messages"]  # decided by the test, not by the budget
    assert "decided by the sequential test" in final["messages"][0]
    evidence = final["evidence"]
    assert evidence["decided"] == CANDIDATE and evidence["eValue"][CANDIDATE] >= evidence["threshold"]
    # Every objective of the candidate had a test; none leans to a breach.
    tested = evidence["objectiveEValue"][CANDIDATE]
    assert set(tested) == {"mean-latency", P95, "error-rate"} and max(tested.values()) <= 1
    # The candidate rose within the caps: at most 10 points per iteration.
    steps = [int(h["weights"][CANDIDATE]) for h in final["history"]]
    assert all(b - a <= 10 for a, b in zip([0, *steps], steps, strict=False)), steps
    assert weights(final) == {BASELINE: 0, CANDIDATE: 100}
    assert rollout.weights_in_cluster() == {CANDIDATE: 100}
    # While undecided, the record said why, with numbers that match the comparison it states.
    for record in records:
        reason = record["history"][-1]["reason"] if record["history"] else ""
        for shown, limit in re.findall(r"strongest evidence \S+ over \S+ is ([0-9.e+]+) < ([0-9.e+]+)", reason):
            assert float(shown) < float(limit), reason


@pytest.mark.parametrize("rollout", [BROKEN_BUDGET], indirect=True)
def test_a_candidate_failing_three_times_the_error_limit_is_never_promoted(rollout: Rollout,
                                                                            plane: DataPlane) -> None:
    plane.faults({"ns-candidate": {"errorRate": 0.03, "extraLatencyMs": 0}})
    rollout.up()
    rollout.wait_for_next_iteration()
    records = rollout.run_until_finished(max_ups=BROKEN_BUDGET + 1)
    final = records[-1]
    assert final.get("promoted") != CANDIDATE
    assert weights(final) == {BASELINE: 100, CANDIDATE: 0}
    assert rollout.weights_in_cluster().get(CANDIDATE, 0) == 0
    assert rollout.weights_in_cluster()[BASELINE] == 100
    if final["stage"] == "Failed":  # the breach confirmed: rolled back
        assert "iris-v2 broke error-rate <= 0.01" in final["messages"][0] and "e-value" in final["messages"][0]
    else:  # held back until the budget ended: the baseline kept, and the record says why
        assert (final["stage"], final["promoted"]) == ("Completed", BASELINE)
        # The record says why: the candidate missed its error-rate objective (the budget's last entry
        # gives the completion; the entries before it name the unmet objective).
        unmet = [u for h in final["history"] for u in (h.get("unmet") or {}).get(CANDIDATE, [])]
        assert any("error-rate" in u for u in unmet), final["history"][-3:]
    # The candidate's measured error rate was above the limit and its test leaned to a breach.
    assert final["values"]["error-rate"][CANDIDATE]["value"] > 0.01
    assert max(r["evidence"].get("objectiveEValue", {}).get(CANDIDATE, {}).get("error-rate", 0.0)
               for r in records) > 1
    # Held back, it got little traffic: at most the exploration floor once the data leaned to a breach.
    leaned = [r for r in records if r["evidence"].get("objectiveEValue", {}).get(CANDIDATE, {}).get("error-rate", 0) > 1]
    assert all(weights(r)[CANDIDATE] <= 5 for r in leaned[1:] if r["stage"] == "Running")
