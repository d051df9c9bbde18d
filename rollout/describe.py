"""The experiment record as operators read it (the sections of `iter8ctl describe`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any


class RecordError(ValueError):
    """The input is not an experiment record."""


def experiment_record(document: Any) -> dict[str, Any]:
    """Accept the record itself or the whole `pulumi stack output --json` document."""
    if isinstance(document, Mapping) and isinstance(document.get("experiment"), Mapping):
        document = document["experiment"]
    if not isinstance(document, Mapping) or "stage" not in document or "weights" not in document:
        raise RecordError("not an experiment record: expected the output of "
                          "`pulumi stack output experiment --json` (with stage and weights)")
    return dict(document)


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


def _cell(entry: Mapping[str, Any] | None) -> str:
    if not entry:
        return "-"
    if entry.get("status") == "ok":
        return _number(entry.get("value"))
    return f"{entry.get('status')} ({entry.get('detail', '')})" if entry.get("detail") else str(entry.get("status"))


def describe(record: Mapping[str, Any]) -> str:
    spec: Mapping[str, Any] = record.get("spec") or {}
    versions = [v["name"] for v in spec.get("versions", [])] or list(record.get("weights", {}))
    total = int(spec.get("iterationsPerLoop", 0) or 0) * int(spec.get("maxLoops", 1) or 1)
    weights = record.get("weights") or {}
    values: Mapping[str, Mapping[str, Any]] = record.get("values") or {}
    out = [_section("Overview"),
           f"Experiment name: {record.get('name', spec.get('name', '-'))}",
           f"Target: {spec.get('target', '-')}",
           f"Testing pattern: {spec.get('testingPattern', 'A/B')}",
           f"Deployment pattern: {spec.get('deploymentPattern', 'Progressive')}",
           f"Algorithm: {spec.get('algorithm', 'iter8-v2')}",
           _section("Progress Summary"),
           f"Experiment stage: {record.get('stage')}",
           f"Number of completed iterations: {int(record.get('iteration') or 0)}"
           + (f" of {total}" if total else ""),
           f"Started: {_time(record.get('startedAt'))}; last iteration: {_time(record.get('lastIterationAt'))}",
           f"Consecutive iterations without usable data: {int(record.get('consecutiveErrors') or 0)}"]
    out += [f"Message: {m}" for m in record.get("messages") or []]
    out += [_section("Winner Assessment"),
            f"App versions in this experiment: [{' '.join(versions)}]",
            f"Winning version: {record.get('winner') or 'not found'}",
            f"Version recommended for promotion: {record.get('winner') or (versions[0] if versions else '-')}",
            f"Promoted: {record.get('promoted') or 'not yet'}",
            "Current weights: " + ", ".join(f"{v} {int(weights.get(v, 0))}%" for v in versions)]
    rewards = spec.get("rewards") or []
    if rewards:
        out += [_section("Reward Assessment"), "> Identifies the version with the best reward."]
        rows = []
        for reward in rewards:
            name = str(reward["metric"]).rsplit("/", 1)[-1]
            row = [f"{name} ({reward.get('preferredDirection', 'High')})"]
            for v in versions:
                cell = _cell(values.get(name, {}).get(v))
                row.append(cell + (" *" if v == record.get("winner") and reward is rewards[0] else ""))
            rows.append(row)
        out.append(table(["Reward", *versions], rows))
    objectives = record.get("assessments") or {}
    if spec.get("objectives"):
        out += [_section("Objective Assessment"),
                "> Whether each version meets each objective on the most recent metric values."]
        conditions = list(next(iter(objectives.values()), {}).keys()) if objectives else []
        rows = [[c, *[str(objectives.get(v, {}).get(c, "-")).lower() for v in versions]] for c in conditions]
        out.append(table(["Objective", *versions], rows) if rows else "No assessment yet.")
    out += [_section("Metrics Assessment"), "> Most recent metric values for each version."]
    rows = []
    for name in sorted(values):
        units = next((e.get("units") for e in values[name].values() if e.get("units")), "")
        rows.append([f"{name}" + (f" ({units})" if units else ""), *[_cell(values[name].get(v)) for v in versions]])
    out.append(table(["Metric", *versions], rows) if rows else "No metric values yet.")
    evidence = record.get("evidence") or {}
    if evidence:
        out += [_section("Evidence"), *_evidence(evidence, versions)]
    history = record.get("history") or []
    if history:
        out += [_section("History")]
        rows = [[str(int(h.get("iteration", 0))), _time(h.get("time")),
                 *[str(int(h.get("weights", {}).get(v, 0))) for v in versions],
                 "held" if h.get("held") else "", str(h.get("reason", ""))[:70]] for h in history]
        out.append(table(["Iter", "Time", *versions, "", "Reason"], rows))
    return "\n".join(out).lstrip("\n") + "\n"


def _evidence(evidence: Mapping[str, Any], versions: Sequence[str]) -> list[str]:
    lines = []
    rows = []
    for key, value in sorted(evidence.items()):
        if key == "running":  # the algorithm's own bookkeeping between looks
            continue
        if isinstance(value, Mapping):
            rows.append([key, *[_number(value.get(v)) for v in versions]])
        else:
            lines.append(f"{key}: {_number(value)}")
    if rows:
        lines.append(table(["Evidence", *versions], rows))
    return lines


def progress_line(record: Mapping[str, Any]) -> str:
    """One line for a terminal while the experiment runs."""
    spec = record.get("spec") or {}
    total = int(spec.get("iterationsPerLoop", 0) or 0) * int(spec.get("maxLoops", 1) or 1)
    weights = " ".join(f"{v}={int(w)}%" for v, w in (record.get("weights") or {}).items())
    reward = (spec.get("rewards") or [{}])[0].get("metric", "")
    reward = str(reward).rsplit("/", 1)[-1]
    deciding = " ".join(f"{v}:{_cell(e)}" for v, e in ((record.get("values") or {}).get(reward) or {}).items())
    message = "; ".join(record.get("messages") or [])
    return (f"iteration {int(record.get('iteration') or 0)}/{total} {record.get('stage')} | {weights}"
            + (f" | {reward} {deciding}" if deciding else "") + (f" | {message}" if message else ""))


def unmet(record: Mapping[str, Any], completed: bool, winner_found: bool) -> list[str]:
    """Conditions of `assert` that do not hold (empty when all do)."""
    problems = []
    if completed and record.get("stage") != "Completed":
        problems.append(f"experiment is not completed (stage {record.get('stage')})")
    if winner_found and not record.get("winner"):
        problems.append("no winner found")
    return problems
