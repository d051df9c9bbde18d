"""`python -m rollout preview -s STACK`: what the next iteration would decide, changing nothing.

Reads the stack's current record (its `experiment` output) and config through the Automation API,
queries Prometheus now, and runs what the provider's `update` runs (`rollout.engine.advance`: the
control, then the iteration when due) on an in-memory copy of the state. When the interval has not
passed yet, an `up` now would change nothing but the control, so the dry run also shows what the first
`up` after the interval would decide on today's data. No `pulumi up` runs and nothing is written: the
stack's state is the same before and after. (`pulumi preview` itself still does no network I/O: the
experiment's diff decides from the record and clock.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from components.stack_config import PROJECT, ConfigError, load_stack_config, project_values
from rollout.core.control import Control, apply_control
from rollout.core.outcomes import Snapshot
from rollout.core.spec import ExperimentSpec
from rollout.core.state import COMPLETED, FAILED, PAUSED, RUNNING, ExperimentState, StateError
from rollout.core.text import weight_split
from rollout.engine import advance, is_due
from rollout.metrics.collect import collect_snapshot
from rollout.metrics.prometheus import PrometheusClient
from rollout.ops.runner import ERROR, RunError, select_stack
from rollout.provider import credentials_of, prometheus_settings, record_outputs, stored_state
from rollout.report.describe import describe


@dataclass(frozen=True)
class Prediction:
    now: ExperimentState
    """What an `up` run now leaves (the provider's `update` at the same moment, on the same data)."""
    next: ExperimentState
    """What the next `up` that changes anything leaves: `now`, or the first one after the interval."""
    when: str


def predict(spec: ExperimentSpec, state: ExperimentState, control: Control | None, now: float,
            snapshot_at: Callable[[ExperimentState], Snapshot]) -> Prediction:
    controlled = apply_control(spec, state, control, now)
    at_now = advance(spec, controlled, control, now, snapshot_at)  # the control is applied: the same `up`
    if state.stage in (COMPLETED, FAILED):
        return Prediction(at_now, at_now, f"never: the experiment is {state.stage} and an `up` changes nothing "
                                          "(a renamed or replaced experiment starts anew)")
    if controlled.stage == PAUSED:
        return Prediction(at_now, at_now, "not until a control: the experiment is Paused (set control.action "
                                          "to resume, abort or promote)")
    if controlled.stage != RUNNING:
        return Prediction(at_now, at_now, "the next `pulumi up` (the control takes effect at once)")
    if is_due(spec, controlled, now):
        return Prediction(at_now, at_now, "the next `pulumi up` (the interval has passed)")
    due = controlled.last_iteration_at + spec.interval_seconds
    later = advance(spec, at_now, control, due, snapshot_at)
    before = "applies the control and nothing else" if controlled is not state else "changes nothing"
    return Prediction(at_now, later, f"the first `pulumi up` in {due - now:.0f}s (the interval has not passed; "
                                     f"an `up` before then {before})")


def dry_run(stack_name: str, work_dir: Path, out: TextIO, now: float | None = None) -> int:
    stack = select_stack(stack_name, work_dir, create=False)
    outputs = {name: o.value for name, o in stack.outputs().items()}
    record = outputs.get("experiment")
    if not isinstance(record, dict):
        raise RunError(f"stack {stack_name!r} has no experiment yet (run `pulumi up` first)")
    config = stack.get_all_config()
    values = project_values({key: c.value for key, c in config.items()})
    secret = {key for key in values if config[f"{PROJECT}:{key}"].secret}
    try:
        settings = load_stack_config(values, secret)
    except ConfigError as err:
        raise RunError(str(err)) from None
    spec = settings.experiment_spec()
    try:
        state = stored_state(spec, record)
    except StateError as err:
        raise RunError(f"the stack's record cannot be read ({err}); the next `up` would end the experiment") \
            from None
    now = time.time() if now is None else now
    auth = {"token": values.get("prometheusToken") or "", "username": settings.prometheus_username,
            "password": values.get("prometheusPassword") or ""}
    prometheus = settings.prometheus_input()
    snapshots: list[Snapshot] = []

    def snapshot_at(current: ExperimentState) -> Snapshot:
        if not snapshots:  # read once: the later prediction decides on the same data
            with PrometheusClient(prometheus_settings(prometheus), credentials_of(auth)) as client:
                snapshots.append(collect_snapshot(spec, client, current.started_at, now))
        return snapshots[0]

    prediction = predict(spec, state, Control.from_input(settings.control.to_input()), now, snapshot_at)
    after = prediction.next
    would = record_outputs(spec.to_wire(), prometheus, spec, after)
    out.write(f"Dry run of stack {stack_name}: nothing was changed.\n")
    out.write(f"Now:        {state.stage}, iteration {state.iteration}, weights {weight_split(state.weights)}\n")
    out.write(f"Would be:   {after.stage}, iteration {after.iteration}, weights {weight_split(after.weights)}"
              + (f", promoting {after.promoted}" if after.promoted and after.promoted != state.promoted else "")
              + "\n")
    out.write(f"When:       {prediction.when}\n")
    for message in after.messages:
        out.write(f"Why:        {message}\n")
    out.write("\n" + describe(would))
    return 0


def preview_command(args: Any, out: TextIO, err: TextIO) -> int:
    work_dir = Path(args.cwd).resolve()
    if not (work_dir / "Pulumi.yaml").is_file():
        err.write(f"error: {work_dir} has no Pulumi.yaml (give the project directory with -C)\n")
        return ERROR
    try:
        return dry_run(args.stack, work_dir, out)
    except RunError as problem:
        err.write(f"error: {problem}\n")
        return ERROR
