"""Stage 2: each version against each objective (missing value = not met)."""

from __future__ import annotations

from dataclasses import dataclass

from rollout.core.outcomes import Snapshot, value_of
from rollout.core.spec import ExperimentSpec, Objective


@dataclass(frozen=True)
class VersionAssessment:
    """One version's objective results, in the order of `spec.objectives`."""

    version: str
    met: tuple[bool, ...]
    broken: tuple[str, ...] = ()
    """Conditions broken by a measured value (not by missing data), for rollback."""
    rollback: bool = False
    """True when a broken objective asks for rollback on failure."""
    unmet: tuple[str, ...] = ()
    """Why each unmet objective is unmet (no data, measured beyond the limit, confirmed broken)."""
    freeze: bool = False
    """True when a broken objective asks to freeze (hold and pause) on failure."""

    @property
    def feasible(self) -> bool:
        return all(self.met)


def within(objective: Objective, value: float | None) -> bool:
    """True only when the value exists and lies within the objective's limits."""
    return value is not None and within_limits(value, objective.upper_limit, objective.lower_limit)


def within_limits(value: float, upper: float | None, lower: float | None) -> bool:
    """Whether `value` lies within these limits (None: no limit on that side)."""
    return not ((upper is not None and value > upper) or (lower is not None and value < lower))


def assess_versions(spec: ExperimentSpec, snapshot: Snapshot) -> tuple[VersionAssessment, ...]:
    out = []
    for version in spec.versions:
        met: list[bool] = []
        broken: list[str] = []
        unmet: list[str] = []
        rollback = freeze = False
        for objective in spec.objectives:
            value = value_of(snapshot.get((objective.metric, version.name)))
            ok = within(objective, value)
            met.append(ok)
            if not ok and value is not None:
                broken.append(f"{objective.condition()} (got {value:g})")
                rollback = rollback or (objective.rollback_on_failure and objective.on_failure == "rollback")
                freeze = freeze or (objective.rollback_on_failure and objective.on_failure == "freeze")
            if not ok:
                unmet.append(broken[-1] if value is not None else f"{objective.metric} has no data yet")
        out.append(VersionAssessment(version.name, tuple(met), tuple(broken), rollback, tuple(unmet), freeze))
    return tuple(out)
