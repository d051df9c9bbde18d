"""The experiment's state between `pulumi up` runs, and its plain-dict form (the resource outputs).

Everything the next iteration needs lives here, so the resource outputs are the only store.
Numbers come back from the engine as floats; `from_outputs` turns counters back into ints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

RUNNING = "Running"
COMPLETED = "Completed"
FAILED = "Failed"
STAGES = (RUNNING, COMPLETED, FAILED)


@dataclass(frozen=True)
class ExperimentState:
    stage: str
    started_at: float
    last_iteration_at: float
    """When the last iteration ran (or was held): the interval counts from here."""
    weights: dict[str, int]
    iteration: int = 0
    """Completed iterations; held iterations do not count."""
    consecutive_errors: int = 0
    winner: str | None = None
    promoted: str | None = None
    assessments: dict[str, dict[str, bool]] = field(default_factory=dict)
    """version -> objective condition -> met."""
    values: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """metric -> version -> {value, units, status, detail} from the last iteration."""
    evidence: dict[str, Any] = field(default_factory=dict)
    """What the algorithm based its last decision on (e-values, probabilities, sample sizes)."""
    history: tuple[dict[str, Any], ...] = ()
    messages: tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        return self.stage != RUNNING

    def evolve(self, **changes: Any) -> ExperimentState:
        return replace(self, **changes)

    def to_outputs(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "startedAt": self.started_at,
            "lastIterationAt": self.last_iteration_at,
            "iteration": self.iteration,
            "consecutiveErrors": self.consecutive_errors,
            "weights": dict(self.weights),
            "winner": self.winner,
            "promoted": self.promoted,
            "assessments": self.assessments,
            "values": self.values,
            "evidence": self.evidence,
            "history": list(self.history),
            "messages": list(self.messages),
        }

    @classmethod
    def from_outputs(cls, outs: Mapping[str, Any]) -> ExperimentState:
        stage = outs.get("stage")
        if stage not in STAGES:
            raise ValueError(f"stored experiment state has unknown stage {stage!r}")
        return cls(
            stage=str(stage),
            started_at=float(outs["startedAt"]),
            last_iteration_at=float(outs["lastIterationAt"]),
            weights={str(k): int(v) for k, v in dict(outs.get("weights") or {}).items()},
            iteration=int(outs.get("iteration") or 0),
            consecutive_errors=int(outs.get("consecutiveErrors") or 0),
            winner=outs.get("winner"),
            promoted=outs.get("promoted"),
            assessments=dict(outs.get("assessments") or {}),
            values=dict(outs.get("values") or {}),
            evidence=dict(outs.get("evidence") or {}),
            history=tuple(outs.get("history") or ()),
            messages=tuple(outs.get("messages") or ()),
        )
