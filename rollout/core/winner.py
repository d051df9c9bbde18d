"""Stage 3: which version wins, by testing pattern (Iter8 v2 semantics)."""

from __future__ import annotations

from dataclasses import dataclass

from rollout.core.assessment import VersionAssessment
from rollout.core.outcomes import Snapshot, value_of
from rollout.core.spec import Direction, ExperimentSpec, TestingPattern


@dataclass(frozen=True)
class WinnerAssessment:
    best_versions: tuple[str, ...]
    """Versions sharing the best reward (more than one is a tie)."""
    winner: str | None
    """The unique best version, or None."""
    reason: str


def assess_winner(spec: ExperimentSpec, assessments: tuple[VersionAssessment, ...],
                  snapshot: Snapshot) -> WinnerAssessment:
    feasible = [a.version for a in assessments if a.feasible]
    pattern = spec.testing_pattern
    if pattern is TestingPattern.CONFORMANCE:
        base = spec.baseline.name
        return _single(base, "baseline is feasible") if base in feasible else _none("baseline is not feasible")
    if pattern is TestingPattern.CANARY:
        candidate, base = spec.versions[-1].name, spec.baseline.name
        if candidate in feasible:
            return _single(candidate, "candidate is feasible")
        if base in feasible:
            return _single(base, "candidate is not feasible, baseline is")
        return _none("no version is feasible")
    reward = spec.rewards[0]
    scored = [(name, value_of(snapshot.get((reward.metric, name)))) for name in feasible]
    valued = [(name, v) for name, v in scored if v is not None]
    if not valued:
        return _none("no feasible version has a reward value" if feasible else "no version is feasible")
    pick = max if reward.preferred_direction is Direction.HIGH else min
    best_value = pick(v for _, v in valued)
    best = tuple(name for name, v in valued if v == best_value)
    if len(best) > 1:
        return WinnerAssessment(best, None, f"tie on {reward.metric} between {', '.join(best)}")
    return WinnerAssessment(best, best[0], f"best {reward.metric} among feasible versions")


def _single(name: str, reason: str) -> WinnerAssessment:
    return WinnerAssessment((name,), name, reason)


def _none(reason: str) -> WinnerAssessment:
    return WinnerAssessment((), None, reason)
