"""The experiment's state between `pulumi up` runs, and its plain-dict form (the resource outputs).

Everything the next iteration needs lives here, so the resource outputs are the only store.
Numbers come back from the engine as floats; `from_outputs` turns counters back into ints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from rollout.core.text import shown


class Stage(StrEnum):
    """An experiment's stage: the one list of them (a `str`, so records and messages carry the name)."""

    RUNNING = "Running"
    PAUSED = "Paused"
    """Weights held and iterations stopped until a person resumes, aborts or promotes (a control)."""
    COMPLETED = "Completed"
    FAILED = "Failed"


RUNNING, PAUSED, COMPLETED, FAILED = Stage.RUNNING, Stage.PAUSED, Stage.COMPLETED, Stage.FAILED
STAGES: tuple[Stage, ...] = tuple(Stage)
FINAL_STAGES: tuple[Stage, ...] = (COMPLETED, FAILED)


@dataclass(frozen=True)
class ExperimentState:
    stage: Stage | str
    """A Stage (a stage's name is turned into one)."""
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
    """What the algorithm based its last decision on (e-values, probabilities, sample sizes), and under
    PRIVATE its own bookkeeping between looks (stored apart from what people read: `to_outputs`)."""
    history: tuple[dict[str, Any], ...] = ()
    messages: tuple[str, ...] = ()
    applied_control: dict[str, Any] | None = None
    """The last operator control applied (`control` config), so the same control applies once."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "stage", Stage(self.stage))  # a name ("Running") is read as its Stage

    @property
    def finished(self) -> bool:
        """Completed or Failed: nothing changes any more."""
        return self.stage in FINAL_STAGES

    def evolve(self, **changes: Any) -> ExperimentState:
        return replace(self, **changes)

    def to_outputs(self) -> dict[str, Any]:
        return {
            "stage": Stage(self.stage).value,
            "startedAt": self.started_at,
            "lastIterationAt": self.last_iteration_at,
            "iteration": self.iteration,
            "consecutiveErrors": self.consecutive_errors,
            "weights": dict(self.weights),
            "winner": self.winner,
            "promoted": self.promoted,
            "assessments": self.assessments,
            "values": self.values,
            "evidence": public_evidence(self.evidence),
            PRIVATE_OUTPUT: self.evidence.get(PRIVATE),
            "history": list(self.history),
            "messages": list(self.messages),
            "appliedControl": self.applied_control,
        }

    @classmethod
    def from_outputs(cls, outs: Mapping[str, Any]) -> ExperimentState:
        """The state stored in the resource outputs; StateError names the first field that is unreadable."""
        stage = outs.get("stage")
        if stage not in STAGES:
            raise StateError("stage", f"must be one of {', '.join(STAGES)}, got {shown(stage)}")
        weights = _mapping(outs, "weights", required=True)
        return cls(
            stage=Stage(stage),
            started_at=_time(outs, "startedAt"),
            last_iteration_at=_time(outs, "lastIterationAt"),
            weights={str(k): _count(v, f"weights.{k}", 100) for k, v in weights.items()},
            iteration=_count(outs.get("iteration") or 0, "iteration"),
            consecutive_errors=_count(outs.get("consecutiveErrors") or 0, "consecutiveErrors"),
            winner=_name(outs, "winner"),
            promoted=_name(outs, "promoted"),
            assessments=dict(_mapping(outs, "assessments")),
            values=dict(_mapping(outs, "values")),
            evidence=_evidence(outs),
            history=tuple(_list(outs, "history", Mapping)),
            messages=tuple(_list(outs, "messages", str)),
            applied_control=dict(_mapping(outs, "appliedControl")) or None,
        )


PRIVATE = "running"
"""The evidence's key for the algorithm's own bookkeeping between looks (the `sequential` tests' running
state): stored in its own output, PRIVATE_OUTPUT, beside the public record, never shown to people."""
PRIVATE_OUTPUT = "algorithmState"


def public_evidence(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """The evidence people read: all but the algorithm's bookkeeping."""
    return {k: v for k, v in evidence.items() if k != PRIVATE}


def _evidence(outs: Mapping[str, Any]) -> dict[str, Any]:
    """The evidence as the engine takes it: the public part, with the bookkeeping from its own output (or
    inline, as records before the split stored it)."""
    evidence = dict(_mapping(outs, "evidence"))
    private = outs.get(PRIVATE_OUTPUT)
    if private is not None:
        evidence[PRIVATE] = private
    return evidence


class StateError(ValueError):
    """The stored experiment state (the resource's outputs) cannot be read back."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def _time(outs: Mapping[str, Any], key: str) -> float:
    value = outs.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StateError(key, f"must be a unix time, got {shown(value)}")
    return float(value)


def _count(value: Any, key: str, most: int | None = None) -> int:
    """A whole number in [0, most]; the engine gives whole numbers as floats (10.0)."""
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value != int(value) or value < 0 or (most is not None and value > most)):
        bound = f"0 to {most}" if most is not None else "0 or more"
        raise StateError(key, f"must be a whole number, {bound}, got {shown(value)}")
    return int(value)


def _name(outs: Mapping[str, Any], key: str) -> str | None:
    value = outs.get(key)
    if value is not None and not isinstance(value, str):
        raise StateError(key, f"must be a version name or null, got {shown(value)}")
    return value


def _mapping(outs: Mapping[str, Any], key: str, required: bool = False) -> Mapping[str, Any]:
    value = outs.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise StateError(key, f"must be a mapping, got {shown(value)}")
    return value


def _list(outs: Mapping[str, Any], key: str, item: type) -> list[Any]:
    value = outs.get(key)
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise StateError(key, f"must be a list, got {shown(value)}")
    for i, entry in enumerate(value):
        if not isinstance(entry, item):
            raise StateError(f"{key}[{i}]", f"must be a {'mapping' if item is Mapping else 'string'}, "
                                            f"got {shown(entry)}")
    return list(value)
