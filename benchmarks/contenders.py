"""The five contenders, each run on one simulated experiment with the same looks and budget.

- `iter8-v2` and `sequential`: the project's real core (`rollout.engine.iterate`), one iteration per
  look, `iterationsPerLoop` = the budget, with the seed's objectives; the weights the core returns
  are the traffic split until the next look.
- `flagger`: a Flagger-like canary: at the first look each candidate gets STEP percent, then gains
  STEP per look while its checks on the last interval pass (error rate and mean latency within the
  limits, p95 within its limit, reward not below the baseline's), up to MAX_WEIGHT; one more passing
  look there promotes it. A failed check holds the weight; THRESHOLD failed checks roll it back.
- `kayenta`: the same steps, judged as Kayenta does: each look, a Mann-Whitney U test per metric on
  the interval's samples (SAMPLES per interval: reward, error rate and mean latency per step), a
  metric failing when the candidate is worse at p < 0.05; score = share of metrics passing. A score
  of PASS_SCORE steps up, below MARGINAL_SCORE rolls back, else the weight holds. No correction for
  repeated looks.
- `oracle`: a fixed-horizon test that knows the budget in advance: an even split for the whole
  budget, then one test per comparison at the end (z-tests at the same alpha, Bonferroni as the
  sequential test): the limit of what a valid test can do with the budget's data.

After an experiment ends, the promoted version (or the baseline, after a rollback) takes 100% for the
rest of the horizon. A run's "decision" is the look at which its outcome is fixed: the sequential
algorithm's first final winner, otherwise the end of the experiment.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from functools import cache
from statistics import NormalDist
from typing import Any

from benchmarks.mannwhitney import mann_whitney_p
from benchmarks.world import (
    ERROR_LIMIT,
    LATENCY_LIMIT,
    P95_LIMIT,
    SLOW_BUCKET,
    Counts,
    Scenario,
    World,
    histogram_quantile,
)
from components.metrics.latency import quantile_test, slow_request_metric
from components.metrics.seldon import SEED_METRICS
from rollout.core.spec import ExperimentSpec
from rollout.core.state import COMPLETED, FAILED
from rollout.core.validation import parse_experiment
from rollout.engine import iterate, start

CONTENDERS = ("iter8-v2", "flagger", "kayenta", "sequential", "oracle")
ALPHA = 0.05
STEP, MAX_WEIGHT, THRESHOLD = 10, 50, 5
"""Flagger's stepWeight, maxWeight and threshold (failed checks before rollback)."""
SAMPLES, PASS_SCORE, MARGINAL_SCORE = 10, 95.0, 75.0
"""Kayenta: samples per metric per interval, and its default pass and marginal scores."""

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
    """Weight-seconds (percent x seconds) per version over the horizon."""
    rolled_back: tuple[str, ...] = field(default=())
    """Versions removed for breaking an objective (rightly or not)."""


@cache
def spec_for(scenario: Scenario, algorithm: str, looks: int) -> ExperimentSpec:
    sequential = algorithm == "sequential"
    reward = "engagement-rate" if scenario.traffic_driven and not sequential else "user-engagement"
    data: dict[str, Any] = {
        "name": f"bench-{scenario.key}",
        "target": "iris",
        "algorithm": algorithm,
        "intervalSeconds": scenario.cadence,
        "iterationsPerLoop": looks,
        "requestCount": "request-count",
        "rewards": [{"metric": reward, "preferredDirection": "High"}],
        "objectives": [
            {"metric": "mean-latency", "upperLimit": LATENCY_LIMIT},
            {"metric": "95th-percentile-tail-latency", "upperLimit": P95_LIMIT},
            {"metric": "error-rate", "upperLimit": ERROR_LIMIT},
        ],
        "versions": [{"name": v.name, "variables": {"ns": v.name, "sid": "iris", "predictor": "default"}}
                     for v in scenario.versions],
        "metrics": [dict(m) for m in SEED_METRICS] + [ENGAGEMENT_RATE, slow_request_metric(P95_LIMIT)],
        "sequential": {"alpha": ALPHA, "exposure": "requests" if scenario.traffic_driven else "time",
                       "quantileTests": [quantile_test("95th-percentile-tail-latency", 0.95, P95_LIMIT)]},
    }
    return parse_experiment(data)


