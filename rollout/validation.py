"""Turn the plain experiment dict (stack config, resource inputs) into a validated ExperimentSpec.

Every problem is reported at once, each naming its field (`objectives[1].upperLimit`), so a user
fixes a config in one pass. Nothing here touches the network.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from rollout.jqexpr import JqError, compile_expression
from rollout.spec import (
    Algorithm,
    DeploymentPattern,
    Direction,
    ExperimentSpec,
    Exposure,
    Metric,
    Objective,
    QuantileTest,
    Reward,
    SequentialSettings,
    TestingPattern,
    Version,
)
from rollout.templating import ELAPSED_TIME, TemplateError, template_variables

VARIABLE_VALUE = re.compile(r"[A-Za-z0-9_.:/-]+")

E = TypeVar("E", bound=Enum)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the config: where, and what."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class SpecError(ValueError):
    """The experiment config is invalid; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("invalid experiment: " + "; ".join(str(p) for p in problems))


class _Reader:
    """Reads typed fields from a mapping and collects problems instead of raising."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message))

    def integer(self, data: Mapping[str, Any], key: str, where: str, default: int, low: int,
                high: int | None = None) -> int:
        raw = data.get(key, default)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw != int(raw):
            self.fail(where, f"must be a whole number, got {raw!r}")
            return default
        value = int(raw)
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            self.fail(where, f"must be {bounds}, got {value}")
            return default
        return value

    def number(self, raw: Any, where: str) -> float | None:
        if raw is None:
            return None
        if isinstance(raw, str):
            try:
                raw = float(raw)
            except ValueError:
                self.fail(where, f"must be a number, got {raw!r}")
                return None
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            self.fail(where, f"must be a finite number, got {raw!r}")
            return None
        return float(raw)

    def text(self, data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
        raw = data.get(key, default)
        if not isinstance(raw, str) or not raw.strip():
            self.fail(where, "is required" if raw is None else f"must be a non-empty string, got {raw!r}")
            return ""
        return raw

    def choice(self, data: Mapping[str, Any], key: str, where: str, enum: type[E], default: E) -> E:
        raw = data.get(key, default.value)
        for member in enum:
            if member.value == raw:
                return member
        allowed = ", ".join(m.value for m in enum)
        self.fail(where, f"must be one of {allowed}, got {raw!r}")
        return default

    def items(self, data: Mapping[str, Any], key: str, where: str) -> list[tuple[str, Mapping[str, Any]]]:
        raw = data.get(key, [])
        if raw is None:
            return []
        if not isinstance(raw, (list, tuple)):
            self.fail(where, f"must be a list, got {type(raw).__name__}")
            return []
        out = []
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping):
                self.fail(f"{where}[{i}]", f"must be a mapping, got {type(item).__name__}")
                continue
            out.append((f"{where}[{i}]", item))
        return out


def _metric(r: _Reader, where: str, data: Mapping[str, Any]) -> Metric:
    name = r.text(data, "name", f"{where}.name")
    query = r.text(data, "query", f"{where}.query")
    jq_expression = r.text(data, "jqExpression", f"{where}.jqExpression", Metric.jq_expression)
    if jq_expression:
        try:
            compile_expression(jq_expression)
        except JqError as err:
            r.fail(f"{where}.jqExpression", f"does not compile: {err}")
    if query:
        try:
            template_variables(query)
        except TemplateError as err:
            r.fail(f"{where}.query", str(err))
    mtype = data.get("type", "Gauge")
    if mtype not in ("Counter", "Gauge"):
        r.fail(f"{where}.type", f"must be Counter or Gauge, got {mtype!r}")
    sample = data.get("sampleSize")
    if sample is not None and not isinstance(sample, str):
        r.fail(f"{where}.sampleSize", f"must be a metric name, got {sample!r}")
        sample = None
    return Metric(
        name=name, query=query, jq_expression=jq_expression,
        description=str(data.get("description", "")), type=str(mtype),
        units=str(data.get("units", "") or ""), sample_size=_short(sample) if sample else None,
    )


def _short(metric_ref: str) -> str:
    """Iter8 names metrics `namespace/name`; the namespace is where they are stored, not part of the name."""
    return metric_ref.rsplit("/", 1)[-1]


def _version(r: _Reader, where: str, data: Mapping[str, Any]) -> Version:
    name = r.text(data, "name", f"{where}.name")
    raw = data.get("variables", {}) or {}
    pairs: list[tuple[str, str]] = []
    if isinstance(raw, list):  # Iter8's shape: [{name, value}]
        raw = {str(v.get("name")): v.get("value") for v in raw if isinstance(v, Mapping)}
    if not isinstance(raw, Mapping):
        r.fail(f"{where}.variables", "must be a mapping of name to value")
        raw = {}
    for key in sorted(raw):
        value = raw[key]
        if not isinstance(value, str) or not VARIABLE_VALUE.fullmatch(value):
            r.fail(f"{where}.variables.{key}",
                   f"must match [A-Za-z0-9_.:/-]+ (it is pasted into PromQL), got {value!r}")
        pairs.append((str(key), str(value)))  # kept so it is not also reported as missing
    return Version(name=name, variables=tuple(pairs))


def _objective(r: _Reader, where: str, data: Mapping[str, Any]) -> Objective:
    metric = _short(r.text(data, "metric", f"{where}.metric"))
    upper = r.number(data.get("upperLimit"), f"{where}.upperLimit")
    lower = r.number(data.get("lowerLimit"), f"{where}.lowerLimit")
    if data.get("upperLimit") is None and data.get("lowerLimit") is None:
        r.fail(where, "needs upperLimit or lowerLimit")
    if upper is not None and lower is not None and lower > upper:
        r.fail(where, f"lowerLimit {lower:g} is above upperLimit {upper:g}")
    rollback = data.get("rollbackOnFailure", True)
    if not isinstance(rollback, bool):
        r.fail(f"{where}.rollbackOnFailure", f"must be true or false, got {rollback!r}")
        rollback = True
    return Objective(metric=metric, upper_limit=upper, lower_limit=lower, rollback_on_failure=rollback)


def _sequential(r: _Reader, data: Any) -> SequentialSettings:
    if data is None:
        return SequentialSettings()
    if not isinstance(data, Mapping):
        r.fail("sequential", "must be a mapping")
        return SequentialSettings()
    alpha = r.number(data.get("alpha", 0.05), "sequential.alpha")
    if alpha is not None and not 0 < alpha < 1:
        r.fail("sequential.alpha", f"must be between 0 and 1, got {alpha:g}")
        alpha = None
    return SequentialSettings(
        alpha=alpha if alpha is not None else 0.05,
        min_samples=r.integer(data, "minSamples", "sequential.minSamples", 30, 1),
        exploration_floor=r.integer(data, "explorationFloor", "sequential.explorationFloor", 5, 0, 20),
        exposure=r.choice(data, "exposure", "sequential.exposure", Exposure, Exposure.TIME),
        quantile_tests=tuple(_quantile_test(r, w, d) for w, d in r.items(data, "quantileTests",
                                                                          "sequential.quantileTests")),
    )


def _quantile_test(r: _Reader, where: str, data: Mapping[str, Any]) -> QuantileTest:
    quantile = r.number(data.get("quantile"), f"{where}.quantile")
    if quantile is None or not 0 < quantile < 1:
        r.fail(f"{where}.quantile", f"must be between 0 and 1, got {data.get('quantile')!r}")
        quantile = 0.5
    return QuantileTest(objective=_short(r.text(data, "objective", f"{where}.objective")), quantile=quantile,
                        slow_count=_short(r.text(data, "slowCount", f"{where}.slowCount")))


def _check_references(r: _Reader, spec: ExperimentSpec) -> None:
    known = {m.name for m in spec.metrics}
    refs: list[tuple[str, str | None]] = [("requestCount", spec.request_count)]
    refs += [(f"rewards[{i}].metric", x.metric) for i, x in enumerate(spec.rewards)]
    refs += [(f"objectives[{i}].metric", x.metric) for i, x in enumerate(spec.objectives)]
    refs += [(f"metrics[{i}].sampleSize", m.sample_size) for i, m in enumerate(spec.metrics)]
    tests = spec.sequential.quantile_tests
    refs += [(f"sequential.quantileTests[{i}].slowCount", t.slow_count) for i, t in enumerate(tests)]
    limited = {o.metric for o in spec.objectives if o.upper_limit is not None}
    for i, test in enumerate(tests):
        if test.objective and test.objective not in limited:
            r.fail(f"sequential.quantileTests[{i}].objective",
                   f"{test.objective!r} is no objective with an upperLimit")
    for where, name in refs:
        if name and name not in known:
            r.fail(where, f"unknown metric {name!r} (known: {', '.join(sorted(known)) or 'none'})")
    _seen(r, "metrics", [m.name for m in spec.metrics])
    _seen(r, "versions", [v.name for v in spec.versions])
    for m_index, metric in enumerate(spec.metrics):
        try:
            needed = template_variables(metric.query) - {ELAPSED_TIME}
        except TemplateError:
            continue
        for v_index, version in enumerate(spec.versions):
            missing = needed - set(version.variable_map())
            if missing:
                r.fail(f"versions[{v_index}].variables",
                       f"missing {', '.join(sorted(missing))} used by metric {metric.name!r} "
                       f"(metrics[{m_index}].query)")


def _seen(r: _Reader, where: str, names: list[str]) -> None:
    for i, name in enumerate(names):
        if name and name in names[:i]:
            r.fail(f"{where}[{i}].name", f"duplicate name {name!r}")


def parse_experiment(data: Mapping[str, Any]) -> ExperimentSpec:
    """Validate `data` (camelCase keys, as in stack config) and return the typed spec.

    Raises SpecError listing every problem found.
    """
    if not isinstance(data, Mapping):
        raise SpecError([Problem("experiment", "must be a mapping")])
    r = _Reader()
    versions = tuple(_version(r, w, d) for w, d in r.items(data, "versions", "versions"))
    if len(versions) < 1:
        r.fail("versions", "needs at least the baseline")
    metrics = tuple(_metric(r, w, d) for w, d in r.items(data, "metrics", "metrics"))
    rewards = tuple(
        Reward(metric=_short(r.text(d, "metric", f"{w}.metric")),
               preferred_direction=r.choice(d, "preferredDirection", f"{w}.preferredDirection",
                                            Direction, Direction.HIGH))
        for w, d in r.items(data, "rewards", "rewards"))
    objectives = tuple(_objective(r, w, d) for w, d in r.items(data, "objectives", "objectives"))
    request_count = data.get("requestCount")
    testing = r.choice(data, "testingPattern", "testingPattern", TestingPattern, TestingPattern.AB)
    if testing in (TestingPattern.AB, TestingPattern.ABN) and not rewards:
        r.fail("rewards", f"testingPattern {testing.value} needs at least one reward")
    if testing is TestingPattern.CANARY and len(versions) != 2:
        r.fail("versions", "testingPattern Canary needs a baseline and exactly one candidate, "
                           f"got {len(versions)} versions")
    if testing is TestingPattern.CONFORMANCE and len(versions) != 1:
        r.fail("versions", f"testingPattern Conformance tests the baseline alone, got {len(versions)} versions")
    if testing is TestingPattern.AB and len(versions) > 2:
        testing = TestingPattern.ABN
    spec = ExperimentSpec(
        name=r.text(data, "name", "name"),
        target=str(data.get("target", "") or ""),
        versions=versions,
        metrics=metrics,
        rewards=rewards,
        objectives=objectives,
        request_count=_short(request_count) if isinstance(request_count, str) else None,
        testing_pattern=testing,
        deployment_pattern=r.choice(data, "deploymentPattern", "deploymentPattern",
                                    DeploymentPattern, DeploymentPattern.PROGRESSIVE),
        algorithm=r.choice(data, "algorithm", "algorithm", Algorithm, Algorithm.ITER8_V2),
        interval_seconds=r.integer(data, "intervalSeconds", "intervalSeconds", 20, 1),
        iterations_per_loop=r.integer(data, "iterationsPerLoop", "iterationsPerLoop", 15, 1),
        max_loops=r.integer(data, "maxLoops", "maxLoops", 1, 1),
        max_candidate_weight=r.integer(data, "maxCandidateWeight", "maxCandidateWeight", 100, 0, 100),
        max_candidate_weight_increment=r.integer(
            data, "maxCandidateWeightIncrement", "maxCandidateWeightIncrement", 10, 0, 100),
        consecutive_error_limit=r.integer(data, "consecutiveErrorLimit", "consecutiveErrorLimit", 4, 1),
        history_limit=r.integer(data, "historyLimit", "historyLimit", 50, 1, 1000),
        sequential=_sequential(r, data.get("sequential")),
    )
    if versions and metrics:
        _check_references(r, spec)
    if (spec.algorithm is Algorithm.SEQUENTIAL and spec.sequential.exposure is Exposure.REQUESTS
            and not spec.request_count):
        r.fail("sequential.exposure", "'requests' needs requestCount (the metric counting requests)")
    if r.problems:
        raise SpecError(r.problems)
    return spec


def validate(data: Mapping[str, Any]) -> list[Problem]:
    """Every problem with `data`, as a list (empty when valid)."""
    try:
        parse_experiment(data)
    except SpecError as err:
        return list(err.problems)
    return []
