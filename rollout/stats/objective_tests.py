"""Objectives under the `sequential` algorithm: each limit is broken only on anytime-valid evidence.

Three tests, picked by what the metric is (first that applies):
- **Quantile from histogram buckets** (`sequential.quantileTests`): "p-th quantile <= limit" means at
  most a share 1 - p of requests is slower than the limit. The slow-count metric counts requests
  slower than a bucket bound b (`slowerThan`), which the spec's checks hold to the limit itself, so
  one binomial test of that share against 1 - p finds a breach and shows "within", both at the limit.
  Should b differ all the same, each side is used only where it stays valid: the share above b >= limit
  is no more than the share above the limit (a breach of it is a breach), the share above b <= limit no
  less (within for it is within); a proof from a bound above the limit would show a p95 of 4200 ms
  "within" 3000 ms.
- **Proportion** (a metric with `sampleSize`, value and limits in [0, 1], like `error-rate`): the
  same binomial mixture on the cumulative counts, against the limit.
- **Mean of a nonnegative quantity** (a metric with `sampleSize` and an upper limit, like
  `mean-latency` = sum / count): bets on each look's batch mean, from the cumulative sum and count.
Any other objective has no test: beyond its limit a version cannot win, but it is never rolled back.
A test's evidence breaks the limit at (#objectives)/alpha (Bonferroni over objectives: a rollback
follows from *any* test, so the chances of a false one add up). With a test, a version is held back
(cannot win, backs off from the exploration floor) while its e-value is above 1 (the data lean to a
breach), not whenever a noisy reading is beyond the limit: a healthy version with an unlucky early
error is not cut off from the traffic that would clear it. Its estimates are reported too
(`beyond`): before a winner is decided, a version with one beyond its limit gains no traffic.

The proportion tests also run the other way ("within the limit") at 1/alpha: a winner ends the
experiment early only once its error rates and slow shares are shown within their limits
(`proven`); until then it takes the traffic and a breach can still roll it back. No Bonferroni
here: promoting a version that breaks objective j needs *every* within-test to pass, among them
j's, whose chance of passing is at most alpha on its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollout.core.assessment import VersionAssessment, within
from rollout.core.outcomes import Snapshot, value_of
from rollout.core.spec import ExperimentSpec, Objective
from rollout.stats.evalues import BETS, add_batch_mean, bets_log_e, proportion_log_e, stored_floats

LEAN = 0.0
"""Log of the e-value above which a version is held back (1: the data lean to a breach)."""
REPORT_CAP = 1e12
"""E-values are reported up to this (decisions use the exact log)."""


def report(log_e: float) -> float:
    return min(math.exp(min(log_e, 700.0)), REPORT_CAP)


@dataclass(frozen=True)
class ObjectiveTests:
    assessments: tuple[VersionAssessment, ...]
    running: dict[str, Any]
    """version|metric -> the mean test's [count, sum, log wealth per bet], carried from look to look."""
    evalues: dict[str, dict[str, float]]
    proven: frozenset[str]
    """Versions whose every proportion-type objective (error rates, slow shares) is shown to be met."""
    beyond: frozenset[str] = frozenset()
    """Versions with a tested objective whose estimate (share, mean) is beyond its limit now."""


def _count(spec: ExperimentSpec, snapshot: Snapshot, objective: Objective, version: str) -> float | None:
    size = spec.metric(objective.metric).sample_size or spec.request_count
    n = value_of(snapshot.get((size, version))) if size else None
    return n if n is not None and n > 0 else None


def _within_log_e(share: float, n: float, upper: float | None, lower: float | None) -> float:
    """Log e-value that a proportion lies within its limits (the other side of `proportion_log_e`)."""
    sides = [proportion_log_e(share, n, None, upper)] if upper is not None else []
    sides += [proportion_log_e(share, n, lower, None)] if lower is not None else []
    return min(sides, default=0.0)


