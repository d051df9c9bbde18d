"""`python -m rollout preview -s STACK`: what the next iteration would decide, changing nothing.

Reads the stack's current record (its `experiment` output) and config through the Automation API,
queries Prometheus as the next iteration would (now, whether or not the interval has passed), runs
the same pure core, and prints the decision: weights now and next, winner, assessments, reasons. No
`pulumi up` runs and nothing is written: the stack's state is the same before and after. (`pulumi
preview` itself still does no network I/O: the experiment's diff decides from the record and clock.)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, TextIO

from components.stack_config import PROJECT, ConfigError, load_stack_config, project_values
from rollout.core.control import Control, apply_control
from rollout.core.state import StateError
from rollout.core.text import weight_split
from rollout.engine import is_due, iterate
from rollout.metrics.collect import collect_snapshot
from rollout.metrics.prometheus import PrometheusClient
from rollout.ops.runner import ERROR, RunError, select_stack
from rollout.provider import credentials_of, prometheus_settings, record_outputs, stored_state
from rollout.report.describe import describe


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
    due = is_due(spec, state, now)
    after = apply_control(spec, state, Control.from_input(settings.control.to_input()), now)
    auth = {"token": values.get("prometheusToken") or "", "username": settings.prometheus_username,
            "password": values.get("prometheusPassword") or ""}
    prometheus = settings.prometheus_input()
    if after.stage == "Running":
        with PrometheusClient(prometheus_settings(prometheus), credentials_of(auth)) as client:
            snapshot = collect_snapshot(spec, client, after.started_at, now)
        after = iterate(spec, snapshot, after, now)
    would = record_outputs(spec.to_wire(), prometheus, spec, after)
    wait = state.last_iteration_at + spec.interval_seconds - now
    out.write(f"Dry run of stack {stack_name}: nothing was changed.\n")
    out.write(f"Now:        {state.stage}, iteration {state.iteration}, weights {weight_split(state.weights)}\n")
    out.write(f"Would be:   {after.stage}, iteration {after.iteration}, weights {weight_split(after.weights)}"
              + (f", promoting {after.promoted}" if after.promoted and after.promoted != state.promoted else "")
              + "\n")
    out.write("When:       " + ("the next `pulumi up` (the interval has passed)" if due or state.stage != "Running"
                                 else f"the first `pulumi up` in {wait:.0f}s (the interval has not passed)") + "\n")
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
