"""Objectives under the `sequential` algorithm: each limit is broken only on anytime-valid evidence.

Three tests, picked by what the metric is (first that applies):
- **Quantile from histogram buckets** (`sequential.quantileTests`): "p-th quantile <= limit" means at
  most a share 1 - p of requests is slower than the limit. The slow-count metric counts requests
  slower than a bucket bound b (`slowerThan`), which the spec's checks hold to the limit itself, so
  the proportion test below on that share against 1 - p finds a breach and shows "within", both at the
  limit (per look, tolerant of bursts of slow requests, a candidate judged against the baseline).
  Should b differ all the same, each side is used only where it stays valid: the share above b >= limit
  is no more than the share above the limit (a breach of it is a breach), the share above b <= limit no
  less (within for it is within); a proof from a bound above the limit would show a p95 of 4200 ms
  "within" 3000 ms.
- **Proportion** (a metric with `sampleSize`, `kind: share` or undeclared with limits in [0, 1], like
  `error-rate`): the same binomial mixture on the counts of the looks whose sample grew by one, its log
  likelihood ratio divided by the looks' overdispersion (`dispersion`: errors in bursts spread the
  looks' shares; no evidence before 3 such looks), the proof's by `sequential.burstSize` at least
  (few or no errors show no spread: bursts the data cannot show are the user's stated assumption).
  A candidate's breach also needs its share to be worse than the baseline's in the same looks
  (`batches.paired_log_e`): an incident every version suffers rolls none back. The absolute limit
  stays the objective: its own test holds the candidate back (no gain, no win) as soon as it leans
  to a breach, and before it can judge (its first looks) a version beyond the limit is not decided
  the winner (`unjudged`).
- **Mean of a nonnegative quantity** (a metric with `sampleSize` and an upper limit, like
  `mean-latency` = sum / count): bets on each look's batch mean, from the cumulative sum and count, a
  look counting only when its count grew by one and its sum did not drop.
A reading a test needs that is missing (the value, its sample size, a slow count) holds the test for the
look; a version is shown within its limits only with its sample size in hand.
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
from dataclasses import dataclass, field
from typing import Any

from rollout.core.assessment import VersionAssessment, within, within_limits
from rollout.core.outcomes import Snapshot, value_of
from rollout.core.spec import ExperimentSpec, MetricKind, Objective
from rollout.stats.batches import PAIR_SIZE, grown, paired_log_e, paired_look, pooled_share
from rollout.stats.evalues import BETS, add_batch_mean, bets_log_e, proportion_log_e
from rollout.stats.running import Running, fingerprint

LEAN = 0.0
"""Log of the e-value above which a version is held back (1: the data lean to a breach)."""
MIN_LOOKS = 3
"""Looks with new requests a share's test needs before any evidence (to tell bursts from a breach)."""
SHARE_SIZE = 6
PAIRED = ("proportion", "slow share")
"""Tests whose breach by a candidate must also be worse than the baseline's in the same looks."""
REPORT_CAP = 1e12
"""E-values are reported up to this (decisions use the exact log)."""


def report(log_e: float) -> float:
    return min(math.exp(min(log_e, 700.0)), REPORT_CAP)


@dataclass(frozen=True)
class ObjectiveTests:
    assessments: tuple[VersionAssessment, ...]
    evalues: dict[str, dict[str, float]]
    proven: frozenset[str]
    """Versions whose every proportion-type objective (error rates, slow shares) is shown to be met."""
    beyond: frozenset[str] = frozenset()
    """Versions with a tested objective whose estimate (share, mean) is beyond its limit now."""
    harm: Mapping[str, float] = field(default_factory=dict)
    """Per version, the largest e-value of harm done by its objectives: its own test's, or for a candidate
    the smaller of its own and its test against the baseline (paired tests). A held-back version keeps
    floor / harm**2 of the traffic: moving a candidate's traffic to a baseline that suffers the same (a shared
    incident) protects no one, and would keep the candidate out for good (no traffic, no new data)."""
    dispersion: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """Per version and share objective, the looks' measured overdispersion when over 1: errors (or slow
    requests) come in bursts of about this many, the number sequential.burstSize should be at least."""
    unjudged: Mapping[str, str] = field(default_factory=dict)
    """Versions beyond a limit whose test cannot judge yet (a share's first looks), with why: none is
    decided the winner on such a look (it would take the traffic before any test could hold it back)."""


