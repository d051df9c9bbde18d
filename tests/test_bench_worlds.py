"""The data-path worlds (benchmarks/dataworlds.py): what each world promises reaches the engine as it says.

Fast: a few looks of single runs, no servers (the emulation itself is checked against a real Prometheus in
tests/test_promql_emulation.py).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

import benchmarks.dataworlds as worlds
from benchmarks.dataworlds import T0, WORLDS, Simulation, run_world, world_by_key, world_spec
from benchmarks.decisions import figures
from benchmarks.promql import EmulatedPrometheus
from benchmarks.targets import world_targets
from rollout.core.outcomes import Failed, NoData, Observed
from rollout.metrics.collect import collect_snapshot


@pytest.mark.parametrize("world", WORLDS, ids=lambda w: w.key)
def test_every_world_s_experiment_is_accepted_by_the_program(world: worlds.DataWorld) -> None:
    for algorithm in ("sequential", "iter8-v2"):
        assert world_spec(world, algorithm, 10).name == f"bench-{world.key}"
    if world.change_at:
        assert world_spec(world, "sequential", 10, changed=True).rewards[0].metric == "feedback-reward"


def _snapshots(key: str, looks: int) -> list[dict[Any, Any]]:
    """What collect_snapshot read at each look of one run, with an even split throughout."""
    world = world_by_key(key)
    sim = Simulation(world, random.Random(3), looks * world.cadence)
    spec = world_spec(world, "sequential", looks)
    client = EmulatedPrometheus(sim.db)
    out = []
    for look in range(1, looks + 1):
        sim.run_until(look * world.cadence, {"iris-v1": 50.0, "iris-v2": 50.0})
        sim.close_look()
        now = float(T0 + look * world.cadence)
        client.fault = worlds.faults(world, spec, look, now)
        out.append(collect_snapshot(spec, client.as_client(), float(T0), now))
    return out


def test_the_read_counts_follow_the_exact_ones_through_increase() -> None:
    """request-count read through increase() over the whole run is the exact count, give or take the
    extrapolation over less than one scrape interval at each edge."""
    world = world_by_key("scrape15-null")
    sim = Simulation(world, random.Random(5), 600)
    client = EmulatedPrometheus(sim.db)
    spec = world_spec(world, "sequential", 20)
    for look in range(1, 21):
        sim.run_until(look * 30, {"iris-v1": 50.0, "iris-v2": 50.0})
        sim.close_look()
    snap = collect_snapshot(spec, client.as_client(), float(T0), float(T0 + 600))
    exact = sum(lk["iris-v1"].requests for lk in sim.looks)
    read = snap[("request-count", "iris-v1")]
    assert isinstance(read, Observed)
    assert read.value != exact  # extrapolated, not the exact count
    assert abs(read.value - exact) < 2 * world.request_rate * world.scrape / 2


def test_faults_reach_the_snapshot_at_their_look_only() -> None:
    empty = _snapshots("empty-reward-null", 4)
    assert isinstance(empty[2][("user-engagement", "iris-v2")], NoData)
    assert isinstance(empty[2][("user-engagement", "iris-v1")], Observed)
    assert isinstance(empty[3][("user-engagement", "iris-v2")], Observed)
    failed = _snapshots("failed-count-null", 5)
    assert [isinstance(s[("request-count", "iris-v1")], Failed) for s in failed] == [False, True, True, True, False]


def test_a_quiet_candidate_reads_no_new_requests_but_the_baseline_does() -> None:
    snaps = _snapshots("quiet-null", 6)
    def read(version: str) -> list[float]:
        outcomes = [s[("request-count", version)] for s in snaps]
        return [o.value for o in outcomes if isinstance(o, Observed)]

    held, served = read("iris-v2"), read("iris-v1")
    assert len(held) == len(served) == 6
    # no new requests from look 2: the read total stops growing, and drifts down as increase() extrapolates
    # a wider window over the same samples (the jitter a test must not take for new data)
    assert held[1] > 0 and max(held[2:]) <= held[1] and held[5] < held[2]
    assert served == sorted(served) and served[5] > 3 * served[0]


def test_a_broken_candidate_breaks_and_the_figures_and_targets_come_out() -> None:
    broken = world_by_key("bursty-broken")
    assert broken.broken == ("iris-v2",) and broken.right == "iris-v1"
    assert world_by_key("incident-seed").broken == () and world_by_key("p95-broken").broken == ("iris-v2",)
    runs = [run_world(broken, contender, 10, 0) for contender in ("sequential", "oracle")]
    assert all(r.promoted in ("iris-v1", "iris-v2") for r in runs)
    rows = [figures(broken, "10-looks", c, [r]) for c, r in zip(("sequential", "oracle"), runs, strict=True)]
    checks = world_targets({(f.budget, f.scenario, f.contender): f for f in rows})
    assert [t.name for t in checks] == ["10-looks, bursty-broken: broken candidate promoted <= 1% (upper end of "
                                        "the 95% CI)"]
    assert not checks[0].ok  # one run cannot show a share under 1%