def _log_e(spec: ExperimentSpec, snapshot: Snapshot, objective: Objective, version: str, value: float,
           old: Any, running: dict[str, Any]) -> tuple[float | None, str, float | None, bool]:
    """Log e-values that `version` breaks `objective` and that it meets it, and the test's name.

    None when no test applies; the second is None when the test can only find a breach (means).
    """
    n = _count(spec, snapshot, objective, version)
    if n is None:
        return None, "", None, False
    for test in spec.sequential.quantile_tests:
        if test.objective == objective.metric and objective.upper_limit is not None:
            slow = value_of(snapshot.get((test.slow_count, version)))
            if slow is None:
                return None, "", None, False
            share, p0 = min(max(slow, 0.0), n) / n, 1 - test.quantile  # increase() extrapolates
            above, below = test.slower_than >= objective.upper_limit, test.slower_than <= objective.upper_limit
            breach = proportion_log_e(share, n, p0, None) if above else 0.0
            proof = _within_log_e(share, n, p0, None) if below else -math.inf
            return breach, "slow share", proof, share > p0 and above
    upper, lower = objective.upper_limit, objective.lower_limit
    if 0 <= value <= 1 and all(0 <= x <= 1 for x in (upper, lower) if x is not None):
        beyond = not within(objective, value)
        return proportion_log_e(value, n, upper, lower), "proportion", _within_log_e(value, n, upper, lower), beyond
    limit = objective.upper_limit
    if limit is None or limit <= 0 or objective.lower_limit is not None or value < 0:
        return None, "", None, False
    n0, sum0, *logs = stored_floats(old, 2 + len(BETS))
    if n < n0:  # a counter reset: start the batches again, keep the wealth
        n0, sum0 = 0.0, 0.0
    if n > n0:
        batch = (value * n - sum0) / (n - n0)
        if batch >= 0:
            add_batch_mean(logs, batch, limit)
        n0, sum0 = n, value * n
    running[f"{version}|{objective.metric}"] = [n0, sum0, *logs]
    return bets_log_e(logs), "batch means", None, value > limit


def assess(spec: ExperimentSpec, snapshot: Snapshot, old: Mapping[str, Any]) -> ObjectiveTests:
    log_limit = math.log(max(1, len(spec.objectives)) / spec.sequential.alpha)
    limit_text = f"{math.exp(log_limit):.3g}"
    log_proof = math.log(1 / spec.sequential.alpha)  # an intersection of tests: no Bonferroni (see above)
    out: list[VersionAssessment] = []
    running: dict[str, Any] = {}
    evalues: dict[str, dict[str, float]] = {}
    proven: set[str] = set()
    beyond: set[str] = set()
    for version in spec.version_names:
        safe = True
        met: list[bool] = []
        broken: list[str] = []
        unmet: list[str] = []
        rollback = freeze = False
        for objective in spec.objectives:
            value = value_of(snapshot.get((objective.metric, version)))
            met.append(within(objective, value))
            if value is None:
                unmet.append(f"{objective.metric} has no data yet")
                safe = False
                continue
            log_e, test, within_e, over = _log_e(spec, snapshot, objective, version, value,
                                                 old.get(f"{version}|{objective.metric}"), running)
            if over:
                beyond.add(version)
            got = f"{objective.condition()} (got {value:g}"
            safe = safe and (within_e is None or within_e >= log_proof)
            if log_e is not None:
                evalues.setdefault(version, {})[objective.metric] = report(log_e)
                met[-1] = log_e <= LEAN  # with a test, held back only while the evidence leans to a breach
            if log_e is not None and log_e >= log_limit:
                broken.append(f"{got}, {test} e-value {report(log_e):.3g} >= {limit_text})")
                rollback = rollback or (objective.rollback_on_failure and objective.on_failure == "rollback")
                freeze = freeze or (objective.rollback_on_failure and objective.on_failure == "freeze")
                unmet.append(broken[-1])
            elif not met[-1]:
                why = (f"{test} e-value {report(log_e):.3g} > 1 leans to a breach, not confirmed "
                       f"(< {limit_text})" if log_e is not None
                       else "no test for this metric: holds the version back, never rolls it back")
                unmet.append(f"{got}, {why})")
        out.append(VersionAssessment(version, tuple(met), tuple(broken), rollback, tuple(unmet), freeze))
        if safe:
            proven.add(version)
    return ObjectiveTests(tuple(out), running, evalues, frozenset(proven), frozenset(beyond))