def _finish(seconds: dict[str, float], promoted: str, left: float) -> None:
    seconds[promoted] += 100 * left


def run_core(scenario: Scenario, spec: ExperimentSpec, rng: random.Random) -> Run:
    world = World(scenario, rng)
    state = start(spec, 0.0)
    seconds = dict.fromkeys(spec.version_names, 0.0)
    sticky = spec.algorithm.value == "sequential"
    horizon = spec.total_iterations * scenario.cadence
    now, verdicts = 0, []
    while not state.finished and now < horizon:
        world.advance(dict(state.weights), scenario.cadence)
        for name, weight in state.weights.items():
            seconds[name] += weight * scenario.cadence
        now += scenario.cadence
        state = iterate(spec, world.snapshot(), state, float(now))
        verdicts.append((now, state.winner))
    promoted = state.promoted if state.stage == COMPLETED and state.promoted else spec.baseline.name
    rolled = tuple(re.findall(r"(\S+) broke ", state.messages[0])) if state.stage == FAILED else ()
    _finish(seconds, promoted, horizon - now)
    decided_at = float(now)  # iter8-v2's winner is only the current best: its decision is the end
    if sticky:  # the sequential winner is a verdict: decided from the look it holds to the end
        for at, winner in reversed(verdicts):
            if winner != promoted:
                break
            decided_at = float(at)
    return Run(promoted, decided_at, seconds, rolled)


def _flagger_passes(scenario: Scenario, got: Counts, base: Counts) -> bool:
    if got.requests == 0:
        return False  # no values: Flagger fails the check
    p95 = histogram_quantile(0.95, got.buckets) or 0.0
    if got.errors / got.requests > ERROR_LIMIT or got.latency_sum / got.requests > LATENCY_LIMIT or p95 > P95_LIMIT:
        return False
    if scenario.traffic_driven:
        return base.requests == 0 or got.feedback / got.requests >= base.feedback / base.requests
    return got.feedback >= base.feedback


def _samples(scenario: Scenario, steps: list[Counts], step_seconds: float) -> dict[str, list[float]]:
    """One version's per-step samples of the judged metrics (steps without requests give none)."""
    served = [c for c in steps if c.requests]
    reward = ([c.feedback / c.requests for c in served] if scenario.traffic_driven
              else [c.feedback / step_seconds for c in steps])
    return {"reward": reward, "errors": [c.errors / c.requests for c in served],
            "latency": [c.latency_sum / c.requests for c in served]}


def _kayenta_score(scenario: Scenario, got: dict[str, list[float]], base: dict[str, list[float]]) -> float:
    failing = [mann_whitney_p(base["reward"], got["reward"]) < ALPHA,
               mann_whitney_p(got["errors"], base["errors"]) < ALPHA,
               mann_whitney_p(got["latency"], base["latency"]) < ALPHA]
    return 100 * (1 - sum(failing) / len(failing))


