"""What an algorithm decides in one iteration, and the Iter8 v2 algorithm itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rollout.core.assessment import VersionAssessment, assess_versions
from rollout.core.outcomes import Snapshot
from rollout.core.spec import ExperimentSpec
from rollout.core.state import ExperimentState
from rollout.core.weights import progressive_weights
from rollout.core.winner import WinnerAssessment, assess_winner


@dataclass(frozen=True)
class Decision:
    assessments: tuple[VersionAssessment, ...]
    winner: WinnerAssessment
    weights: dict[str, int]
    evidence: dict[str, Any] = field(default_factory=dict)
    final: bool = False
    """The winner is decided for good (the sequential test crossed its level): the experiment may end
    as soon as the weights have converged, before `iterationsPerLoop`."""


def iter8_v2(spec: ExperimentSpec, snapshot: Snapshot, state: ExperimentState) -> Decision:
    """Iter8 parity: feasible version with the best reward wins; Progressive weights."""
    assessments = assess_versions(spec, snapshot)
    winner = assess_winner(spec, assessments, snapshot)
    weights = progressive_weights(spec, state.weights, winner.best_versions)
    return Decision(assessments, winner, weights)