@dataclass(frozen=True)
class _Result:
    log_e: float | None = None
    """Log e-value of a breach; None: no test applies (or none could run yet)."""
    test: str = ""
    proof: float | None = None
    """Log e-value that the objective is met; None when the test cannot show it (means)."""
    beyond: bool = False
    note: str = ""
    """Why there is no e-value yet, when a test applies but cannot judge."""


HELD = _Result(None, "", -math.inf)
"""A test that could not run this look for lack of a reading: no evidence, and nothing shown."""


def _size(spec: ExperimentSpec, objective: Objective) -> str | None:
    return spec.metric(objective.metric).sample_size or spec.request_count


def _count(spec: ExperimentSpec, snapshot: Snapshot, objective: Objective, version: str) -> float | None:
    size = _size(spec, objective)
    n = value_of(snapshot.get((size, version))) if size else None
    return n if n is not None and n > 0 else None


def _within_log_e(share: float, n: float, upper: float | None, lower: float | None) -> float:
    """Log e-value that a proportion lies within its limits (the other side of `proportion_log_e`)."""
    sides = [proportion_log_e(share, n, None, upper)] if upper is not None else []
    sides += [proportion_log_e(share, n, lower, None)] if lower is not None else []
    return min(sides, default=0.0)


def _print(spec: ExperimentSpec, objective: Objective, test: str) -> str:
    """What a test's running evidence depends on: a change of any of it starts the test again."""
    metric = spec.metric(objective.metric)
    size_name = _size(spec, objective)
    size = spec.metric(size_name) if size_name else None
    return fingerprint("sequential", spec.sequential.alpha, test, metric.name, metric.query, metric.jq_expression,
                       metric.kind, size and (size.name, size.query, size.jq_expression),
                       objective.upper_limit, objective.lower_limit)


def is_share(spec: ExperimentSpec, objective: Objective) -> bool:
    """A share of samples (errors per request): declared `kind: share`, or undeclared with limits in [0, 1]."""
    kind = spec.metric(objective.metric).kind
    if kind is not None:
        return kind is MetricKind.SHARE
    return all(0 <= x <= 1 for x in (objective.upper_limit, objective.lower_limit) if x is not None)


@dataclass
class _Shares:
    """The share tests' states this look, by (metric, version), and each one's new batch (None: none)."""

    base: str
    states: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    batches: dict[tuple[str, str], tuple[float, float] | None] = field(default_factory=dict)


def _with_batch(state: list[float], n: float, total: float, dn: float, dt: float) -> list[float]:
    """`state` (a share test's six numbers) with one more look's batch of dn requests and dt errors."""
    return [n, total, state[2] + 1, state[3] + dn, state[4] + dt, state[5] + dt * dt / dn]


def _share_look(run: Running, name: str, print_: str, n: float | None,
                value: float | None) -> tuple[list[float], tuple[float, float] | None]:
    """A share's running per-look batches: [n, errors last used, looks, sum n, sum errors, sum n x^2], and
    this look's batch (requests, errors) when the sample grew."""
    now = [n, value * n] if n is not None and value is not None else [None]
    state = run.take(name, print_, SHARE_SIZE) or run.begin(name, SHARE_SIZE, now)
    batch = None
    if n is not None and value is not None:
        total = value * n
        dn, dt = n - state[0], max(total - state[1], 0.0)
        if grown(state[0], n):
            # a lower count (increase()'s extrapolation of a count that stopped growing) is no error this look
            # and keeps the higher total: never rebased, never replayed, and the look still counts (a look
            # that waited for the count to pass its old high would never come once errors stop)
            state = _with_batch(state, n, max(total, state[1]), dn, dt)
            batch = (dn, dt)
    run.put(name, print_, state)
    return state, batch


