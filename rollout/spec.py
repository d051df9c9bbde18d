"""The experiment as typed, frozen values: what the user declared, already validated.

`rollout.validation.parse_experiment` builds these from the plain dict that stack config and the
Pulumi resource inputs carry; everything downstream takes these types only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


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


@dataclass(frozen=True)
class Metric:
    """One metric: a PromQL template read through a jq expression."""

    name: str
    query: str
    """PromQL with `$ns`, `$sid`, `$predictor`, `${elapsedTime}` (and any version variable)."""
    jq_expression: str = ".data.result[0].value[1] | tonumber"
    description: str = ""
    type: str = "Gauge"
    """`Counter` or `Gauge`, as Iter8 types them."""
    units: str = ""
    sample_size: str | None = None
    """Name of the metric that counts the samples behind this one (for example `request-count`)."""


@dataclass(frozen=True)
class Objective:
    """A limit every version must meet to be feasible."""

    metric: str
    upper_limit: float | None = None
    lower_limit: float | None = None
    rollback_on_failure: bool = True
    """When a candidate breaks this limit, send it 0% at once and end the experiment."""

    def condition(self) -> str:
        """The limit as operators read it, e.g. `mean-latency <= 2000`."""
        parts = []
        if self.lower_limit is not None:
            parts.append(f"{self.metric} >= {self.lower_limit:g}")
        if self.upper_limit is not None:
            parts.append(f"{self.metric} <= {self.upper_limit:g}")
        return " and ".join(parts)


@dataclass(frozen=True)
class Reward:
    """A business metric to maximise or minimise; the first reward decides the winner."""

    metric: str
    preferred_direction: Direction = Direction.HIGH


@dataclass(frozen=True)
class Version:
    """One model version under test and the variables its queries are filled with."""

    name: str
    variables: tuple[tuple[str, str], ...] = ()

    def variable_map(self) -> dict[str, str]:
        return dict(self.variables)


class Exposure(StrEnum):
    """What a count reward's events are exposed to (the `sequential` algorithm's rate test)."""

    TIME = "time"
    """The reward load is fixed whatever the weights (the seed's fortio feedback jobs): equal exposure."""
    REQUESTS = "requests"
    """Reward events follow the traffic a version serves: exposure is its `requestCount`."""


@dataclass(frozen=True)
class QuantileTest:
    """How the `sequential` algorithm tests a quantile objective (a p95 latency) from histogram buckets."""

    objective: str
    """The objective's metric, e.g. `95th-percentile-tail-latency` (its upperLimit is the limit)."""
    quantile: float
    """The quantile that metric reports, e.g. 0.95."""
    slow_count: str
    """Metric counting requests slower than the histogram bucket at or above the limit."""


@dataclass(frozen=True)
class SequentialSettings:
    """Settings of the `sequential` algorithm (ignored by `iter8-v2`)."""

    alpha: float = 0.05
    """Level of the always-valid test: the chance of a false promotion it allows."""
    min_samples: int = 30
    """Reward events per version before any promotion."""
    exploration_floor: int = 5
    """Weight (percent) every version keeps while the experiment runs."""
    exposure: Exposure = Exposure.TIME
    """What count-reward events are compared per: elapsed time (same for every version) or requests."""
    quantile_tests: tuple[QuantileTest, ...] = ()
    """Quantile objectives tested on bucket counts; other latency objectives are tested on means."""


@dataclass(frozen=True)
class ExperimentSpec:
    """The whole experiment, validated."""

    name: str
    target: str
    versions: tuple[Version, ...]
    """Baseline first, then the candidates."""
    metrics: tuple[Metric, ...]
    rewards: tuple[Reward, ...] = ()
    objectives: tuple[Objective, ...] = ()
    request_count: str | None = None
    testing_pattern: TestingPattern = TestingPattern.AB
    deployment_pattern: DeploymentPattern = DeploymentPattern.PROGRESSIVE
    algorithm: Algorithm = Algorithm.ITER8_V2
    interval_seconds: int = 20
    iterations_per_loop: int = 15
    max_loops: int = 1
    max_candidate_weight: int = 100
    max_candidate_weight_increment: int = 10
    consecutive_error_limit: int = 4
    history_limit: int = 50
    sequential: SequentialSettings = field(default_factory=SequentialSettings)

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
