"""The three contenders, each run on one simulated experiment.

- `iter8-v2` and `sequential`: the project's real core (`rollout.engine.iterate`), one iteration per
  look, with the seed's objectives; the weights the core returns are the traffic split until the next
  look.
- `flagger`: a Flagger-like canary written here: at the first look each candidate gets STEP percent,
  then gains STEP per look while its checks on the last interval pass (error rate and mean latency within the
  seed's limits, reward not below the baseline's), up to MAX_WEIGHT; one more passing look there
  promotes it. A failed check holds the weight; THRESHOLD failed checks roll that candidate back.

After an experiment ends, the promoted version (or the baseline, after a rollback) takes 100% for the
rest of the horizon. A run's "decision" is the look at which its outcome is fixed: the sequential
algorithm's first final winner, otherwise the end of the experiment.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from typing import Any

from benchmarks.world import ERROR_LIMIT, LATENCY_LIMIT, P95_LIMIT, Counts, Scenario, World
from components.metric_library import SEED_METRICS
from rollout.engine import iterate, start
from rollout.spec import ExperimentSpec
from rollout.state import COMPLETED
from rollout.validation import parse_experiment

ITER8_LOOKS = 10
"""The seed's iterationsPerLoop."""
STEP, MAX_WEIGHT, THRESHOLD = 10, 50, 5
"""Flagger's stepWeight, maxWeight and threshold (failed checks before rollback)."""

ENGAGEMENT_RATE = {
    "name": "engagement-rate",
    "description": "Feedback per prediction (the reward Iter8 needs when feedback follows traffic)",
    "type": "Gauge",
    "query": "sum(increase(feedback_total{ns=\"$ns\"}[${elapsedTime}s])) / "
             "sum(increase(predictions_total{ns=\"$ns\"}[${elapsedTime}s]))",
    "sampleSize": "request-count",
}


@dataclass(frozen=True)
class Run:
    promoted: str
    decided_at: float
    seconds: dict[str, float]
    """Weight-seconds (share x seconds) per version over the horizon."""


@cache
def spec_for(scenario: Scenario, algorithm: str) -> ExperimentSpec:
    sequential = algorithm == "sequential"
    reward = "engagement-rate" if scenario.traffic_driven and not sequential else "user-engagement"
    data: dict[str, Any] = {
        "name": f"bench-{scenario.key}",
        "target": "iris",
        "algorithm": algorithm,
        "intervalSeconds": scenario.cadence,
        "iterationsPerLoop": scenario.looks if sequential else ITER8_LOOKS,
        "requestCount": "request-count",
        "rewards": [{"metric": reward, "preferredDirection": "High"}],
        "objectives": [
            {"metric": "mean-latency", "upperLimit": LATENCY_LIMIT},
            {"metric": "95th-percentile-tail-latency", "upperLimit": P95_LIMIT},
            {"metric": "error-rate", "upperLimit": ERROR_LIMIT},
        ],
        "versions": [{"name": v.name, "variables": {"ns": v.name, "sid": "iris", "predictor": "default"}}
                     for v in scenario.versions],
        "metrics": [dict(m) for m in SEED_METRICS] + [ENGAGEMENT_RATE],
        "sequential": {"exposure": "requests" if scenario.traffic_driven else "time"},
    }
    return parse_experiment(data)


def _finish(seconds: dict[str, float], promoted: str, left: float) -> None:
    seconds[promoted] += 100 * left


def run_core(scenario: Scenario, spec: ExperimentSpec, rng: random.Random) -> Run:
    world = World(scenario, rng)
    state = start(spec, 0.0)
    seconds = dict.fromkeys(spec.version_names, 0.0)
    decided_at: float | None = None
    sticky = spec.algorithm.value == "sequential"
    now = 0
    while not state.finished and now < scenario.horizon:
        world.advance(state.weights, scenario.cadence)
        for name, weight in state.weights.items():
            seconds[name] += weight * scenario.cadence
        now += scenario.cadence
        state = iterate(spec, world.snapshot(), state, float(now))
        if decided_at is None and (state.finished or (sticky and state.winner)):
            decided_at = float(now)
    promoted = state.promoted if state.stage == COMPLETED and state.promoted else spec.baseline.name
    _finish(seconds, promoted, scenario.horizon - now)
    return Run(promoted, decided_at if decided_at is not None else float(now), seconds)


def _passes(scenario: Scenario, got: Counts, base: Counts) -> bool:
    if got.requests == 0:
        return False  # no values: Flagger fails the check
    if got.errors / got.requests > ERROR_LIMIT or got.latency_sum / got.requests > LATENCY_LIMIT:
        return False
    if scenario.traffic_driven:
        return base.requests == 0 or got.feedback / got.requests >= base.feedback / base.requests
    return got.feedback >= base.feedback


def run_flagger(scenario: Scenario, rng: random.Random) -> Run:
    world = World(scenario, rng)
    names = [v.name for v in scenario.versions]
    base, weight = names[0], dict.fromkeys(names[1:], 0)
    failed = dict.fromkeys(names[1:], 0)
    seconds = dict.fromkeys(names, 0.0)
    seconds[base] = 100.0 * scenario.cadence  # the first interval, before the first look
    world.advance({base: 100}, scenario.cadence)
    weight = dict.fromkeys(names[1:], STEP)
    now, promoted = scenario.cadence, None
    while weight and promoted is None and now < scenario.horizon:
        split = {base: 100 - sum(weight.values()), **weight}
        got = world.advance(split, scenario.cadence)
        for name, share in split.items():
            seconds[name] += share * scenario.cadence
        now += scenario.cadence
        ready = []
        for name in list(weight):
            if not _passes(scenario, got[name], got[base]):
                failed[name] += 1
                if failed[name] >= THRESHOLD:
                    del weight[name]
            elif weight[name] >= MAX_WEIGHT:
                ready.append(name)
            else:
                weight[name] += STEP
        if ready:
            totals = world.totals
            promoted = max(ready, key=lambda n: (totals[n].feedback / max(1, totals[n].requests), n))
    winner = promoted or base
    _finish(seconds, winner, scenario.horizon - now)
    return Run(winner, float(now), seconds)


def run_one(scenario: Scenario, algorithm: str, index: int) -> Run:
    rng = random.Random(f"{scenario.key}/{algorithm}/{index}")
    if algorithm == "flagger":
        return run_flagger(scenario, rng)
    return run_core(scenario, spec_for(scenario, algorithm), rng)