def _clean_look(run: Running, name: str, print_: str, own: tuple[float, float] | None,
                base: tuple[float, float] | None, upper: float | None, lower: float | None) -> list[float]:
    """A candidate's batches outside the looks in which the baseline's own share was beyond the limit (a
    shared incident), laid out as `_share_look`'s (the first two unused): what its proof "within" uses.

    Which looks are left out depends on the baseline's data alone, so the proof stays valid on the rest; it
    then says "within the limit, but for incidents the baseline suffered in the same looks". A look without
    a baseline batch (the baseline at 0% once a winner takes the traffic) is kept: nothing shows it shared.
    """
    state = run.take(name, print_, SHARE_SIZE) or run.begin(name, SHARE_SIZE, [])
    if own is not None:
        dn, dt = own
        shared = base is not None and base[0] > 0 and not within_limits(base[1] / base[0], upper, lower)
        if not shared:
            state = _with_batch(state, 0.0, 0.0, dn, dt)
    run.put(name, print_, state)
    return state


def _share_test(spec: ExperimentSpec, objective: Objective, version: str, n: float | None, value: float | None,
                run: Running, name: str, print_: str, shares: _Shares, test: str = "proportion",
                upper: float | None = None, lower: float | None = None, prove: bool = True) -> _Result:
    """One version's share test this look (`value` the share now, None: missing), its states kept in `shares`;
    the limits are the objective's unless given."""
    if upper is None and lower is None:
        upper, lower = objective.upper_limit, objective.lower_limit
    key = (objective.metric, version)
    state, batch = _share_look(run, name, print_, n, value)
    shares.states[key], shares.batches[key] = state, batch
    clean = None
    if version != shares.base:
        clean = _clean_look(run, f"{name}|outside shared incidents", f"{print_} clean", batch,
                            shares.batches.get((objective.metric, shares.base)), upper, lower)
    if n is None or value is None:
        return HELD
    return _share(state, value, spec.sequential.burst_size, test, upper, lower, prove, clean)


def dispersion(state: list[float]) -> float | None:
    """How much more the per-look shares spread than independent requests would (>= 1), from >= 3 looks.

    Errors in bursts (correlated requests) spread the looks' shares more than a binomial would; the
    binomial test's log likelihood ratios are divided by this (quasi-likelihood), so a burst counts as
    about one event. None before MIN_LOOKS looks: no test can tell bursts from a breach with fewer.
    """
    k, n, t, sq = state[2:6]
    if k < MIN_LOOKS or n <= 0:
        return None
    share = t / n
    if share <= 0 or share >= 1:
        return 1.0
    spread = max(sq - t * t / n, 0.0) / (k - 1)
    return max(1.0, spread / (share * (1 - share)))


def _share(state: list[float], value: float, burst: int, test: str, upper: float | None, lower: float | None,
           prove: bool = True, clean: list[float] | None = None) -> _Result:
    """The proportion test on a version's own batches, against the limits, tolerant of bursts; `value` is
    the share now (whether the estimate is beyond a limit).

    The breach divides the log likelihood ratio by the looks' measured overdispersion; the proof by that or
    `burst` (sequential.burstSize), whichever is larger: with few or no errors the looks show no spread, and
    a candidate failing 3% of its requests in bursts of 20 shows none in 1000 requests one time in five.
    A candidate's proof uses its `clean` batches (`_clean_look`): a shared incident's look would spread its
    shares for the rest of the experiment and keep any proof out of reach.
    """
    phi = dispersion(state)
    beyond = not within_limits(value, upper, lower)
    if phi is None:
        return _Result(0.0, test, -math.inf, beyond,
                       f"not confirmed: the {test} test needs {MIN_LOOKS} looks with new requests "
                       "(one look cannot tell a burst from a breach)")
    share, n = state[4] / state[3], state[3]
    proof = -math.inf
    proving = state if clean is None else clean
    phi_proof = dispersion(proving)
    if prove and phi_proof is not None:
        proof = _within_log_e(proving[4] / proving[3], proving[3], upper, lower) / max(phi_proof, burst)
    return _Result(proportion_log_e(share, n, upper, lower) / phi, test, proof, beyond)


