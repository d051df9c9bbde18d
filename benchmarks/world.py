"""The simulated world of the decision benchmark: scenarios, versions, and the metrics they produce.

Between two looks, each version serves Poisson(rate * weight * seconds) prediction requests, of which
Binomial(requests, errorRate) fail. Latencies are log-normal (long-tailed) and reach the decision
only as Prometheus has them: counts per histogram bucket (the client's default buckets, drawn as a
multinomial) and the `_sum` of latencies (its normal approximation). `95th-percentile-tail-latency`
is `histogram_quantile` of the cumulative buckets, interpolated as Prometheus does. Reward events
(feedback) are either fixed by the load, Poisson(perSecond * seconds) whatever the weights (the
seed's fortio feedback jobs), or driven by traffic, Binomial(requests, perRequest). Snapshots carry
the metrics cumulative since the start, as the metric library's queries return them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from benchmarks.sampling import binomial, poisson
from rollout.core.outcomes import NoData, Observed, Outcome, Snapshot

ERROR_LIMIT = 0.01
LATENCY_LIMIT = 2000.0
"""mean-latency's upper limit (ms)."""
P95_LIMIT = 5000.0
"""95th-percentile-tail-latency's upper limit (ms): a bucket bound, so the slow count is exact."""
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""The Prometheus client's default histogram buckets (seconds); the last bucket is +Inf."""
SLOW_COUNT = "requests-slower-than-5000ms"
SLOW_BUCKET = BUCKETS.index(P95_LIMIT / 1000)


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


@dataclass(frozen=True)
class Truth:
    """What a version really is."""

    name: str
    reward: float
    """Feedback events per second (load-fixed) or per request (traffic-driven)."""
    error_rate: float = 0.001
    median_ms: float = 40.0
    sigma: float = 1.0
    """Log-normal latency: median and log-scale spread (p95 = median * exp(1.645 sigma))."""

    @property
    def mean_ms(self) -> float:
        return self.median_ms * math.exp(self.sigma**2 / 2)

    @property
    def p95_ms(self) -> float:
        return self.median_ms * math.exp(1.6449 * self.sigma)

    @property
    def breaks_objective(self) -> bool:
        return self.error_rate > ERROR_LIMIT or self.mean_ms > LATENCY_LIMIT or self.p95_ms > P95_LIMIT

    def bucket_shares(self) -> list[float]:
        """Probability of each bucket (the last one: above the largest bound)."""
        cdf = [_phi(math.log(1000 * b / self.median_ms) / self.sigma) for b in BUCKETS]
        return [c - p for c, p in zip([*cdf, 1.0], [0.0, *cdf], strict=True)]


class TrueVersion(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def reward(self) -> float: ...

    @property
    def breaks_objective(self) -> bool: ...


class Verdicts:
    """What should happen in a world, from its versions' truths (the exact worlds' and the data-path worlds')."""

    if TYPE_CHECKING:
        @property
        def versions(self) -> Sequence[TrueVersion]: ...

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

    @property
    def null(self) -> bool:
        return not self.worse


@dataclass(frozen=True)
class Scenario(Verdicts):
    key: str
    title: str
    versions: tuple[Truth, ...]
    cadence: int
    """Seconds between two looks (two `pulumi up` runs)."""
    traffic_driven: bool = False
    request_rate: float = 5.0
    """Prediction requests per second over all versions (the seed's fortio load)."""



def versions(*rewards: float, candidate: dict[str, float] | None = None) -> tuple[Truth, ...]:
    """Versions iris-v1 (baseline), iris-v2, ... with these rewards; `candidate` overrides iris-v2."""
    out = [Truth(f"iris-v{i + 1}", reward) for i, reward in enumerate(rewards)]
    if candidate:
        out[1] = Truth(out[1].name, out[1].reward, **candidate)
    return tuple(out)


SCENARIOS = (
    Scenario("seed", "the seed's rewards: 0.7 vs 1 feedback/s", versions(0.7, 1.0), cadence=10),
    Scenario("null-10s", "no difference, looks every 10 s", versions(1.0, 1.0), cadence=10),
    Scenario("null-60s", "no difference, looks every 60 s", versions(1.0, 1.0), cadence=60),
    Scenario("null-600s", "no difference, looks every 600 s", versions(1.0, 1.0), cadence=600),
    Scenario("small", "small difference: 0.30 vs 0.33 feedback/request", versions(0.30, 0.33),
             cadence=60, traffic_driven=True, request_rate=20.0),
    Scenario("broken", "candidate better but 3% errors (3x the 1% limit)",
             versions(0.7, 1.0, candidate={"error_rate": 0.03}), cadence=10),
    Scenario("slow", "candidate better but p95 8.5 s (limit 5 s), log-normal latencies",
             versions(0.7, 1.0, candidate={"median_ms": 1000.0, "sigma": 1.3}), cadence=10),
    Scenario("flaky", "candidate better, 0.5% errors (below the 1% limit)",
             versions(0.7, 1.0, candidate={"error_rate": 0.005}), cadence=10),
    Scenario("three", "three versions: 0.30, 0.25, 0.36 feedback/request", versions(0.30, 0.25, 0.36),
             cadence=30, traffic_driven=True, request_rate=20.0),
)


@dataclass
class Counts:
    requests: int = 0
    errors: int = 0
    feedback: int = 0
    latency_sum: float = 0.0
    """Milliseconds."""
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))

    def add(self, other: Counts) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.feedback += other.feedback
        self.latency_sum += other.latency_sum
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]


