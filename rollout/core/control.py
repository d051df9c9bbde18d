"""Operator controls: pause, resume, abort and promote, given as stack config (`control`).

A control is part of the desired state, committed like the rest of the stack file: the commit is
the audit trail. It takes effect at the next `pulumi up` (inside the interval too), and applies once:
the state keeps the last control applied, and the same control again changes nothing. To give the
same action twice (pause, resume, pause), the second differs from the last one applied; or change
its `reason`.

A control belongs to the experiment that was running when it was set (edge-triggered): one already in
the stack config when an experiment starts (a leftover `promote` committed for the audit trail, then the
experiment renamed, its versions changed, or replaced) is recorded as seen, "not applied", and never
acts on the new experiment (`seen_at_start`). To act on the new one, set a new control (another action,
version or reason). A level-triggered gate ("paused while set") would act on every later experiment
the moment it starts, which is exactly the accident this rule prevents.

`apply_control` is pure, like the engine: (spec, state, control, now) -> state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from rollout.core.spec import ExperimentSpec
from rollout.core.state import COMPLETED, FAILED, PAUSED, RUNNING, ExperimentState
from rollout.core.text import weight_split
from rollout.core.weights import baseline_only

Action = Literal["pause", "resume", "abort", "promote"]
ACTIONS: tuple[str, ...] = get_args(Action)


@dataclass(frozen=True)
class Control:
    action: str
    version: str | None = None
    """The version to promote (promote only)."""
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "version": self.version, "reason": self.reason}

    @classmethod
    def from_input(cls, raw: Any) -> Control | None:
        """The control of the provider's input (checked by the schema), None when there is none."""
        if not isinstance(raw, Mapping) or not raw.get("action"):
            return None
        return cls(str(raw["action"]), raw.get("version") or None, str(raw.get("reason") or ""))

    def summary(self) -> str:
        what = f"promote {self.version}" if self.action == "promote" else self.action
        return what + (f" ({self.reason})" if self.reason else "")


def is_new(control: Control | None, state: ExperimentState) -> bool:
    """A control to apply: given, and not the one applied last."""
    # Compared as controls, not dicts: the engine drops null values from stored outputs.
    return control is not None and control != Control.from_input(state.applied_control)


def _ignored(control: Control, state: ExperimentState, why: str) -> tuple[str, ExperimentState]:
    return f"Control {control.summary()} not applied: {why}", state


def _effect(spec: ExperimentSpec, state: ExperimentState, control: Control,
            now: float) -> tuple[str, ExperimentState]:
    stage = state.stage
    if stage in (COMPLETED, FAILED):
        return _ignored(control, state, f"the experiment is already {stage}")
    if control.action == "pause":
        if stage == PAUSED:
            return _ignored(control, state, "the experiment is already Paused")
        return (f"Paused by control: weights held at {weight_split(state.weights)}",
                state.evolve(stage=PAUSED))
    if control.action == "resume":
        if stage != PAUSED:
            return _ignored(control, state, f"the experiment is {stage}, not Paused")
        # The interval counts from the resume: the next iteration reads at least one interval of data.
        return (f"Resumed by control; next iteration after {spec.interval_seconds}s",
                state.evolve(stage=RUNNING, last_iteration_at=now, consecutive_errors=0))
    if control.action == "abort":
        weights = baseline_only(spec)
        return (f"Aborted by control: all traffic back to {spec.baseline.name}, nothing promoted",
                state.evolve(stage=FAILED, weights=weights, winner=None, promoted=None))
    version = control.version
    if version not in spec.version_names:
        return _ignored(control, state, f"{version!r} is not a version of this experiment")
    weights = {name: (100 if name == version else 0) for name in spec.version_names}
    # The algorithm's winner does not stand for a person's decision: the record names none.
    was = f" (the algorithm's winner was {state.winner})" if state.winner and state.winner != version else ""
    return (f"Promoted {version} by control{was}",
            state.evolve(stage=COMPLETED, weights=weights, promoted=version, winner=None))


def apply_control(spec: ExperimentSpec, state: ExperimentState, control: Control | None,
                  now: float) -> ExperimentState:
    """The state after `control`: unchanged when there is none or it was applied already.

    Every control given is recorded once (in the history, with its time and reason), also one that
    cannot apply (e.g. pause on a Completed experiment), so that it is not tried again.
    """
    if control is None or not is_new(control, state):
        return state
    message, after = _effect(spec, state, control, now)
    return _recorded(spec, state, after, control, message, now)


def seen_at_start(spec: ExperimentSpec, state: ExperimentState, control: Control | None,
                  now: float) -> ExperimentState:
    """A new experiment's state with the control already in the stack config recorded, never applied."""
    if control is None:
        return state
    message, after = _ignored(control, state, "it was set before this experiment started (a control acts only "
                                              "on the experiment running when it is set; set a new one to act "
                                              "on this experiment)")
    return _recorded(spec, state, after, control, message, now)


def _recorded(spec: ExperimentSpec, state: ExperimentState, after: ExperimentState, control: Control,
              message: str, now: float) -> ExperimentState:
    entry = {"time": now, "iteration": after.iteration, "held": False, "weights": dict(after.weights),
             "winner": after.winner, "reason": message,
             "control": {**control.as_dict(), "summary": control.summary(), "stage": after.stage}}
    if after.promoted and after.promoted != state.promoted:
        entry["promoted"] = after.promoted
    history = (*state.history, entry)[-spec.history_limit:]
    # A control that changed nothing adds its message to the current ones (a completion message stays).
    messages = (message,) if after is not state else (*state.messages, message)
    return after.evolve(applied_control=control.as_dict(), history=history, messages=messages)