def run_steps(scenario: Scenario, looks: int, rng: random.Random, kayenta: bool) -> Run:
    """Flagger-like (kayenta=False) or Kayenta-like canary steps."""
    world = World(scenario, rng)
    names = [v.name for v in scenario.versions]
    base = names[0]
    failed = dict.fromkeys(names[1:], 0)
    seconds = dict.fromkeys(names, 0.0)
    seconds[base] = 100.0 * scenario.cadence  # the first interval, before the first look
    world.advance({base: 100}, scenario.cadence)
    weight = dict.fromkeys(names[1:], STEP)
    horizon, now, promoted, rolled = looks * scenario.cadence, scenario.cadence, None, []
    step = scenario.cadence / SAMPLES
    while weight and promoted is None and now < horizon:
        split = {base: 100 - sum(weight.values()), **weight}
        if kayenta:
            parts = [world.advance(split, step) for _ in range(SAMPLES)]
            samples = {n: _samples(scenario, [p[n] for p in parts], step) for n in names}
        else:
            got = world.advance(split, scenario.cadence)
        for name, share in split.items():
            seconds[name] += share * scenario.cadence
        now += scenario.cadence
        ready = []
        for name in list(weight):
            if kayenta:
                score = _kayenta_score(scenario, samples[name], samples[base])
                passed, fail_now = score >= PASS_SCORE, score < MARGINAL_SCORE
            else:
                passed = _flagger_passes(scenario, got[name], got[base])
                failed[name] += not passed
                fail_now = failed[name] >= THRESHOLD
            if fail_now:
                del weight[name]
                rolled.append(name)
            elif passed and weight[name] >= MAX_WEIGHT:
                ready.append(name)
            elif passed:
                weight[name] += STEP
        if ready:
            totals = world.totals
            promoted = max(ready, key=lambda n: (totals[n].feedback / max(1, totals[n].requests), n))
    winner = promoted or base
    _finish(seconds, winner, horizon - now)
    return Run(winner, float(now), seconds, tuple(rolled))


def _z(alpha: float) -> float:
    return NormalDist().inv_cdf(1 - alpha)


def _breaks(counts: Counts, batches: list[tuple[int, float]], objectives: int) -> bool:
    """The fixed-horizon objective tests (one-sided z at alpha/objectives): error rate and slow share
    against their limits, and the mean latency against its limit with the batch means' spread."""
    n, z = counts.requests, _z(ALPHA / objectives)
    if n == 0:
        return False
    for share, limit in ((counts.errors / n, ERROR_LIMIT), (sum(counts.buckets[SLOW_BUCKET + 1:]) / n, 0.05)):
        if (share - limit) / math.sqrt(limit * (1 - limit) / n) > z:
            return True
    served = [(k, s) for k, s in batches if k]
    if len(served) < 2:
        return False
    mean = counts.latency_sum / n
    spread = sum(k * (s / k - mean) ** 2 for k, s in served) / (len(served) - 1)
    return (mean - LATENCY_LIMIT) / math.sqrt(max(spread, 1e-9) / n) > z


def run_oracle(scenario: Scenario, looks: int, rng: random.Random) -> Run:
    world = World(scenario, rng)
    names = [v.name for v in scenario.versions]
    split = {n: 100 / len(names) for n in names}
    batches: dict[str, list[tuple[int, float]]] = {n: [] for n in names}
    for _ in range(looks):
        got = world.advance(split, scenario.cadence)
        for n in names:
            batches[n].append((got[n].requests, got[n].latency_sum))
    horizon = looks * scenario.cadence
    totals, base = world.totals, names[0]
    rolled = tuple(n for n in names[1:] if _breaks(totals[n], batches[n], 3))

    def log_rate(n: str) -> tuple[float, float]:
        c = totals[n]
        exposure = c.requests if scenario.traffic_driven else horizon
        return math.log((c.feedback + 0.5) / max(exposure, 1)), 1 / (c.feedback + 0.5)

    z = _z(ALPHA / max(1, len(names) - 1))
    mb, vb = log_rate(base)
    winners = []
    for n in names[1:]:
        if n not in rolled:
            m, v = log_rate(n)
            if (m - mb) / math.sqrt(v + vb) > z:
                winners.append((m, n))
    promoted = max(winners)[1] if winners else base
    return Run(promoted, float(horizon), {n: split[n] * horizon for n in names}, rolled)


def run_one(scenario: Scenario, algorithm: str, looks: int, index: int) -> Run:
    rng = random.Random(f"{scenario.key}/{algorithm}/{looks}/{index}")
    if algorithm == "flagger":
        return run_steps(scenario, looks, rng, kayenta=False)
    if algorithm == "kayenta":
        return run_steps(scenario, looks, rng, kayenta=True)
    if algorithm == "oracle":
        return run_oracle(scenario, looks, rng)
    return run_core(scenario, spec_for(scenario, algorithm, looks), rng)
