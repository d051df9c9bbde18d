"""The pure core: (experiment spec, metric snapshot, previous state, now) -> next state.

No I/O and no clock here: the provider passes `now`. Every path returns a state ("hold" is a
state too), so the function is total.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rollout.core.audit import audit, decision_inputs, unmet
from rollout.core.control import Control, apply_control
from rollout.core.decision import Decision, iter8_v2
from rollout.core.outcomes import Failed, NoData, Observed, Snapshot
from rollout.core.spec import Algorithm, ExperimentSpec
from rollout.core.state import COMPLETED, FAILED, PAUSED, RUNNING, ExperimentState, StateError
from rollout.core.templating import elapsed_seconds
from rollout.core.text import weight_split
from rollout.core.weights import baseline_only

Algorithm_ = Callable[[ExperimentSpec, Snapshot, ExperimentState], Decision]


def _algorithm(spec: ExperimentSpec) -> Algorithm_:
    if spec.algorithm is Algorithm.SEQUENTIAL:
        from rollout.stats.sequential import sequential_decision

        return sequential_decision
    return iter8_v2


def start(spec: ExperimentSpec, now: float) -> ExperimentState:
    """A new experiment: 100% baseline, no iteration yet."""
    return ExperimentState(stage=RUNNING, started_at=now, last_iteration_at=now,
                           weights=baseline_only(spec),
                           messages=(f"Started; first iteration after {spec.interval_seconds}s",))


def abandon(spec: ExperimentSpec, problem: str, now: float) -> ExperimentState:
    """The state that replaces an unreadable stored one: Failed, 100% baseline, saying why.

    Nothing of the old state can be trusted, so the experiment ends as a rollback would; replacing the
    resource (`pulumi up --replace <urn>`) starts a new one.
    """
    weights = baseline_only(spec)
    message = (f"Failed: {problem}; all traffic back to {spec.baseline.name}. "
               "Replace the Experiment resource (pulumi up --replace) to start a new experiment")
    entry = {"time": now, "iteration": 0, "held": True, "weights": weights, "winner": None, "reason": message}
    return ExperimentState(stage=FAILED, started_at=now, last_iteration_at=now, weights=weights,
                           history=(entry,), messages=(message,))


def is_due(spec: ExperimentSpec, state: ExperimentState, now: float) -> bool:
    """An iteration runs when the experiment is running and the interval has passed."""
    return state.stage == RUNNING and now >= state.last_iteration_at + spec.interval_seconds


def advance(spec: ExperimentSpec, state: ExperimentState, control: Control | None, now: float,
            snapshot_at: Callable[[ExperimentState], Snapshot]) -> ExperimentState:
    """What one `pulumi up` does to a running experiment's state: the control first (also inside the
    interval), then one iteration when it is due, on the snapshot `snapshot_at` reads (only then).

    The provider's `update` and the dry run both run this, so the dry run cannot disagree with an `up`
    at the same moment on the same data.
    """
    state = apply_control(spec, state, control, now)
    if is_due(spec, state, now):
        state = iterate(spec, snapshot_at(state), state, now)
    return state


def read_metrics(spec: ExperimentSpec) -> tuple[str, ...]:
    """The metrics a decision reads: the rewards and objectives, and under `sequential` also what its tests
    read beside them (sample sizes, `requestCount`, slow counts), each once, in a stable order."""
    names = list(spec.decision_metrics())
    if spec.algorithm is Algorithm.SEQUENTIAL:
        known = {m.name: m for m in spec.metrics}
        extra = [known[n].sample_size for n in names if n in known] + [spec.request_count]
        extra += [t.slow_count for t in spec.sequential.quantile_tests]
        names += [n for n in dict.fromkeys(extra) if n and n not in names]
    return tuple(names)


def data_problems(spec: ExperimentSpec, snapshot: Snapshot) -> list[str]:
    """Why the snapshot cannot carry a decision (empty when it can).

    A failed query for a metric the decision reads, or a baseline with no value for one: the baseline
    always has traffic, so its missing data means the data path is broken, not that the version is bad.
    A candidate with no data is normal (0% traffic): its tests hold for the look (never read as zero)
    and it does not meet its objectives.
    """
    problems = []
    for metric in read_metrics(spec):
        for version in spec.version_names:
            outcome = snapshot.get((metric, version))
            if outcome is None:
                problems.append(f"{metric} for {version}: not queried")
            elif isinstance(outcome, Failed):
                problems.append(f"{metric} for {version}: query failed: {outcome.reason}")
            elif isinstance(outcome, NoData) and version == spec.baseline.name:
                problems.append(f"{metric} for baseline {version}: no data ({outcome.reason})")
    return problems


def _values(spec: ExperimentSpec, snapshot: Snapshot) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for metric in spec.metrics:
        per_version: dict[str, dict[str, Any]] = {}
        for version in spec.version_names:
            outcome = snapshot.get((metric.name, version))
            if outcome is None:
                continue
            if isinstance(outcome, Observed):
                entry: dict[str, Any] = {"value": outcome.value, "status": "ok"}
            else:
                entry = {"value": None, "status": "no data" if isinstance(outcome, NoData) else "failed",
                         "detail": outcome.reason}
            per_version[version] = {**entry, "units": metric.units}
        if per_version:
            out[metric.name] = per_version
    return out


def _assessment_map(spec: ExperimentSpec, decision: Decision) -> dict[str, dict[str, bool]]:
    conditions = [o.condition() for o in spec.objectives]
    return {a.version: dict(zip(conditions, a.met, strict=True)) for a in decision.assessments}


def _record(state: ExperimentState, spec: ExperimentSpec, snapshot: Snapshot, now: float,
            **fields: Any) -> tuple[dict[str, Any], ...]:
    """The history with this iteration's entry: the values the decision read with their queries, and
    the weights written.

    `weights` is what this iteration's outputs send to the VirtualService (after a promotion or a
    rollback, not the split the algorithm proposed); no algorithm evidence (it lives in `evidence`).
    """
    inputs = decision_inputs(spec)
    values = {m: {v: e["value"] for v, e in per.items()} for m, per in fields.pop("values").items() if m in inputs}
    entry = {"time": now, **fields, "values": values,
             **audit(spec, snapshot, elapsed_seconds(state.started_at, now))}
    return ((*state.history, entry))[-spec.history_limit:]


def iterate(spec: ExperimentSpec, snapshot: Snapshot, state: ExperimentState, now: float) -> ExperimentState:
    """Run one iteration on `snapshot`; returns the next state (unchanged unless Running)."""
    if state.stage != RUNNING:
        return state
    values = _values(spec, snapshot)
    problems = data_problems(spec, snapshot)
    if problems:
        return _hold(spec, snapshot, state, now, values, problems)
    try:
        decision = _algorithm(spec)(spec, snapshot, state)
    except StateError as err:  # stored evidence that cannot be read: nothing decided on it can be trusted
        return _unreadable(spec, snapshot, state, now, values, err)
    assessments = _assessment_map(spec, decision)
    restarted = {"restarted": decision.evidence["restarted"]} if decision.evidence.get("restarted") else {}
    base = dict(values=values, assessments=assessments, evidence=decision.evidence,
                consecutive_errors=0, last_iteration_at=now)
    rolled_back = [a for a in decision.assessments[1:] if a.rollback]
    iteration = state.iteration + 1

    def history(weights: dict[str, int], winner: str | None, reason: str, **extra: Any) -> tuple[dict[str, Any], ...]:
        return _record(state, spec, snapshot, now, iteration=iteration, held=False, weights=weights,
                       winner=winner, **extra, **restarted, reason=reason, values=values, **unmet(assessments))

    frozen = [a for a in decision.assessments[1:] if a.freeze and not a.rollback]
    if frozen and not rolled_back:
        # Freeze: hold the weights in force and pause for a person (control: resume, abort or promote).
        # The iteration does not count: nothing was decided.
        reason = "; ".join(f"{a.version} broke {', '.join(a.broken)}" for a in frozen)
        message = (f"Frozen: {reason}; weights held at {weight_split(state.weights)}. "
                   "Set the control to resume, abort or promote")
        return state.evolve(values=values, assessments=assessments, evidence=decision.evidence,
                            consecutive_errors=0, last_iteration_at=now, stage=PAUSED, messages=(message,),
                            history=_record(state, spec, snapshot, now, iteration=state.iteration, held=True,
                                            weights=dict(state.weights), winner=None, reason=message,
                                            values=values, frozen=True, **restarted, **unmet(assessments)))
    if rolled_back:
        reason = "; ".join(f"{a.version} broke {', '.join(a.broken)}" for a in rolled_back)
        weights = baseline_only(spec)
        message = f"Rolled back to {spec.baseline.name}: {reason}"
        return state.evolve(**base, stage=FAILED, iteration=iteration, weights=weights, winner=None,
                            history=history(weights, None, message), messages=(message,))
    winner = decision.winner.winner
    converged = decision.final and decision.weights == state.weights
    if iteration >= spec.total_iterations or converged:
        promoted = winner or spec.baseline.name
        weights = {name: (100 if name == promoted else 0) for name in spec.version_names}
        why = f"winner {winner}" if winner else f"no winner, keeping baseline {promoted}"
        if converged and iteration < spec.total_iterations:
            why += ", decided by the sequential test"
        message = f"Completed after {iteration} iterations; promoted {promoted} ({why})"
        return state.evolve(**base, stage=COMPLETED, iteration=iteration, weights=weights, winner=winner,
                            promoted=promoted, messages=(message,),
                            history=history(weights, winner, message, promoted=promoted))
    message = f"Iteration {iteration}: " + (f"winner {winner}" if winner else f"no winner ({decision.winner.reason})")
    restarts = [f"Restarted (its configuration changed): {', '.join(restarted['restarted'])}"] if restarted else []
    return state.evolve(**base, iteration=iteration, weights=decision.weights, winner=winner,
                        history=history(decision.weights, winner, decision.winner.reason),
                        messages=(message, *_infeasible(spec, decision), *restarts))


def _infeasible(spec: ExperimentSpec, decision: Decision) -> list[str]:
    """Why each version that is not feasible is not: its first unmet objective."""
    return [f"{a.version} not feasible: {a.unmet[0]}" for a in decision.assessments if a.unmet]


def _unreadable(spec: ExperimentSpec, snapshot: Snapshot, state: ExperimentState, now: float,
                values: dict[str, dict[str, dict[str, Any]]], err: StateError) -> ExperimentState:
    """Failed, 100% baseline, naming the stored field that could not be read (never a traceback)."""
    weights = baseline_only(spec)
    message = (f"Failed: stored evidence cannot be read: {err}; all traffic back to {spec.baseline.name}. "
               "Replace the Experiment resource (pulumi up --replace) to start a new experiment")
    history = _record(state, spec, snapshot, now, iteration=state.iteration, held=True, weights=weights,
                      winner=None, reason=message, values=values)
    return state.evolve(stage=FAILED, weights=weights, winner=None, last_iteration_at=now, values=values,
                        evidence={}, history=history, messages=(message,))


def _hold(spec: ExperimentSpec, snapshot: Snapshot, state: ExperimentState, now: float,
          values: dict[str, dict[str, dict[str, Any]]], problems: list[str]) -> ExperimentState:
    errors = state.consecutive_errors + 1
    limit = spec.consecutive_error_limit
    if errors >= limit:
        weights = baseline_only(spec)
        message = (f"Failed after {errors} iterations in a row without usable data; "
                   f"all traffic back to {spec.baseline.name}. Last problem: {problems[0]}")
        stage = FAILED
    else:
        weights = dict(state.weights)
        message = (f"Held weights ({errors}/{limit} before rollback): {problems[0]}"
                   + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))
        stage = RUNNING
    history = _record(state, spec, snapshot, now, iteration=state.iteration, held=True, weights=weights,
                      winner=None, reason=message, values=values)
    return state.evolve(stage=stage, weights=weights, consecutive_errors=errors, last_iteration_at=now,
                        values=values, history=history, messages=(message, *problems[1:5]))
