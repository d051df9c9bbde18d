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
per theta; the e-value mixes them over a fixed grid of log(theta) with fixed prior weights (a
discrete mixture is exactly valid; positive side: "v higher", negative: "u higher"). The grid's running
log-likelihood ratios are the test's state, kept in the evidence from look to look, with the version of
the prior weights (`evalues.PRIOR`): an experiment that started under older weights keeps them.

Exposure (`sequential.exposure`): `time` when the reward load is fixed whatever the weights (the
seed's fortio jobs post feedback at 0.7 and 1/s): equal exposure, r = 1. `requests` when events
follow the traffic a version serves: r is the ratio of new `requestCount`. `requests` on load-fixed
rewards favours the version with less traffic; `time` on traffic-driven rewards favours the one with
more, which only keeps the baseline: `time` is the default (and what Iter8 compares: raw counts).

Count rewards must be declared `kind: events` (the spec refuses anything else without `sampleSize`): a
sum of values tested as events would let the unit decide (cents give 100 times the events of dollars).

Mean rewards (with `sampleSize`; a mean, or a sum of values, `kind: values`): per look, the difference of
the two versions' batch means, in a normal mixture whose scale is the per-sample standard deviation
estimated from the looks' differences (`rollout.stats.batches`): no unit changes it; valid
asymptotically (CLT), not exactly.

Only new information, within looks (`rollout.stats.batches`). Each pair of versions keeps the totals it
last compared at and compares a look only when both versions read new values and the sample grew by at
least one: `increase()` jitter is never replayed, a lower reading is held (never a reset), a missing
one holds the comparison (never 0), and both versions' batches always span the same period, so a drift
they share cancels whatever the weights. Every test's running evidence carries the fingerprint of its
configuration (`rollout.stats.running`): an edit while running restarts it, and unreadable stored
evidence ends the experiment naming the field.

Objectives: `rollout.stats.objective_tests` (error rates and latency quantiles as binomial tests from
counts and histogram buckets, mean latencies as bets on batch means). A version whose test leans to
a breach (e-value > 1) cannot win and keeps floor / e-value**2 (the stronger the evidence, the faster
it backs off; for an error or slow share, the e-value that it is also worse than the baseline when that is
smaller: a shared incident moves no traffic); under half a percent that is 0%, and with no traffic
nothing can clear it: it is kept out (out of play, like a futile one). One whose estimate is beyond a limit gains no
traffic until a winner is decided; a confirmed breach rolls back. A reward winner ends the
experiment only once its error rates and slow shares are shown within their limits; at the
budget's end an unproven winner is not promoted. No rule can cut a bad candidate's traffic for free:
whatever it saves there, it costs a healthy candidate that had an unlucky start (Wald's bound,
`benchmarks/bounds.py`).

Winner, with threshold (n-1)/alpha (Bonferroni over candidates): a candidate that beats the baseline
and every other candidate still in play (not beaten, futile, broken or kept out); or the baseline, if
no candidate is left in play. The decision is final. Futility: from a quarter of the budget on, a
candidate whose comparison with the baseline could not reach the threshold by the last iteration
even at the optimistic end of its interval (`evalues.projected_log_e`) is out of play and gets 0%.

Weights, for the versions in play: with `exposure: time` the reward evidence does not depend on the
split, so it follows the chance of being best: floor + (100 - n*floor) * P(best), P(best) from
normal posteriors (log rate for counts) by numeric integration. With `exposure: requests` the
evidence grows with the smaller version's traffic, so the split stays even until a decision. A
version held back by an objective keeps floor / e-value**2; out of play, 0%; 100% to the winner once
decided; then `cap_candidates` and `round_to_100`: same inputs, same weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from rollout.core.assessment import VersionAssessment
from rollout.core.decision import Decision
from rollout.core.outcomes import Snapshot, value_of
from rollout.core.spec import DeploymentPattern, Direction, ExperimentSpec, Exposure, MetricKind, TestingPattern
from rollout.core.state import ExperimentState
from rollout.core.weights import cap_candidates, round_to_100
from rollout.core.winner import WinnerAssessment, assess_winner
from rollout.stats.batches import PAIR_SIZE, grown, paired_log_e, paired_look
from rollout.stats.evalues import PRIOR, PRIORS, SIGNED, add_look, pair_log_e, probability_best, projected_log_e
from rollout.stats.objective_tests import assess
from rollout.stats.objective_tests import report as _report
from rollout.stats.running import Running, fingerprint

HELD_POWER = 2
"""A version held back by an objective keeps floor / e-value**HELD_POWER percent (see `_weights`)."""
FUTILITY_FROM = 0.25
"""Share of the budget (iterations) before a candidate can be dropped as futile."""


@dataclass
class _Rewards:
    log_e: dict[tuple[str, str], float] = field(default_factory=dict)
    """(v, u) -> log e-value that v's reward is higher than u's."""
    estimate: dict[str, tuple[float, float]] = field(default_factory=dict)
    """version -> (mean, sd) of its reward (log rate for counts, difference to the baseline for means)."""
    samples: dict[str, int] = field(default_factory=dict)
    held: list[str] = field(default_factory=list)
    """Versions whose reward readings are missing this look: their comparisons hold (never read as 0)."""
    kind: str = "counts"


def _reading(snapshot: Snapshot, metric: str | None, version: str) -> float | None:
    return value_of(snapshot.get((metric, version))) if metric else None


def _missing(spec: ExperimentSpec, snapshot: Snapshot, needed: tuple[str | None, ...]) -> list[str]:
    """The versions lacking a reading the reward test needs: their comparisons hold this look (missing is
    never zero; a failed query, or the baseline's empty one, already held the whole iteration)."""
    return [f"no {metric} for {v}: its reward comparisons hold this look" for v in spec.version_names
            for metric in needed if metric and _reading(snapshot, metric, v) is None]


def _reward_print(spec: ExperimentSpec, kind: str, *extra: Any) -> str:
    metric = spec.metric(spec.rewards[0].metric)
    size = spec.metric(metric.sample_size) if metric.sample_size else None
    count = spec.metric(spec.request_count) if spec.request_count and kind == "counts" else None
    return fingerprint("sequential", spec.sequential.alpha, kind, *extra, metric.name, metric.query,
                       metric.jq_expression, metric.kind, size and (size.name, size.query, size.jq_expression),
                       spec.sequential.exposure.value, count and (count.name, count.query, count.jq_expression))


def _counts(spec: ExperimentSpec, snapshot: Snapshot, run: Running, prior: int) -> _Rewards:
    """The count test, one look: each pair of versions on the batches both got in the same looks."""
    names, metric = spec.version_names, spec.rewards[0].metric
    by_time = spec.sequential.exposure is Exposure.TIME
    out = _Rewards(held=_missing(spec, snapshot, (metric, None if by_time else spec.request_count)))
    print_ = _reward_print(spec, "counts", prior)
    totals: dict[str, list[float]] = {}
    fresh: set[str] = set()
    for v in names:
        y, e = _reading(snapshot, metric, v), 0.0 if by_time else _reading(snapshot, spec.request_count, v)
        old = run.take(f"reward|{v}", print_, 2) or run.begin(f"reward|{v}", 2, [y, e])
        if y is not None and e is not None and y >= old[0] and e >= old[1]:
            old = [y, e]  # a drop holds the totals: never a reset, never counted again
            fresh.add(v)
        totals[v] = old
        run.put(f"reward|{v}", print_, old)
    for i, u in enumerate(names):
        for v in names[i + 1:]:
            name = f"reward|{u}|{v}"
            (yu, eu), (yv, ev) = totals[u], totals[v]
            state = run.take(name, print_, 4 + len(SIGNED)) or run.begin(name, 4 + len(SIGNED), [yu, eu, yv, ev])
            dyu, deu, dyv, dev = yu - state[0], eu - state[1], yv - state[2], ev - state[3]
            new = {u, v} <= fresh and dyu >= 0 and dyv >= 0 and grown(0.0, dyu + dyv)
            if new and (by_time or (grown(0.0, deu) and grown(0.0, dev))):
                logs = state[4:]
                add_look(logs, dyu, dyv, 1.0 if by_time else dev / deu)
                state = [yu, eu, yv, ev, *logs]
            run.put(name, print_, state)
            out.log_e[(v, u)], out.log_e[(u, v)] = pair_log_e(state[4:], PRIORS[prior])
    for v in names:
        events, exposure = totals[v]
        out.samples[v] = round(events)
        if by_time or exposure > 0:
            out.estimate[v] = (math.log((events + 0.5) / (exposure or 1.0)), (events + 0.5) ** -0.5)
    return out


def _means(spec: ExperimentSpec, snapshot: Snapshot, run: Running) -> _Rewards:
    """The means test, one look: per-look batch means of each pair, compared within the look (batches)."""
    names, metric = spec.version_names, spec.metric(spec.rewards[0].metric)
    is_sum = metric.kind is MetricKind.VALUES  # the reading is a total, not a mean per sample
    out = _Rewards(held=_missing(spec, snapshot, (metric.name, metric.sample_size)), kind="means")
    print_ = _reward_print(spec, "means")
    totals: dict[str, tuple[float, float] | None] = {}
    for v in names:
        value, n = _reading(snapshot, metric.name, v), _reading(snapshot, metric.sample_size, v)
        totals[v] = None if value is None or n is None else (n, value if is_sum else value * n)
        out.samples[v] = round(n or 0.0)
    base = names[0]
    for i, u in enumerate(names):
        for v in names[i + 1:]:
            name = f"reward|{u}|{v}"
            tu, tv = totals[u], totals[v]
            state = run.take(name, print_, PAIR_SIZE) or run.begin(name, PAIR_SIZE, [*tu, *tv] if tu and tv else [None])
            if tu and tv:
                paired_look(state, tu[0], tu[1], tv[0], tv[1], nonnegative=False)
            run.put(name, print_, state)
            scale = max(abs(state[6] / state[5]), 1.0) if state[5] > 0 else 1.0
            higher, lower, estimate = paired_log_e(state, 1e-12 * scale**2)
            out.log_e[(v, u)], out.log_e[(u, v)] = higher, lower
            if u == base and estimate:
                out.estimate[v] = estimate
                out.estimate.setdefault(base, (0.0, 1e-9 * (abs(estimate[1]) + 1e-300)))
            out.samples[u] = min(out.samples[u], round(state[0]))
            out.samples[v] = min(out.samples[v], round(state[2]))
    return out


def sequential_decision(spec: ExperimentSpec, snapshot: Snapshot, state: ExperimentState) -> Decision:
    settings, names = spec.sequential, spec.version_names
    old: Mapping[str, Any] = state.evidence if state.evidence.get("algorithm") == "sequential" else {}
    run = Running(state.evidence, state.iteration)
    tests = assess(spec, snapshot, run)
    assessments = tests.assessments
    by_reward = bool(spec.rewards) and spec.testing_pattern in (TestingPattern.AB, TestingPattern.ABN)
    rewards = _Rewards()
    if by_reward:
        rewards = (_means(spec, snapshot, run) if spec.metric(spec.rewards[0].metric).sample_size
                   else _counts(spec, snapshot, run, PRIOR))
    low = by_reward and spec.rewards[0].preferred_direction is Direction.LOW
    better = {(v, u): rewards.log_e[(u, v) if low else (v, u)] for v, u in rewards.log_e}
    sign = -1.0 if low else 1.0
    log_thr = math.log(max(1, len(names) - 1) / settings.alpha)
    broken = {a.version for a in assessments if a.broken}
    beaten = {u for (v, u), log_e in better.items() if log_e >= log_thr}
    futile = _futile(spec, state, rewards, sign, log_thr) - beaten if by_reward else set()
    feasible = {a.version for a in assessments if a.feasible} - broken
    harm = tests.harm
    floor = Fraction(settings.exploration_floor)
    kept_out = {v for v in names[1:] if v not in feasible | broken | beaten | futile
                and _held(floor, harm.get(v, 1.0)) < Fraction(1, 2)} if by_reward else set()
    out = beaten | broken | futile | kept_out
    decided = old.get("decided") if old.get("decided") in names else None
    if any(name.startswith("reward") for name in run.restarted):
        decided = None  # a verdict of another reward test (metric, query, alpha) does not carry over
    if decided is None and by_reward:
        decided = _winner(spec, better, log_thr, out, feasible, rewards.samples)
    if decided and (decided not in feasible or decided in tests.unjudged):  # the verdict stands; it must be well
        suspect, decided = decided, None
    else:
        suspect = None
    if by_reward:
        why = _why(spec, decided, better, log_thr, rewards, assessments, out, kept_out)
        if suspect:
            unmet = next((a.unmet for a in assessments if a.version == suspect and a.unmet),
                         (tests.unjudged.get(suspect, ""),))
            why = f"{suspect} won on the reward but is held back: {unmet[0]}"
        winner = WinnerAssessment((decided,) if decided else (), decided, why)
    else:
        winner = assess_winner(spec, assessments, snapshot)
    in_play = {v for v in names if v not in out} | {names[0]}
    chances = probability_best({v: (sign * m, s) for v, (m, s) in rewards.estimate.items()
                                if v in feasible and v in in_play} if by_reward else
                               {v: (0.0, 1.0) for v in (winner.best_versions or names[:1])})
    weights = _weights(spec, state, chances, decided or (None if by_reward else winner.winner),
                       in_play if by_reward else set(names), feasible, harm, tests.beyond)
    base = names[0]
    evidence: dict[str, Any] = {
        "algorithm": "sequential", "alpha": settings.alpha, "threshold": math.exp(log_thr),
        "rewardTest": "none" if not by_reward else rewards.kind,
        "exposure": settings.exposure.value,
        "eValue": {v: _report(better.get((v, base), 0.0)) for v in names[1:]},
        "eValueBaseline": {v: _report(better.get((base, v), 0.0)) for v in names[1:]},
        "probabilityBest": {v: chances.get(v, 0.0) for v in names},
        "samples": {v: rewards.samples.get(v, 0) for v in names},
        "objectiveEValue": tests.evalues,
        **({"objectiveDispersion": tests.dispersion} if tests.dispersion else {}),
        "running": run.stored(),
    }
    if run.restarted:
        evidence["restarted"] = run.restarted  # the engine records them in the history
    if futile:
        evidence["futile"] = sorted(futile)
    if kept_out:
        evidence["keptOut"] = sorted(kept_out)
    if by_reward and set(names) - in_play:
        evidence["outOfPlay"] = sorted(set(names) - in_play)
    if decided or suspect:
        evidence["decided"] = decided or suspect
    if rewards.held:
        evidence["held"] = rewards.held
    if decided and decided not in tests.proven:
        evidence["awaitingProof"] = decided  # the winner's objectives are not yet shown within limits
        if state.iteration + 1 >= spec.total_iterations and decided != names[0]:
            winner = WinnerAssessment((), None, f"{decided} won on the reward, but the budget ended before "
                                                 "its error rates were shown within their limits")
    return Decision(assessments, winner, weights, evidence, final=decided is not None and decided in tests.proven)


def _futile(spec: ExperimentSpec, state: ExperimentState, rewards: _Rewards, sign: float,
            log_thr: float) -> set[str]:
    """Candidates that could not beat the baseline by the last iteration (see `projected_log_e`)."""
    looks, budget = state.iteration + 1, spec.total_iterations
    base = spec.baseline.name
    if looks < max(2, FUTILITY_FROM * budget) or base not in rewards.estimate:
        return set()
    out = set()
    mb, sb = rewards.estimate[base]
    for v in spec.version_names[1:]:
        if v in rewards.estimate:
            mv, sv = rewards.estimate[v]
            z = sign * (mv - mb) / math.sqrt(sv**2 + sb**2)
            if projected_log_e(z, budget / looks) < log_thr:
                out.add(v)
    return out


def _winner(spec: ExperimentSpec, better: Mapping[tuple[str, str], float], log_thr: float, out: set[str],
            feasible: set[str], samples: Mapping[str, int]) -> str | None:
    names, base = spec.version_names, spec.baseline.name
    if all(v in out for v in names[1:]) and base in feasible:
        return base  # no candidate left in play: keep the baseline
    if any(samples.get(v, 0) < spec.sequential.min_samples for v in names if v not in out):
        return None
    for v in names:
        if v not in feasible or v in out:
            continue
        rivals = [u for u in names if u != v and (u == base or u not in out)]
        if all(better.get((v, u), 0.0) >= log_thr for u in rivals):
            return v
    return None


def _why(spec: ExperimentSpec, winner: str | None, better: Mapping[tuple[str, str], float], log_thr: float,
         rewards: _Rewards, assessments: tuple[VersionAssessment, ...], out: set[str],
         kept_out: AbstractSet[str] = frozenset()) -> str:
    threshold = f"{math.exp(log_thr):.3g}"
    if winner:
        if winner == spec.baseline.name and all(v in out for v in spec.version_names[1:]):
            held = [f"{a.version} kept out: {a.unmet[0]}, and at 0% it gets no traffic to clear it"
                    for a in assessments if a.version in kept_out and a.unmet]
            return (f"{winner} kept: no candidate can still win (beaten, broken, futile or kept out)"
                    + "".join(f"; {h}" for h in held))
        return f"{winner} is best with evidence above {threshold}"
    if not better:
        return "no evidence yet"
    (v, u), log_e = max(better.items(), key=lambda item: (item[1], item[0]))
    if log_e < log_thr:
        held = [f"{a.version} held back: {a.unmet[0]}" for a in assessments[1:] if a.unmet and a.version not in out]
        return (f"no winner yet: strongest evidence {v} over {u} is {_report(log_e):.3g} < {threshold}"
                + "".join(f"; {h}" for h in held[:1]))
    lead = f"no winner yet: evidence {v} over {u} is {_report(log_e):.3g} >= {threshold}, but "
    unmet = next((a.unmet for a in assessments if a.version == v and a.unmet), ())
    if unmet:
        return lead + f"{v} does not meet its objectives ({unmet[0]})"
    short = [w for w in spec.version_names if w not in out and rewards.samples.get(w, 0) < spec.sequential.min_samples]
    if short:
        return lead + f"{', '.join(short)} below minSamples {spec.sequential.min_samples}"
    return lead + f"{v} has not yet beaten every other version in play"


def _held(floor: Fraction, e_value: float) -> Fraction:
    """The share of a version held back by an objective whose test's e-value is `e_value`.

    With no evidence against it (no data yet, or an objective with no test) at least 1%, even with
    explorationFloor 0: at 0% it could never be assessed.
    """
    if e_value <= 1:
        return max(floor, Fraction(1))
    return floor / Fraction(e_value) ** HELD_POWER


def _weights(spec: ExperimentSpec, state: ExperimentState, chances: Mapping[str, float],
             winner: str | None, in_play: set[str], feasible: set[str], harm: Mapping[str, float],
             beyond: frozenset[str] = frozenset()) -> dict[str, int]:
    """Worked example: two versions, exposure time, floor 5, P(best) 0.8 for the candidate, old
    100/0, caps 100 and 10: target = 5 + 90*0.2 = 23 / 5 + 90*0.8 = 77; the candidate may rise by
    10: 90/10. With exposure requests the target is 50/50 (both in play): 90/10 as well, then 80/20
    ... up to 50/50 until a decision. A futile candidate's target is 0: 100/0. A candidate held back
    by an objective whose test's e-value is 1.5 gets floor / 1.5**2 = 2.2, rounded: 98/2; at an
    e-value of 3.2 or more that is under 0.5: 0%, and with no traffic it stays there (kept out) until
    the budget ends or an operator promotes it. A candidate whose estimate (error share, slow share,
    mean latency) is beyond its limit does not gain: from 70/30 it stays at 70/30 (or the floor if it
    had less), whatever the target, until a winner is decided (a reward winner takes the traffic that
    shows it within its limits); the test decides whether it also backs off."""
    names = spec.version_names
    if spec.deployment_pattern is DeploymentPattern.FIXED_SPLIT:
        return {name: int(state.weights.get(name, 0)) for name in names}
    if winner or spec.deployment_pattern is DeploymentPattern.BLUE_GREEN:
        target = [Fraction(100 if name == (winner or names[0]) else 0) for name in names]
    else:
        playing = [n for n in names if n in in_play]
        floor = min(Fraction(spec.sequential.exploration_floor), Fraction(100, len(playing)))
        held = {n: _held(floor, harm.get(n, 1.0)) for n in playing[1:] if n not in feasible}
        free = [n for n in playing if n not in held]
        if spec.sequential.exposure is Exposure.REQUESTS:
            raw = [Fraction(1 if n in feasible else 0) for n in free]
        else:
            raw = [Fraction(chances.get(n, 0.0)) for n in free]
        if not any(raw):
            raw[0] = Fraction(1)
        total, rest = sum(raw), 100 - sum(held.values()) - len(free) * floor
        share = {**held, **{n: floor + rest * p / total for n, p in zip(free, raw, strict=True)}}
        target = [share.get(n, Fraction(0)) for n in names]
        for i, n in enumerate(names):  # no gain while an estimate is beyond its limit
            if i and n in beyond:
                keep = min(target[i], max(Fraction(spec.sequential.exploration_floor),
                                          Fraction(state.weights.get(n, 0))))
                target[0] += target[i] - keep
                target[i] = keep
    return round_to_100(names, cap_candidates(spec, state.weights, target))