def histogram_quantile(q: float, buckets: list[int]) -> float | None:
    """Prometheus' histogram_quantile on per-bucket counts, in ms (None without observations)."""
    total = sum(buckets)
    if total == 0:
        return None
    rank, seen = q * total, 0
    for i, count in enumerate(buckets):
        if seen + count >= rank and count > 0:
            if i == len(BUCKETS):
                return 1000 * BUCKETS[-1]
            low = 0.0 if i == 0 else BUCKETS[i - 1]
            return 1000 * (low + (BUCKETS[i] - low) * (rank - seen) / count)
        seen += count
    return 1000 * BUCKETS[-1]


@dataclass
class World:
    """One simulated experiment's versions and their cumulative metrics."""

    scenario: Scenario
    rng: random.Random
    totals: dict[str, Counts] = field(default_factory=dict)
    shares: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.totals = {v.name: Counts() for v in self.scenario.versions}
        self.shares = {v.name: v.bucket_shares() for v in self.scenario.versions}

    def serve(self, truth: Truth, requests: int, seconds: float) -> Counts:
        rng = self.rng
        got = Counts(requests, binomial(rng, requests, truth.error_rate))
        if requests:
            sd = truth.mean_ms * math.sqrt((math.exp(truth.sigma**2) - 1) * requests)
            got.latency_sum = max(0.0, rng.gauss(truth.mean_ms * requests, sd))
            left, rest = requests, 1.0
            for i, p in enumerate(self.shares[truth.name][:-1]):
                got.buckets[i] = binomial(rng, left, min(1.0, p / rest)) if left and rest > 0 else 0
                left, rest = left - got.buckets[i], rest - p
            got.buckets[-1] = left
        if self.scenario.traffic_driven:
            got.feedback = binomial(rng, requests, truth.reward)
        else:
            got.feedback = poisson(rng, truth.reward * seconds)
        return got

    def advance(self, weights: Mapping[str, float], seconds: float) -> dict[str, Counts]:
        """Serve `seconds` of traffic split by `weights` (percent); returns what each version got."""
        out = {}
        for truth in self.scenario.versions:
            lam = self.scenario.request_rate * weights.get(truth.name, 0) / 100 * seconds
            got = self.serve(truth, poisson(self.rng, lam) if lam > 0 else 0, seconds)
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
                SLOW_COUNT: Observed(float(sum(c.buckets[SLOW_BUCKET + 1:]))),
            }
            p95 = histogram_quantile(0.95, c.buckets)
            if n and p95 is not None:
                values.update({
                    "error-rate": Observed(c.errors / n),
                    "mean-latency": Observed(c.latency_sum / n),
                    "95th-percentile-tail-latency": Observed(p95),
                    "engagement-rate": Observed(c.feedback / n),
                })
            else:
                for name in ("error-rate", "mean-latency", "95th-percentile-tail-latency", "engagement-rate"):
                    values[name] = NoData("no requests")
            snap.update({(metric, truth.name): outcome for metric, outcome in values.items()})
        return snap
