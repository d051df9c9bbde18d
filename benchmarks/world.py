"""The simulated world of the decision benchmark: scenarios, versions, and the metrics they produce.

Between two looks, each version serves Poisson(rate * weight * seconds) prediction requests, of which
Binomial(requests, errorRate) fail; latencies are exponential (their sum is Gamma(requests, mean)).
Reward events (feedback) are either fixed by the load, Poisson(perSecond * seconds) whatever the
weights (the seed's fortio feedback jobs), or driven by traffic, Binomial(requests, perRequest).
Snapshots carry the seed's metrics, cumulative since the start, as Prometheus would return them.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from benchmarks.sampling import binomial, poisson
from rollout.outcomes import NoData, Observed, Outcome, Snapshot

ERROR_LIMIT = 0.01
LATENCY_LIMIT = 2000.0
P95_LIMIT = 5000.0
P95_FACTOR = math.log(20)
"""p95 of an exponential latency, in means."""


@dataclass(frozen=True)
class Truth:
    """What a version really is."""

    name: str
    reward: float
    """Feedback events per second (load-fixed) or per request (traffic-driven)."""
    error_rate: float = 0.001
    latency_ms: float = 40.0

    @property
    def breaks_objective(self) -> bool:
        return self.error_rate > ERROR_LIMIT or self.latency_ms > LATENCY_LIMIT


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    versions: tuple[Truth, ...]
    cadence: int
    """Seconds between two looks (two `pulumi up` runs)."""
    traffic_driven: bool = False
    request_rate: float = 5.0
    """Prediction requests per second over all versions (the seed's fortio load)."""
    looks: int = 60
    """The sequential algorithm's budget of iterations; the horizon of every figure is looks * cadence."""

    @property
    def horizon(self) -> int:
        return self.looks * self.cadence

    @property
    def right(self) -> str:
        """The version that should end up with the traffic: the best feasible one (baseline on ties)."""
        feasible = [v for v in self.versions if not v.breaks_objective]
        best = max(v.reward for v in feasible)
        return next(v.name for v in feasible if v.reward == best)

    @property
    def worse(self) -> tuple[str, ...]:
        """Versions that should not keep traffic (none when all are equal and feasible)."""
        top = self.versions[0]
        if all(v.reward == top.reward and not v.breaks_objective for v in self.versions):
            return ()
        return tuple(v.name for v in self.versions if v.name != self.right)

    @property
    def broken(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.versions if v.breaks_objective)


def versions(*rewards: float, errors: tuple[float, ...] = ()) -> tuple[Truth, ...]:
    return tuple(Truth(f"iris-v{i + 1}", reward, errors[i] if i < len(errors) else 0.001)
                 for i, reward in enumerate(rewards))


SCENARIOS = (
    Scenario("null-10s", "no difference, looks every 10 s", versions(1.0, 1.0), cadence=10),
    Scenario("null-60s", "no difference, looks every 60 s", versions(1.0, 1.0), cadence=60),
    Scenario("null-600s", "no difference, looks every 600 s", versions(1.0, 1.0), cadence=600),
    Scenario("seed", "the seed's rewards: 0.7 vs 1 feedback/s", versions(0.7, 1.0), cadence=10),
    Scenario("small", "small difference: 0.30 vs 0.33 feedback/request", versions(0.30, 0.33),
             cadence=60, traffic_driven=True, request_rate=20.0),
    Scenario("error", "candidate better but 5% errors (limit 1%)", versions(0.7, 1.0, errors=(0.001, 0.05)),
             cadence=10),
    Scenario("three", "three versions: 0.30, 0.25, 0.36 feedback/request", versions(0.30, 0.25, 0.36),
             cadence=30, traffic_driven=True, request_rate=20.0),
)


@dataclass
class Counts:
    requests: int = 0
    errors: int = 0
    feedback: int = 0
    latency_sum: float = 0.0

    def add(self, other: Counts) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.feedback += other.feedback
        self.latency_sum += other.latency_sum


@dataclass
class World:
    """One simulated experiment's versions and their cumulative metrics."""

    scenario: Scenario
    rng: random.Random
    totals: dict[str, Counts] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.totals = {v.name: Counts() for v in self.scenario.versions}

    def advance(self, weights: dict[str, int], seconds: float) -> dict[str, Counts]:
        """Serve `seconds` of traffic split by `weights` (percent); returns what each version got."""
        out = {}
        for truth in self.scenario.versions:
            lam = self.scenario.request_rate * weights.get(truth.name, 0) / 100 * seconds
            requests = poisson(self.rng, lam) if lam > 0 else 0
            got = Counts(requests, binomial(self.rng, requests, truth.error_rate))
            if requests:
                got.latency_sum = self.rng.gammavariate(requests, truth.latency_ms)
            if self.scenario.traffic_driven:
                got.feedback = binomial(self.rng, requests, truth.reward)
            else:
                got.feedback = poisson(self.rng, truth.reward * seconds)
            self.totals[truth.name].add(got)
            out[truth.name] = got
        return out

    def snapshot(self) -> Snapshot:
        snap: Snapshot = {}
        for truth in self.scenario.versions:
            c = self.totals[truth.name]
            n = c.requests
            values: dict[str, Outcome] = {
                "request-count": Observed(float(n)),
                "error-count": Observed(float(c.errors)),
                "user-engagement": Observed(float(c.feedback)),
            }
            if n:
                p95 = truth.latency_ms * (P95_FACTOR + 4.36 / math.sqrt(n) * self.rng.gauss(0.0, 1.0))
                values.update({
                    "error-rate": Observed(c.errors / n),
                    "mean-latency": Observed(c.latency_sum / n),
                    "95th-percentile-tail-latency": Observed(max(0.0, p95)),
                    "engagement-rate": Observed(c.feedback / n),
                })
            else:
                for name in ("error-rate", "mean-latency", "95th-percentile-tail-latency", "engagement-rate"):
                    values[name] = NoData("no requests")
            snap.update({(metric, truth.name): outcome for metric, outcome in values.items()})
        return snap