def _worse_than_baseline(objective: Objective, base: list[float], own: list[float], run: Running, name: str,
                         print_: str) -> float:
    """Log e-value that the candidate's share is worse than the baseline's, compared within looks."""
    state = run.take(name, print_, PAIR_SIZE) or run.begin(name, PAIR_SIZE, [*base[:2], *own[:2]])
    if base[0] > 0 and own[0] > 0:
        paired_look(state, base[0], base[1], own[0], own[1], nonnegative=True)
    run.put(name, print_, state)
    p = pooled_share(state)
    higher, lower, _ = paired_log_e(state, p * (1 - p))
    sides = ([higher] if objective.upper_limit is not None else []) + ([lower] if objective.lower_limit is not None
                                                                       else [])
    return max(sides, default=0.0)


def _mean(objective: Objective, value: float, n: float | None, run: Running, name: str, print_: str) -> _Result:
    """Bets on each look's batch mean (latency) against the upper limit; a look adds one bet only when
    its sample size grew by MIN_GROWTH and its sum did not drop."""
    limit = objective.upper_limit
    if limit is None or limit <= 0 or objective.lower_limit is not None or value < 0:
        return _Result()
    now = [n, value * n] if n is not None else [None]
    state = run.take(name, print_, 2 + len(BETS)) or run.begin(name, 2 + len(BETS), now)
    n0, sum0, *logs = state
    if n is not None and grown(n0, n) and value * n >= sum0:
        add_batch_mean(logs, (value * n - sum0) / (n - n0), limit)
        n0, sum0 = n, value * n
    run.put(name, print_, [n0, sum0, *logs])
    return _Result(bets_log_e(logs), "batch means", None, value > limit)


def _quantile(spec: ExperimentSpec, snapshot: Snapshot, objective: Objective, version: str, n: float, run: Running,
              name: str, shares: _Shares) -> _Result | None:
    """The share of requests slower than the test's bound, per look like an error rate (bursts of slow
    requests, a latency incident every version suffers), against 1 - quantile."""
    for test in spec.sequential.quantile_tests:
        if test.objective == objective.metric and objective.upper_limit is not None:
            slow = value_of(snapshot.get((test.slow_count, version)))
            share = None if slow is None else min(max(slow, 0.0), n) / n  # increase() extrapolates
            slow_metric = spec.metric(test.slow_count)
            print_ = _print(spec, objective, f"slow share {test.quantile} {test.slower_than} {slow_metric.query} "
                                             f"{slow_metric.jq_expression}")
            above, below = test.slower_than >= objective.upper_limit, test.slower_than <= objective.upper_limit
            result = _share_test(spec, objective, version, None if share is None else n, share, run, name, print_,
                                 shares, "slow share", 1 - test.quantile, None, prove=below)
            return result if above or result is HELD else _Result(0.0, result.test, result.proof, False, result.note)
    return None


