"""The experiment record as operators read it (the sections of `iter8ctl describe`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rollout.core.record import ExperimentRecord, MetricValue
from rollout.core.state import COMPLETED, public_evidence
from rollout.core.text import weight_split
from rollout.report.record import RecordError, experiment_record

__all__ = ["ExperimentRecord", "RecordError", "describe", "experiment_record", "progress_line", "unmet"]


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_number(v)}" for k, v in sorted(value.items())) or "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.3g}" if abs(value) >= 1000 or abs(value) < 0.001 else f"{value:.3f}"
    return f"{value:g}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines)


def _time(epoch: Any) -> str:
    if not isinstance(epoch, (int, float)):
        return "-"
    return datetime.fromtimestamp(float(epoch), tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _section(title: str) -> str:
    return f"\n****** {title} ******"


def _cell(entry: MetricValue | None) -> str:
    if entry is None:
        return "-"
    if entry.status == "ok":
        return _number(entry.value)
    return f"{entry.status} ({entry.detail})" if entry.detail else entry.status


def describe(document: ExperimentRecord | Mapping[str, Any]) -> str:
    record = experiment_record(document)
    spec, state, versions = record.spec, record.state, record.versions
    weights, values = state.weights, state.values
    out = [_section("Overview"),
           f"Experiment name: {spec.name}",
           f"Target: {spec.target or '-'}",
           f"Testing pattern: {spec.testing_pattern.value}",
           f"Deployment pattern: {spec.deployment_pattern.value}",
           f"Algorithm: {spec.algorithm.value}",
           _section("Progress Summary"),
           f"Experiment stage: {state.stage}",
           f"Number of completed iterations: {state.iteration} of {spec.total_iterations}",
           f"Started: {_time(state.started_at)}; last iteration: {_time(state.last_iteration_at)}",
           f"Consecutive iterations without usable data: {state.consecutive_errors}"]
    out += [f"Message: {m}" for m in state.messages]
    out += [_section("Winner Assessment"),
            f"App versions in this experiment: [{' '.join(versions)}]",
            f"Winning version: {state.winner or 'not found'}",
            f"Version recommended for promotion: {state.winner or spec.baseline.name}",
            f"Promoted: {state.promoted or 'not yet'}",
            "Current weights: " + weight_split({v: weights.get(v, 0) for v in versions})]
    if spec.rewards:
        out += [_section("Reward Assessment"), "> Identifies the version with the best reward."]
        rows = []
        for i, reward in enumerate(spec.rewards):
            row = [f"{reward.metric} ({reward.preferred_direction.value})"]
            for v in versions:
                cell = _cell(record.value(reward.metric, v))
                row.append(cell + (" *" if v == state.winner and i == 0 else ""))
            rows.append(row)
        out.append(table(["Reward", *versions], rows))
    if spec.objectives:
        out += [_section("Objective Assessment"),
                "> Whether each version meets each objective on the most recent metric values."]
        assessments = state.assessments
        rows = [[o.condition(), *[str(assessments.get(v, {}).get(o.condition(), "-")).lower() for v in versions]]
                for o in spec.objectives] if assessments else []
        out.append(table(["Objective", *versions], rows) if rows else "No assessment yet.")
    out += [_section("Metrics Assessment"), "> Most recent metric values for each version."]
    rows = [[name + (f" ({record.units(name)})" if record.units(name) else ""),
             *[_cell(record.value(name, v)) for v in versions]] for name in sorted(values)]
    out.append(table(["Metric", *versions], rows) if rows else "No metric values yet.")
    if public_evidence(state.evidence):
        out += [_section("Evidence"), *_evidence(public_evidence(state.evidence), versions)]
    if state.history:
        out += [_section("History")]
        rows = [[str(int(h.get("iteration", 0))), _time(h.get("time")),
                 *[str(int(h.get("weights", {}).get(v, 0))) for v in versions],
                 "held" if h.get("held") else "", str(h.get("reason", ""))[:70]] for h in state.history]
        out.append(table(["Iter", "Time", *versions, "", "Reason"], rows))
    return "\n".join(out).lstrip("\n") + "\n"


def _evidence(evidence: Mapping[str, Any], versions: Sequence[str]) -> list[str]:
    lines = []
    rows = []
    for key, value in sorted(evidence.items()):
        if isinstance(value, Mapping):
            rows.append([key, *[_number(value.get(v)) for v in versions]])
        else:
            lines.append(f"{key}: {_number(value)}")
    if rows:
        lines.append(table(["Evidence", *versions], rows))
    return lines


def progress_line(document: ExperimentRecord | Mapping[str, Any]) -> str:
    """One line for a terminal while the experiment runs."""
    record = experiment_record(document)
    state = record.state
    reward = record.spec.rewards[0].metric if record.spec.rewards else ""
    deciding = " ".join(f"{v}:{_cell(record.value(reward, v))}" for v in state.values.get(reward, {}))
    message = "; ".join(state.messages)
    return (f"iteration {state.iteration}/{record.spec.total_iterations} {state.stage} | "
            f"{weight_split(state.weights)}"
            + (f" | {reward} {deciding}" if deciding else "") + (f" | {message}" if message else ""))


def unmet(record: ExperimentRecord, completed: bool, winner_found: bool) -> list[str]:
    """Conditions of `assert` that do not hold (empty when all do)."""
    problems = []
    if completed and record.state.stage != COMPLETED:
        problems.append(f"experiment is not completed (stage {record.state.stage})")
    if winner_found and not record.state.winner:
        problems.append("no winner found")
    return problems
