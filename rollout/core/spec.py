"""The experiment, declared once: frozen pydantic models with their defaults, bounds and rules.

The same models read the stack config's `experiment` (components/settings.py), the provider's inputs
(`check`, `create`, `update`) and the record `describe` and `plot` print. Keys are camelCase on the wire
and in config (`intervalSeconds`), attributes snake_case (`interval_seconds`). Every rule says where it
failed; `rollout.core.validation` turns pydantic's errors into `key.path: message` lines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    ModelWrapValidatorHandler,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_snake
from pydantic_core import PydanticCustomError

from rollout.core.jqexpr import JqError, compile_expression, sandbox_problem
from rollout.core.schema import (
    AtLeastOne,
    Loc,
    MetricRef,
    Model,
    NonEmpty,
    Number,
    Percent,
    Whole,
    duplicates,
    in_range,
    raise_problems,
    unknown_metrics,
    with_problems,
)
from rollout.core.templating import ELAPSED_TIME, TemplateError, template_variables

VARIABLE_VALUE = re.compile(r"[A-Za-z0-9_.:/-]+")
JQ_FIRST_VALUE = ".data.result[0].value[1] | tonumber"


class TestingPattern(StrEnum):
    """How the winner is chosen (Iter8's testingPattern)."""

    AB = "A/B"
    ABN = "A/B/n"
    CANARY = "Canary"
    CONFORMANCE = "Conformance"


class DeploymentPattern(StrEnum):
    """How weights move once a winner is known (Iter8's deploymentPattern)."""

    PROGRESSIVE = "Progressive"
    FIXED_SPLIT = "FixedSplit"
    BLUE_GREEN = "BlueGreen"


class Direction(StrEnum):
    """Which way a reward is better."""

    HIGH = "High"
    LOW = "Low"


class Algorithm(StrEnum):
    """The decision algorithm: Iter8 parity, or the sequential-test one."""

    ITER8_V2 = "iter8-v2"
    SEQUENTIAL = "sequential"


class Exposure(StrEnum):
    """What a count reward's events are exposed to (the `sequential` algorithm's rate test)."""

    TIME = "time"
    """The reward load is fixed whatever the weights (the seed's fortio feedback jobs): equal exposure."""
    REQUESTS = "requests"
    """Reward events follow the traffic a version serves: exposure is its `requestCount`."""


class MetricKind(StrEnum):
    """What a metric's number is: the `sequential` algorithm picks each metric's test by it."""

    EVENTS = "events"
    """A count of events (requests, feedback calls, errors): the count test applies."""
    VALUES = "values"
    """A sum of values (rewards, seconds): tested on per-look means per `sampleSize`, never as events."""
    MEAN = "mean"
    """A mean per sample (a sum divided by `sampleSize`), like a mean latency."""
    SHARE = "share"
    """A share of samples in [0, 1] (errors per request)."""
    QUANTILE = "quantile"
    """A quantile estimated from histogram buckets."""


class Metric(Model):
    """One metric: a PromQL template read through a jq expression (Iter8's Metric fields)."""

    name: NonEmpty
    query: NonEmpty
    """PromQL with `$ns`, `$sid`, `$predictor`, `${elapsedTime}` (and any version variable)."""
    jq_expression: NonEmpty = JQ_FIRST_VALUE
    description: str = ""
    type: Literal["Counter", "Gauge"] = "Gauge"
    """`Counter` or `Gauge`, as Iter8 types them."""
    units: Annotated[str, BeforeValidator(lambda v: "" if v is None else v)] = ""
    sample_size: MetricRef | None = None
    """Name of the metric that counts the samples behind this one (for example `request-count`)."""
    kind: MetricKind | None = None
    """What the number is (events, values, mean, share, quantile); a `sequential` reward tested as a count
    must be `events`."""

    @field_validator("query")
    @classmethod
    def _template(cls, query: str) -> str:
        try:
            template_variables(query)
        except TemplateError as err:
            raise PydanticCustomError("template", "{err}", {"err": str(err)}) from None
        return query

    @field_validator("jq_expression")
    @classmethod
    def _jq(cls, expression: str, info: ValidationInfo) -> str:
        problem = sandbox_problem(expression)
        if problem:  # the stack file is untrusted: an expression reads the Prometheus response only
            raise PydanticCustomError("jq", "metric {name}: {problem}",
                                      {"name": repr(info.data.get("name", "?")), "problem": problem})
        try:
            compile_expression(expression)
        except JqError as err:  # jq's own message spans lines (the expression, a caret): keep its first
            first = str(err).splitlines()[0].removeprefix("jq: error: ").rstrip(":")
            raise PydanticCustomError("jq", "does not compile: {err}", {"err": first}) from None
        return expression

    def variables(self) -> set[str]:
        """The version variables the query needs (not `${elapsedTime}`, which the engine fills)."""
        return template_variables(self.query) - {ELAPSED_TIME}


def _variable_value(value: str) -> str:
    if not VARIABLE_VALUE.fullmatch(value):
        raise PydanticCustomError("variable", "must match [A-Za-z0-9_.:/-]+ (it is pasted into PromQL), got {v}",
                                  {"v": repr(value)})
    return value


def _iter8_variables(raw: Any) -> Any:
    """Iter8 lists variables as `[{name, value}]`; a mapping is accepted as it is."""
    if isinstance(raw, list) and all(isinstance(v, Mapping) and set(v) == {"name", "value"} for v in raw):
        return {str(v["name"]): v["value"] for v in raw}
    return {} if raw is None else raw


class Version(Model):
    """One model version under test and the variables its queries are filled with."""

    name: NonEmpty
    variables: Annotated[dict[str, Annotated[str, AfterValidator(_variable_value)]],
                         BeforeValidator(_iter8_variables)] = Field(default_factory=dict)

    def variable_map(self) -> dict[str, str]:
        return dict(self.variables)


class Objective(Model):
    """A limit every version must meet to be feasible."""

    metric: MetricRef
    upper_limit: Number | None = None
    lower_limit: Number | None = None
    rollback_on_failure: StrictBool = True
    """When a candidate breaks this limit, act at once (onFailure); false: Iter8's way, the candidate
    keeps only its exploration share."""
    on_failure: Literal["rollback", "freeze"] = "rollback"
    """rollback: the candidate to 0% and the experiment Failed; freeze: weights held and the experiment
    Paused, for a person to resume, abort or promote (the `control` key)."""

    @model_validator(mode="after")
    def _limits(self) -> Objective:
        if self.upper_limit is None and self.lower_limit is None:
            raise PydanticCustomError("objective", "needs upperLimit or lowerLimit")
        if self.upper_limit is not None and self.lower_limit is not None and self.lower_limit > self.upper_limit:
            raise PydanticCustomError("objective", "lowerLimit {low:g} is above upperLimit {up:g}",
                                      {"low": self.lower_limit, "up": self.upper_limit})
        return self

    def condition(self) -> str:
        """The limit as operators read it, e.g. `mean-latency <= 2000`."""
        parts = []
        if self.lower_limit is not None:
            parts.append(f"{self.metric} >= {self.lower_limit:g}")
        if self.upper_limit is not None:
            parts.append(f"{self.metric} <= {self.upper_limit:g}")
        return " and ".join(parts)


class Reward(Model):
    """A business metric to maximise or minimise; the first reward decides the winner."""

    metric: MetricRef
    preferred_direction: Direction = Direction.HIGH


class QuantileTest(Model):
    """How the `sequential` algorithm tests a quantile objective (a p95 latency) from histogram buckets."""

    objective: MetricRef
    """The objective's metric, e.g. `95th-percentile-tail-latency` (its upperLimit is the limit)."""
    quantile: Annotated[Number, AfterValidator(in_range(0, 1, open_ends=True))]
    """The quantile that metric reports, e.g. 0.95."""
    slow_count: MetricRef
    """Metric counting requests slower than `slowerThan`."""
    slower_than: Annotated[Number, AfterValidator(in_range(0, None, open_ends=True))]
    """The bucket bound (in the objective's units) above which `slowCount` counts: the objective's upperLimit,
    so the test is at the limit both ways (a breach and a proof)."""
    bounds: tuple[Annotated[Number, AfterValidator(in_range(0, None, open_ends=True))], ...] = ()
    """The histogram's bucket bounds in the objective's units, when known: a limit that is none of them is
    refused naming the nearest (components/metrics/latency.py fills Seldon's executor buckets)."""


class SequentialSettings(Model):
    """Settings of the `sequential` algorithm (ignored by `iter8-v2`)."""

    alpha: Annotated[Number, AfterValidator(in_range(0, 1, open_ends=True))] = 0.05
    """Level of the always-valid test: the chance of a false promotion it allows."""
    min_samples: AtLeastOne = 30
    """Reward events per version before any promotion."""
    exploration_floor: Annotated[Whole, AfterValidator(in_range(0, 20))] = 5
    """Weight (percent) every version in play keeps while the experiment runs; one held back by an
    objective's test keeps this / e-value**2, and one with no data yet at least 1%."""
    exposure: Exposure = Exposure.TIME
    """What count-reward events are compared per: elapsed time (same for every version) or requests."""
    quantile_tests: tuple[QuantileTest, ...] = ()
    """Quantile objectives tested on bucket counts; other latency objectives are tested on means."""
    burst_size: Annotated[Whole, AfterValidator(in_range(1, 10_000))] = 1
    """The most requests one incident can fail (or slow down) together that a proof of "within the limit"
    must survive: a pod restart failing every request in flight, a GC pause. The breach side measures
    bursts from the looks' spread; few or no errors show no spread, so the proof counts every
    `burstSize` requests as one (it needs about burstSize times the requests)."""


class ExperimentSettings(Model):
    """How the experiment runs: the same fields, and defaults, in stack config and in the engine's spec."""

    testing_pattern: TestingPattern = TestingPattern.AB
    deployment_pattern: DeploymentPattern = DeploymentPattern.PROGRESSIVE
    algorithm: Algorithm = Algorithm.ITER8_V2
    interval_seconds: AtLeastOne = 10
    """Seconds between iterations (a `pulumi up` sooner changes nothing)."""
    allow_short_interval: StrictBool = False
    """Start even when intervalSeconds is under twice the scrape interval of the metrics' targets (create checks
    it with Prometheus' targets API and otherwise refuses, naming both)."""
    iterations_per_loop: AtLeastOne = 10
    max_loops: AtLeastOne = 1
    max_candidate_weight: Percent = 100
    max_candidate_weight_increment: Percent = 10
    consecutive_error_limit: AtLeastOne = 4
    """Iterations in a row without usable data before the experiment fails back to the baseline."""
    history_limit: Annotated[Whole, AfterValidator(in_range(1, 1000))] = 50
    """History entries kept in the record."""
    sequential: SequentialSettings = SequentialSettings()


class ExperimentSpec(ExperimentSettings):
    """The whole experiment as the engine takes it: versions and metrics filled in, every reference checked."""

    name: NonEmpty
    target: str = ""
    versions: tuple[Version, ...]
    """Baseline first, then the candidates."""
    metrics: tuple[Metric, ...]
    rewards: tuple[Reward, ...] = Field(default=(), validate_default=True)
    objectives: tuple[Objective, ...] = ()
    request_count: MetricRef | None = None

    @model_validator(mode="before")
    @classmethod
    def _many_versions_are_abn(cls, data: Any) -> Any:
        """A/B with more than one candidate is A/B/n (Iter8 does the same)."""
        if isinstance(data, Mapping) and isinstance(data.get("versions"), Sequence) and len(data["versions"]) > 2:
            key = "testing_pattern" if "testing_pattern" in data else "testingPattern"
            if data.get(key, TestingPattern.AB.value) == TestingPattern.AB.value:
                return {**data, key: TestingPattern.ABN.value}
        return data

    @field_validator("versions")
    @classmethod
    def _versions(cls, versions: tuple[Version, ...], info: ValidationInfo) -> tuple[Version, ...]:
        problems: list[tuple[Loc, str]] = []
        pattern = info.data.get("testing_pattern")
        if not versions:
            problems.append(((), "needs at least the baseline"))
        elif pattern is TestingPattern.CANARY and len(versions) != 2:
            problems.append(((), f"testingPattern Canary needs a baseline and exactly one candidate, "
                                 f"got {len(versions)} versions"))
        elif pattern is TestingPattern.CONFORMANCE and len(versions) != 1:
            problems.append(((), f"testingPattern Conformance tests the baseline alone, got {len(versions)} versions"))
        raise_problems("versions", problems, versions)
        return versions

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, metrics: tuple[Metric, ...], info: ValidationInfo) -> tuple[Metric, ...]:
        problems: list[tuple[Loc, str]] = []
        for i, metric in enumerate(metrics):
            for version in info.data.get("versions") or ():
                missing = metric.variables() - set(version.variables)
                if missing:
                    problems.append(((i, "query"), f"uses {', '.join(sorted(missing))}, which version "
                                                   f"{version.name!r} does not define"))
        raise_problems("metrics", problems, metrics)
        return metrics

    @field_validator("rewards")
    @classmethod
    def _rewards(cls, rewards: tuple[Reward, ...], info: ValidationInfo) -> tuple[Reward, ...]:
        pattern = info.data.get("testing_pattern")
        if not rewards and pattern in (TestingPattern.AB, TestingPattern.ABN):
            raise PydanticCustomError("rewards", "testingPattern {pattern} needs at least one reward",
                                      {"pattern": pattern.value})
        return rewards

    @model_validator(mode="wrap")
    @classmethod
    def _cross_references(cls, data: Any, handler: ModelWrapValidatorHandler[ExperimentSpec]) -> ExperimentSpec:
        """`cross_references`, read from the input as given, so they are reported with every other problem
        (pydantic checks across a list's items only once each item is valid)."""
        try:
            spec = handler(data)
        except ValidationError as err:
            raise with_problems(err, cross_references(data)) from None
        raise_problems(cls.__name__, cross_references(spec.model_dump(by_alias=True)), data)
        return spec

    @model_validator(mode="after")
    def _sequential_references(self) -> ExperimentSpec:
        problems: list[tuple[Loc, str]] = []
        if (self.request_count is None and self.algorithm is Algorithm.SEQUENTIAL
                and self.sequential.exposure is Exposure.REQUESTS):
            problems.append((("requestCount",), "sequential.exposure 'requests' needs requestCount (the metric "
                                                "counting requests)"))
        tests = self.sequential.quantile_tests
        where = ("sequential", "quantileTests")
        problems += unknown_metrics([((*where, i, "slowCount"), t.slow_count) for i, t in enumerate(tests)],
                                    {m.name for m in self.metrics})
        limited = {o.metric for o in self.objectives if o.upper_limit is not None}
        problems += [((*where, i, "objective"), f"{t.objective!r} is no objective with an upperLimit")
                     for i, t in enumerate(tests) if t.objective not in limited]
        if self.algorithm is Algorithm.SEQUENTIAL:
            problems += quantile_problems(self) + reward_kind_problems(self)
        raise_problems(type(self).__name__, problems, None)
        return self

    @property
    def baseline(self) -> Version:
        return self.versions[0]

    @property
    def candidates(self) -> tuple[Version, ...]:
        return self.versions[1:]

    @property
    def version_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.versions)

    @property
    def total_iterations(self) -> int:
        return self.iterations_per_loop * self.max_loops

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    def decision_metrics(self) -> tuple[str, ...]:
        """Metrics that a decision reads, in a stable order, without repeats."""
        names: list[str] = []
        for name in [r.metric for r in self.rewards] + [o.metric for o in self.objectives]:
            if name not in names:
                names.append(name)
        return tuple(names)

    def to_wire(self) -> dict[str, Any]:
        """The plain dict the provider receives (camelCase keys, unset optionals left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


QUANTILE_FUNCTION = re.compile(r"\bhistogram_quantile\s*\(")
"""A metric whose query calls this is a quantile estimated from histogram buckets."""


def is_quantile(metric: Metric) -> bool:
    """Declared `kind: quantile`, or its query calls histogram_quantile."""
    return metric.kind is MetricKind.QUANTILE or bool(QUANTILE_FUNCTION.search(metric.query))


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9)


def quantile_problems(spec: ExperimentSpec) -> list[tuple[Loc, str]]:
    """Under `sequential`, a quantile objective is tested at its limit, from the count of requests slower than it:
    a quantile objective needs a quantile test, its limit must be a bucket bound (the nearest are named), and the
    test's slow count must count above the limit itself. A bound above the limit would show a p95 of 4200 ms
    "within" 3000 ms (few requests are slower than 5 s); a bound below would find breaches that are none."""
    tests = {t.objective: (i, t) for i, t in reversed(list(enumerate(spec.sequential.quantile_tests)))}
    known = {m.name: m for m in spec.metrics}
    problems: list[tuple[Loc, str]] = []
    for j, objective in enumerate(spec.objectives):
        limit, metric = objective.upper_limit, known.get(objective.metric)
        if limit is None or metric is None:
            continue
        if objective.metric not in tests:
            if is_quantile(metric):
                problems.append((("objectives", j, "metric"), (
                    f"{objective.metric!r} is a quantile (kind quantile, or a histogram_quantile query): under "
                    "sequential it is tested from bucket counts at its limit, so it needs an entry in "
                    "sequential.quantileTests (the program adds one for the metric library's quantiles)")))
            continue
        i, test = tests[objective.metric]
        if test.bounds and not any(_same(limit, b) for b in test.bounds):
            below = max((b for b in test.bounds if b < limit), default=None)
            above = min((b for b in test.bounds if b > limit), default=None)
            nearest = (f"the nearest bounds are {below:g} and {above:g}" if below is not None and above is not None
                       else f"the largest bound is {below:g}" if below is not None else f"the smallest is {above:g}")
            problems.append((("objectives", j, "upperLimit"), (
                f"{limit:g} is not a bucket bound of the histogram {objective.metric!r} is estimated from "
                f"({nearest}): under sequential a quantile is tested at its limit, so the limit must be a bound")))
        elif not _same(test.slower_than, limit):
            problems.append((("sequential", "quantileTests", i, "slowerThan"), (
                f"is {test.slower_than:g}, not the upperLimit of {objective.metric!r} ({limit:g}): the slow count "
                "must count the requests slower than the limit itself")))
    return problems


def reward_kind_problems(spec: ExperimentSpec) -> list[tuple[Loc, str]]:
    """Under `sequential` a reward without `sampleSize` is tested as a count of events (Poisson-like): only a
    metric declared `kind: events` may be. A sum of values there would make the unit decide (cents give 100
    times the evidence of dollars); with `sampleSize` it is tested on per-look means, which no unit changes."""
    known = {m.name: m for m in spec.metrics}
    problems: list[tuple[Loc, str]] = []
    for i, reward in enumerate(spec.rewards[:1]):
        metric = known.get(reward.metric)
        if metric is None or metric.sample_size or metric.kind is MetricKind.EVENTS:
            continue
        kind = f"kind {metric.kind.value!r}" if metric.kind else "no kind"
        problems.append((("rewards", i, "metric"), (
            f"{reward.metric!r} has {kind} and no sampleSize: under sequential a reward without sampleSize is "
            "tested as a count of events, valid only for a metric declared kind: events; a sum of values "
            "(kind: values) needs sampleSize (the count of the events whose values it sums) and is tested on "
            "per-look means")))
    return problems


def cross_references(data: Any) -> list[tuple[Loc, str]]:
    """Repeated version and metric names, and references to metrics that are not defined, in an experiment as
    given (a mapping, keys camelCase or snake_case): each rule across the experiment's fields, in one place."""
    if not isinstance(data, Mapping):
        return []

    def get(item: Any, key: str) -> Any:
        item = item.model_dump(by_alias=True) if isinstance(item, BaseModel) else item
        return item.get(key, item.get(to_snake(key))) if isinstance(item, Mapping) else None

    def listed(key: str) -> list[Any]:
        raw = get(data, key)
        return list(raw) if isinstance(raw, (list, tuple)) else []

    def ref(value: Any) -> str | None:  # a MetricRef's name, as the model reads it
        return value.rsplit("/", 1)[-1] if isinstance(value, str) and value.strip() else None

    def name(item: Any) -> str | None:
        value = get(item, "name")
        return value if isinstance(value, str) else None

    metrics = listed("metrics")
    problems = [(("versions", *loc), text) for loc, text in duplicates([name(v) for v in listed("versions")])]
    problems += [(("metrics", *loc), text) for loc, text in duplicates([name(m) for m in metrics])]
    refs: list[tuple[Loc, str | None]] = [(("metrics", i, "sampleSize"), ref(get(m, "sampleSize")))
                                          for i, m in enumerate(metrics)]
    refs += [(("rewards", i, "metric"), ref(get(r, "metric"))) for i, r in enumerate(listed("rewards"))]
    refs += [(("objectives", i, "metric"), ref(get(o, "metric"))) for i, o in enumerate(listed("objectives"))]
    refs.append((("requestCount",), ref(get(data, "requestCount"))))
    return problems + unknown_metrics(refs, {n for m in metrics if (n := name(m)) and n.strip()})
