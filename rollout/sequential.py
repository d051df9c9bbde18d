"""The `sequential` algorithm: promote only on anytime-valid evidence; weigh by the chance of being best.

Why repeated looks do no harm. Each comparison is an e-process: E_t >= 0 with expectation <= 1 under
the null at any stopping time (a test supermartingale), so by Ville's inequality the chance that it
*ever* reaches 1/alpha is <= alpha. Every `pulumi up` is one look, at any cadence, and a version is
promoted at the first look where its e-value crosses: <= alpha false promotions after 10 looks or
10,000. A fixed-level test repeated at every look has no such bound; its false alarms pile up.

Count rewards (no `sampleSize`, like `user-engagement`). Between two looks versions u, v get y_u, y_v
new events over exposures e_u, e_v. With equal rates per exposure, given m = y_u + y_v, y_v is
Binomial(m, r/(1+r)), r = e_v/e_u, whatever the common rate does; if v's rate is theta times u's the
probability is theta*r/(1+theta*r). The per-look likelihood ratios multiply into a test martingale
per theta; the e-value mixes them over a fixed grid of log(theta) with equal weights (a discrete
mixture is exactly valid; positive side: "v higher", negative: "u higher"). The grid's running
log-likelihood ratios are the test's state, kept in the evidence from look to look.

Exposure (`sequential.exposure`): `time` when the reward load is fixed whatever the weights (the
seed's fortio jobs post feedback at 0.7 and 1/s): equal exposure, r = 1. `requests` when events
follow the traffic a version serves: r is the ratio of new `requestCount`. `requests` on load-fixed
rewards favours the version with less traffic; `time` on traffic-driven rewards favours the one with
more, which only keeps the baseline: `time` is the default (and what Iter8 compares: raw counts).

Mean rewards (with `sampleSize`): a normal mixture on the difference of means, the variance an upper
95% bound from the per-look batch means: valid asymptotically (CLT), not exactly.

Objectives. A proportion (metric with `sampleSize`, value and limit in [0, 1], like `error-rate`) is
broken when a one-sided binomial mixture against the limit reaches (#objectives)/alpha; the Bernoulli
likelihood ratio is a supermartingale for any [0, 1] samples with mean within the limit. Other gauges
(latencies) count as broken after CONFIRMATIONS looks in a row beyond the limit. A version beyond a
limit at this look cannot win and keeps the exploration floor only.

Winner, with threshold (n-1)/alpha (Bonferroni over candidates): a candidate that beats the baseline
and every other candidate still in play (not beaten, not broken); or the baseline, if it beats every
candidate in play. The decision is final. Weights: floor + (100 - n*floor) * P(best), P(best) from
normal posteriors (log rate for counts) by numeric integration, feasible versions only; 100% to the
winner once decided; then `cap_candidates` and `round_to_100`: same inputs, same weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from rollout.assessment import VersionAssessment, within
from rollout.decision import Decision
from rollout.evalues import (
    MEAN_PRIOR,
    SIGNED,
    add_look,
    chi2_lower,
    half_normal_log_e,
    pair_log_e,
    probability_best,
    proportion_log_e,
)
from rollout.outcomes import Snapshot, value_of
from rollout.spec import DeploymentPattern, Direction, ExperimentSpec, Exposure, Objective, TestingPattern
from rollout.state import ExperimentState
from rollout.weights import cap_candidates, round_to_100
from rollout.winner import WinnerAssessment, assess_winner

CONFIRMATIONS = 3
"""Looks in a row beyond its limit before a gauge without a test (a latency) counts as broken."""
REPORT_CAP = 1e12
"""E-values are reported up to this (decisions use the exact log)."""


@dataclass
class _Rewards:
    log_e: dict[tuple[str, str], float] = field(default_factory=dict)
    """(v, u) -> log e-value that v's reward is higher than u's."""
    estimate: dict[str, tuple[float, float]] = field(default_factory=dict)
    """version -> (mean, sd) of its reward (log rate for counts), higher is higher."""
    samples: dict[str, int] = field(default_factory=dict)
    running: dict[str, Any] = field(default_factory=dict)
    stale: str = ""


def _floats(raw: Any, size: int) -> list[float]:
    ok = isinstance(raw, list) and len(raw) == size and all(isinstance(x, (int, float)) for x in raw)
    return [float(x) for x in raw] if ok else [0.0] * size


def _counts(spec: ExperimentSpec, snapshot: Snapshot, old: Mapping[str, Any]) -> _Rewards:
    names, metric = spec.version_names, spec.rewards[0].metric
    by_time = spec.sequential.exposure is Exposure.TIME
    before = old.get("totals", {})
    events = {v: max(0.0, value_of(snapshot.get((metric, v))) or 0.0) for v in names}
    seen = {v: value_of(snapshot.get((spec.request_count or "", v))) for v in names}
    exposure = {v: 0.0 if by_time else float(seen[v] or 0.0) for v in names}
    stale = "" if by_time or None not in seen.values() else f"no {spec.request_count} for every version"
    if stale:  # no update: the next look's batch spans this one too
        events, exposure = ({v: _floats(before.get(v), 2)[i] for v in names} for i in (0, 1))
    step: dict[str, tuple[float, float] | None] = {}
    for v in names:
        y0, e0 = _floats(before.get(v), 2)
        dy, de = events[v] - y0, exposure[v] - e0
        step[v] = (dy, de) if dy >= 0 and de >= 0 else None  # a reset: this look only rebases
    out = _Rewards(running={"totals": {v: [events[v], exposure[v]] for v in names}, "pairs": {}}, stale=stale)
    for i, u in enumerate(names):
        for v in names[i + 1:]:
            logs = _floats(old.get("pairs", {}).get(f"{u}|{v}"), len(SIGNED))
            su, sv = step[u], step[v]
            if su and sv and (by_time or (su[1] > 0 and sv[1] > 0)):
                add_look(logs, su[0], sv[0], 1.0 if by_time else sv[1] / su[1])
            out.running["pairs"][f"{u}|{v}"] = logs
            out.log_e[(v, u)], out.log_e[(u, v)] = pair_log_e(logs)
    for v in names:
        out.samples[v] = round(events[v])
        if by_time or exposure[v] > 0:
            out.estimate[v] = (math.log((events[v] + 0.5) / (exposure[v] or 1.0)), (events[v] + 0.5) ** -0.5)
    return out


def _means(spec: ExperimentSpec, snapshot: Snapshot, old: Mapping[str, Any]) -> _Rewards:
    names, metric = spec.version_names, spec.metric(spec.rewards[0].metric)
    out = _Rewards(running={"moments": {}})
    variance: dict[str, float] = {}
    for v in names:
        n0, sum0, sq0, k0 = _floats(old.get("moments", {}).get(v), 4)
        mean = value_of(snapshot.get((metric.name, v)))
        n = value_of(snapshot.get((metric.sample_size or "", v)))
        if mean is not None and n is not None and n > 0:
            if n < n0:
                n0, sum0, sq0, k0 = 0.0, 0.0, 0.0, 0.0
            if n > n0:
                batch = (mean * n - sum0) / (n - n0)
                n0, sum0, sq0, k0 = n, mean * n, sq0 + (n - n0) * batch**2, k0 + 1
            if k0 >= 2:
                spread = max(sq0 - sum0**2 / n0, 1e-12 * (1 + mean**2))
                variance[v] = spread / chi2_lower(k0 - 1)
                out.estimate[v] = (sum0 / n0, math.sqrt(variance[v] / n0))
        out.running["moments"][v] = [n0, sum0, sq0, k0]
        out.samples[v] = round(n0)
    for i, u in enumerate(names):
        for v in names[i + 1:]:
            if u in variance and v in variance:
                diff = out.estimate[v][0] - out.estimate[u][0]
                info = 1 / (out.estimate[v][1] ** 2 + out.estimate[u][1] ** 2)
                tau2 = MEAN_PRIOR**2 * (variance[u] + variance[v]) / 2
                out.log_e[(v, u)] = half_normal_log_e(diff * info, info, tau2)
                out.log_e[(u, v)] = half_normal_log_e(-diff * info, info, tau2)
    return out


def _assess(spec: ExperimentSpec, snapshot: Snapshot, old: Mapping[str, Any]
            ) -> tuple[tuple[VersionAssessment, ...], dict[str, int], dict[str, dict[str, float]]]:
    log_limit = math.log(max(1, len(spec.objectives)) / spec.sequential.alpha)
    out: list[VersionAssessment] = []
    breaks: dict[str, int] = {}
    evalues: dict[str, dict[str, float]] = {}
    for version in spec.version_names:
        met: list[bool] = []
        broken: list[str] = []
        rollback = False
        for objective in spec.objectives:
            value = value_of(snapshot.get((objective.metric, version)))
            met.append(within(objective, value))
            key = f"{version}|{objective.metric}"
            breaks[key] = 0 if met[-1] or value is None else int(old.get(key, 0)) + 1
            log_e = _proportion(spec, snapshot, objective, version, value)
            if log_e is not None:
                evalues.setdefault(version, {})[objective.metric] = min(math.exp(min(log_e, 700)), REPORT_CAP)
                sure, why = log_e >= log_limit, f"e-value {math.exp(min(log_e, 700)):.3g}"
            else:
                sure, why = breaks[key] >= CONFIRMATIONS, f"{breaks[key]} looks in a row"
            if sure and value is not None:
                broken.append(f"{objective.condition()} (got {value:g}, {why})")
                rollback = rollback or objective.rollback_on_failure
        out.append(VersionAssessment(version, tuple(met), tuple(broken), rollback))
    return tuple(out), breaks, evalues


def _proportion(spec: ExperimentSpec, snapshot: Snapshot, objective: Objective, version: str,
                value: float | None) -> float | None:
    """Log e-value that a proportion breaks its limits, or None when the metric is no proportion."""
    size = spec.metric(objective.metric).sample_size
    n = value_of(snapshot.get((size, version))) if size else None
    limits = [x for x in (objective.upper_limit, objective.lower_limit) if x is not None]
    if value is None or n is None or n <= 0 or not 0 <= value <= 1 or not all(0 <= x <= 1 for x in limits):
        return None
    return proportion_log_e(value, n, objective.upper_limit, objective.lower_limit)


def sequential_decision(spec: ExperimentSpec, snapshot: Snapshot, state: ExperimentState) -> Decision:
    settings, names = spec.sequential, spec.version_names
    old: Mapping[str, Any] = state.evidence if state.evidence.get("algorithm") == "sequential" else {}
    running: Mapping[str, Any] = old.get("running") or {}
    assessments, breaks, objective_e = _assess(spec, snapshot, running.get("breaks", {}))
    by_reward = bool(spec.rewards) and spec.testing_pattern in (TestingPattern.AB, TestingPattern.ABN)
    rewards = _Rewards()
    if by_reward:
        kind = _means if spec.metric(spec.rewards[0].metric).sample_size else _counts
        rewards = kind(spec, snapshot, running)
    low = by_reward and spec.rewards[0].preferred_direction is Direction.LOW
    better = {(v, u): rewards.log_e[(u, v) if low else (v, u)] for v, u in rewards.log_e}
    log_thr = math.log(max(1, len(names) - 1) / settings.alpha)
    broken = {a.version for a in assessments if a.broken}
    beaten = {u for (v, u), log_e in better.items() if log_e >= log_thr}
    feasible = {a.version for a in assessments if a.feasible} - broken
    decided = old.get("decided") if old.get("decided") in names else None
    if decided is None and by_reward and not rewards.stale:
        decided = _winner(spec, better, log_thr, beaten | broken, feasible, rewards.samples)
    if by_reward:
        why = _why(decided, better, log_thr, rewards.stale)
        winner = WinnerAssessment((decided,) if decided else (), decided, why)
    else:
        winner = assess_winner(spec, assessments, snapshot)
    sign = -1.0 if low else 1.0
    chances = probability_best({v: (sign * m, s) for v, (m, s) in rewards.estimate.items()
                                 if v in feasible and v not in beaten} if by_reward else
                                {v: (0.0, 1.0) for v in (winner.best_versions or names[:1])})
    if rewards.stale:
        weights = dict(state.weights)
    else:
        weights = _weights(spec, state, chances, decided or (None if by_reward else winner.winner))
    base = names[0]
    evidence: dict[str, Any] = {
        "algorithm": "sequential", "alpha": settings.alpha, "threshold": math.exp(log_thr),
        "rewardTest": "none" if not by_reward else "means" if "moments" in rewards.running else "counts",
        "exposure": settings.exposure.value,
        "eValue": {v: _report(better.get((v, base), 0.0)) for v in names[1:]},
        "eValueBaseline": {v: _report(better.get((base, v), 0.0)) for v in names[1:]},
        "probabilityBest": {v: chances.get(v, 0.0) for v in names},
        "samples": {v: rewards.samples.get(v, 0) for v in names},
        "objectiveEValue": objective_e,
        "running": {**rewards.running, "breaks": breaks},
    }
    if decided:
        evidence["decided"] = decided
    if rewards.stale:
        evidence["stale"] = rewards.stale
    return Decision(assessments, winner, weights, evidence, final=decided is not None)


def _winner(spec: ExperimentSpec, better: Mapping[tuple[str, str], float], log_thr: float, out: set[str],
            feasible: set[str], samples: Mapping[str, int]) -> str | None:
    names, base = spec.version_names, spec.baseline.name
    if any(samples.get(v, 0) < spec.sequential.min_samples for v in names if v not in out):
        return None
    for v in names:
        if v not in feasible or v in out:
            continue
        rivals = [u for u in names if u != v and (u == base or u not in out)]
        if all(better.get((v, u), 0.0) >= log_thr for u in rivals):
            return v
    return None


def _why(winner: str | None, better: Mapping[tuple[str, str], float], log_thr: float,
         stale: str) -> str:
    if stale:
        return f"no decision this iteration: {stale}"
    threshold = f"{math.exp(log_thr):.3g}"
    if winner:
        return f"{winner} is best with evidence above {threshold}"
    if not better:
        return "no evidence yet"
    (v, u), log_e = max(better.items(), key=lambda item: (item[1], item[0]))
    return f"no winner yet: strongest evidence {v} over {u} is {_report(log_e):.3g} < {threshold}"


def _report(log_e: float) -> float:
    return min(math.exp(min(log_e, 700.0)), REPORT_CAP)


def _weights(spec: ExperimentSpec, state: ExperimentState, chances: Mapping[str, float],
             winner: str | None) -> dict[str, int]:
    """Worked example: two versions, floor 5, P(best) 0.8 for the candidate, old 100/0, caps 100
    and 10: target = 5 + 90*0.2 = 23 / 5 + 90*0.8 = 77; the candidate may rise by 10: 90/10."""
    names = spec.version_names
    if spec.deployment_pattern is DeploymentPattern.FIXED_SPLIT:
        return {name: int(state.weights.get(name, 0)) for name in names}
    if winner or spec.deployment_pattern is DeploymentPattern.BLUE_GREEN:
        target = [Fraction(100 if name == (winner or names[0]) else 0) for name in names]
    else:
        floor = min(Fraction(spec.sequential.exploration_floor), Fraction(100, len(names)))
        raw = [Fraction(chances.get(name, 0.0)) for name in names]
        total = sum(raw) or Fraction(1)
        if not any(raw):
            raw[0] = Fraction(1)
        target = [floor + (100 - len(names) * floor) * p / total for p in raw]
    return round_to_100(names, cap_candidates(spec, state.weights, target))