def assess(spec: ExperimentSpec, snapshot: Snapshot, run: Running | Mapping[str, Any]) -> ObjectiveTests:
    """Every version's objectives on this look; `run` is the running evidence (a stored evidence mapping is read)."""
    run = run if isinstance(run, Running) else Running(run)
    log_limit = math.log(max(1, len(spec.objectives)) / spec.sequential.alpha)
    limit_text = f"{math.exp(log_limit):.3g}"
    log_proof = math.log(1 / spec.sequential.alpha)  # an intersection of tests: no Bonferroni (see above)
    out: list[VersionAssessment] = []
    evalues: dict[str, dict[str, float]] = {}
    proven: set[str] = set()
    beyond: set[str] = set()
    unjudged: dict[str, str] = {}
    harm: dict[str, float] = {}
    spread: dict[str, dict[str, float]] = {}
    base = spec.version_names[0]
    shares = _Shares(base)
    for version in spec.version_names:
        safe = True
        met: list[bool] = []
        broken: list[str] = []
        unmet: list[str] = []
        rollback = freeze = False
        for objective in spec.objectives:
            value = value_of(snapshot.get((objective.metric, version)))
            met.append(within(objective, value))
            result = _test(spec, snapshot, objective, version, value, run, shares)
            if value is None:
                unmet.append(f"{objective.metric} has no data yet")
                safe = False
                continue
            if result.beyond:
                beyond.add(version)
            got = f"{objective.condition()} (got {value:g}"
            safe = safe and (result.proof is None or result.proof >= log_proof)
            log_e = breach = result.log_e
            paired = version != base and result.test in PAIRED and (objective.metric, base) in shares.states
            if log_e is not None and paired:
                # judged against what the baseline suffered: a shared incident is no breach of the candidate's
                worse = _worse_than_baseline(objective, shares.states[(objective.metric, base)],
                                             shares.states[(objective.metric, version)], run,
                                             f"objective|{base}|{version}|{objective.metric}|baseline",
                                             _print(spec, objective, "share difference"))
                breach = min(log_e, worse)
            if log_e is not None:
                evalues.setdefault(version, {})[objective.metric] = report(log_e)
                harm[version] = max(harm.get(version, 1.0), report(log_e if breach is None else breach))
                met[-1] = log_e <= LEAN  # with a test, held back only while the evidence leans to a breach
                if result.note and result.beyond:
                    unjudged.setdefault(version, f"{got}, {result.note})")
            if log_e is not None and breach is not None and breach >= log_limit:
                broken.append(f"{got}, {result.test} e-value {report(breach):.3g} >= {limit_text})")
                rollback = rollback or (objective.rollback_on_failure and objective.on_failure == "rollback")
                freeze = freeze or (objective.rollback_on_failure and objective.on_failure == "freeze")
                unmet.append(broken[-1])
            elif not met[-1]:
                why = (f"{result.test} e-value {report(log_e):.3g} > 1 leans to a breach, not confirmed "
                       f"(< {limit_text})" if log_e is not None
                       else result.note or "no test for this metric: holds the version back, never rolls it back")
                unmet.append(f"{got}, {why})")
        out.append(VersionAssessment(version, tuple(met), tuple(broken), rollback, tuple(unmet), freeze))
        if safe:
            proven.add(version)
    for (metric, version), state in shares.states.items():
        phi = dispersion(state)
        if phi is not None and phi > 1:
            spread.setdefault(version, {})[metric] = round(phi, 1)
    return ObjectiveTests(tuple(out), evalues, frozenset(proven), frozenset(beyond), harm, spread, unjudged)


def _test(spec: ExperimentSpec, snapshot: Snapshot, objective: Objective, version: str, value: float | None,
          run: Running, shares: _Shares) -> _Result:
    """One objective's test for one version this look (its running evidence kept in `run` either way).

    A reading the test needs that is missing (the value, or the sample size when the metric has one)
    holds the test: no evidence is added and nothing is shown (missing is never zero).
    """
    name, size = f"objective|{version}|{objective.metric}", _size(spec, objective)
    n = _count(spec, snapshot, objective, version)
    n_missing = size is not None and value_of(snapshot.get((size, version))) is None
    quantile_tested = any(t.objective == objective.metric for t in spec.sequential.quantile_tests)
    if size and is_share(spec, objective) and not quantile_tested:
        return _share_test(spec, objective, version, None if n_missing else n,
                           value if value is not None and 0 <= value <= 1 else None, run, name,
                           _print(spec, objective, "share"), shares)
    if value is None or n_missing:
        if value is not None and not quantile_tested:
            _mean(objective, value, None, run, name, _print(spec, objective, "mean"))  # carried, not advanced
        return HELD
    if n is None:
        return _Result()
    quantile = _quantile(spec, snapshot, objective, version, n, run, name, shares)
    if quantile is not None:
        return quantile
    return _mean(objective, value, n, run, name, _print(spec, objective, "mean"))
