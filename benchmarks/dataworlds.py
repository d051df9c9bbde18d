"""The data-path worlds of the decision benchmark (issue 16): what the decision reads went through Prometheus.

Beside `benchmarks.world` (exact cumulative counts at every look), each world here produces what Seldon's
executor and model server export, per version: `seldon_api_executor_server_requests_seconds` `_count`,
`_sum` and `_bucket` (Seldon's DefBuckets) per `service` and `code`, and `seldon_api_model_feedback_reward_total`.
A Prometheus scrapes them every `scrape` seconds (a random phase, optional timestamp jitter, missed
scrapes, a pod restart that resets the counters), into `benchmarks.promql.TSDB`. Each look is one
`pulumi up` as `rollout/provider.py` runs it: `engine.advance(spec, state, None, now, snapshot_at)` with
`collect_snapshot(spec, client, started_at, now)` on `promql.EmulatedPrometheus`, i.e. the metric
library's queries through `increase()`'s extrapolation and `histogram_quantile`.

Traffic between two scrapes (and two looks) follows the weights the last look returned: Poisson requests
at `request_rate` (times 10x swings when asked), errors Binomial(requests, rate) or in bursts of `burst`
correlated requests (Poisson(requests * rate / burst) bursts), failed requests answered fast (in the first
bucket), the others log-normal latencies (multinomial bucket counts, the `_sum` by its normal
approximation). Rewards: `events` are feedback calls fixed by the load (Poisson per second, the seed's
fortio jobs; reward `user-engagement`), the other kinds are feedback on `feedback_share` of the answered
requests, each with a reward drawn from the distribution (reward `feedback-reward`, a sum of values):
log-normal sigma 1.5, Pareto alpha 1.5, 90% zeros, or 10 points with probability mean/10. A drift
multiplies every version's reward mean alike. The fixed-horizon oracle reads the exact per-look counts.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
import statistics
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cache
from statistics import NormalDist
from typing import Any

from benchmarks.contenders import ALPHA, Run
from benchmarks.promql import NAME, TSDB, EmulatedPrometheus
from benchmarks.sampling import binomial, poisson
from benchmarks.world import Verdicts
from components.metrics.latency import DEFAULT_BUCKETS, quantile_test, slow_request_metric
from components.metrics.seldon import FEEDBACK_REWARD, LIBRARY_METRICS, SERVER
from rollout.core.spec import ExperimentSpec
from rollout.core.state import COMPLETED, FAILED
from rollout.core.templating import ELAPSED_TIME, elapsed_seconds, render
from rollout.core.validation import parse_experiment
from rollout.engine import advance, start
from rollout.metrics import collect
from rollout.metrics.collect import batched_query, collect_snapshot

T0 = 1_700_000_000
"""Unix seconds of the experiment's start."""
ERROR_LIMIT = 0.01
LATENCY_LIMIT = 2000.0
BUCKETS = DEFAULT_BUCKETS
"""Seldon's executor buckets (seconds), docs/seldon-metrics.md; +Inf after them."""
LE = (*(f"{b:g}" for b in BUCKETS), "+Inf")
INCIDENT = (45, 65, 0.30)
"""A shared incident: from 45 s to 65 s after the start every version fails 30% of its requests."""
SLOW_INCIDENT = (45, 65, 50.0)
"""A shared latency incident: from 45 s to 65 s after the start every version's latencies are 50x (median
40 ms -> 2 s: mean and p95 beyond their limits for the incident's requests)."""
FAST_FAILURE_S = 0.003


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


@dataclass(frozen=True)
class Version:
    name: str
    reward: float = 1.0
    """Mean reward: feedback calls per second (events) or mean reward value per feedback call."""
    error_rate: float = 0.001
    median_ms: float = 40.0
    sigma: float = 1.0
    p95_limit: float = 5000.0

    @property
    def p95_ms(self) -> float:
        return self.median_ms * math.exp(1.6449 * self.sigma)

    @property
    def mean_ms(self) -> float:
        return self.median_ms * math.exp(self.sigma**2 / 2)

    @property
    def breaks_objective(self) -> bool:
        return self.error_rate > ERROR_LIMIT or self.mean_ms > LATENCY_LIMIT or self.p95_ms > self.p95_limit

    def bucket_shares(self) -> list[float]:
        cdf = [_phi(math.log(1000 * b / self.median_ms) / self.sigma) for b in BUCKETS]
        return [c - p for c, p in zip([*cdf, 1.0], [0.0, *cdf], strict=True)]


@dataclass(frozen=True)
class DataWorld(Verdicts):
    key: str
    title: str
    versions: tuple[Version, ...]
    cadence: int = 30
    scrape: int = 15
    request_rate: float = 10.0
    reward: str = "events"
    """events | lognormal | pareto | zeros | binary10"""
    feedback: float = 1.0
    """events: feedback calls per second per version at reward 1; otherwise the share of answered requests
    that get feedback."""
    drift: str = ""
    """'' | trend (+-10% over the run) | sine (+-50%, period 5 min), on every version's reward mean alike."""
    swings: bool = False
    """Traffic swings 10x (log-sine, period 4 min)."""
    burst: int = 1
    declared_burst: int = 1
    """The experiment's `sequential.burstSize`: what the user states of the bursts (the bursty worlds state 20)."""
    incident: bool = False
    slow_incident: bool = False
    """From 45 s to 65 s every version answers 50x slower (a shared latency incident: a node, a dependency)."""
    empty_reward_at: int = 0
    """The look (1-based) at which the candidate's reward answer is empty (0: never)."""
    failed_count_at: tuple[int, ...] = ()
    """Looks at which the requestCount query fails."""
    quiet: tuple[int, int] = (0, 0)
    """Looks [a, b) in which the candidate gets no requests (held back); its series stay, flat."""
    jitter_ms: int = 0
    gaps: float = 0.0
    """Share of scrapes missed (per version)."""
    restart_at: int = 0
    """Look after which the candidate's pod restarts (its counters start again from 0)."""
    change_at: int = 0
    """Look from which the experiment's config changes (reward metric, a limit)."""
    looks: int = 0
    """Looks per experiment whatever the budget (0: the budget's)."""
    budgets: tuple[str, ...] = ("10-looks", "60-looks")

    @property
    def traffic_driven(self) -> bool:
        return self.reward != "events"


def pair(base: float = 1.0, cand: float = 1.0, p95_limit: float = 5000.0, **candidate: Any) -> tuple[Version, ...]:
    return (Version("iris-v1", base, p95_limit=p95_limit), Version("iris-v2", cand, p95_limit=p95_limit, **candidate))


def _p95_median(p95_ms: float) -> float:
    return p95_ms / math.exp(1.6449)


BETTER = 1.3
"""A better candidate's reward mean against the baseline's 1 (values worlds); events worlds use the seed's 0.7 vs 1."""
P95_TIGHT = 250.0
"""A p95 limit at a bucket bound (0.25 s), the versions' p95 between bounds (100 ms and 250 ms, 250 and 500)."""

def _worlds() -> tuple[DataWorld, ...]:
    tight = {"p95_limit": P95_TIGHT}
    p95_null = (Version("iris-v1", median_ms=_p95_median(160), **tight),
                Version("iris-v2", median_ms=_p95_median(160), **tight))
    healthy_p95 = (Version("iris-v1", 0.7, median_ms=_p95_median(160), **tight),
                   Version("iris-v2", 1.0, median_ms=_p95_median(200), **tight))
    broken_p95 = (healthy_p95[0], Version("iris-v2", 1.0, median_ms=_p95_median(325), **tight))
    return (
        *(DataWorld(f"values-{kind}-null", f"equal versions, reward a sum of {kind} values", pair(), reward=kind,
                    feedback=0.5) for kind in ("lognormal", "pareto", "zeros", "binary10")),
        DataWorld("values-lognormal-better", "candidate's mean reward 1.3x, log-normal values", pair(1.0, BETTER),
                  reward="lognormal", feedback=0.5),
        DataWorld("drift-trend-null", "equal versions, shared +-10% trend of the reward mean, 10x traffic swings",
                  pair(), reward="lognormal", feedback=0.5, drift="trend", swings=True),
        DataWorld("drift-sine-null", "equal versions, shared +-50% sine of the reward mean, 10x traffic swings",
                  pair(), reward="lognormal", feedback=0.5, drift="sine", swings=True),
        DataWorld("drift-events-null", "equal versions, feedback events with a +-50% shared sine, 10x traffic "
                  "swings", pair(), drift="sine", swings=True),
        DataWorld("empty-reward-null", "equal versions, the candidate's reward answer empty at look 3", pair(),
                  empty_reward_at=3),
        DataWorld("quiet-null", "equal versions, candidate without requests in looks 2-8, scrape jitter 400 ms, "
                  "5% missed scrapes, its pod restarted after look 9", pair(), quiet=(2, 9), jitter_ms=400,
                  gaps=0.05, restart_at=9),
        DataWorld("failed-count-null", "equal versions, the requestCount query fails at looks 2-4", pair(),
                  failed_count_at=(2, 3, 4)),
        DataWorld("failed-count-seed", "the seed's rewards (0.7 vs 1/s), requestCount fails at looks 2-4",
                  pair(0.7, 1.0), failed_count_at=(2, 3, 4)),
        DataWorld("bursty-healthy", "candidate better, errors 0.8x the limit in bursts of 20",
                  pair(0.7, 1.0, error_rate=0.8 * ERROR_LIMIT), burst=20, declared_burst=20),
        DataWorld("bursty-over", "candidate better, errors 1.25x the limit in bursts of 20",
                  pair(0.7, 1.0, error_rate=1.25 * ERROR_LIMIT), burst=20, declared_burst=20),
        DataWorld("bursty-broken", "candidate better, errors 3x the limit in bursts of 20",
                  pair(0.7, 1.0, error_rate=3 * ERROR_LIMIT), burst=20, declared_burst=20),
        DataWorld("bursty-broken-undeclared", "candidate better, errors 3x the limit in bursts of 20, burstSize "
                  "left at 1", pair(0.7, 1.0, error_rate=3 * ERROR_LIMIT), burst=20),
        DataWorld("incident-null", "equal versions, a 20 s incident failing 30% of every version's requests",
                  pair(), incident=True),
        DataWorld("incident-seed", "the seed's rewards, a 20 s incident failing 30% of every version's requests",
                  pair(0.7, 1.0), incident=True),
        DataWorld("slow-incident-null", "equal versions, a 20 s incident making every version's requests 50x slower",
                  pair(), slow_incident=True),
        DataWorld("slow-incident-seed", "the seed's rewards, a 20 s incident making every version 50x slower",
                  pair(0.7, 1.0), slow_incident=True),
        DataWorld("p95-null", "equal versions, p95 160 ms, limit 250 ms (buckets 100/250 ms)", p95_null),
        DataWorld("p95-healthy", "candidate better, p95 200 ms (between buckets), limit 250 ms", healthy_p95),
        DataWorld("p95-broken", "candidate better, p95 325 ms (30% over the 250 ms limit)", broken_p95),
        DataWorld("scrape15-null", "equal versions, scrapes every 15 s, looks every 30 s", pair()),
        DataWorld("scrape30-null", "equal versions, scrapes every 30 s, looks every 60 s", pair(), scrape=30,
                  cadence=60),
        DataWorld("scrape60-null", "equal versions, scrapes every 60 s, looks every 120 s", pair(), scrape=60,
                  cadence=120),
        DataWorld("change-null", "equal versions, reward metric and mean-latency limit changed at look 4", pair(),
                  change_at=4),
        DataWorld("long-null", "equal versions, 1000 looks every 30 s", pair(), looks=1000, budgets=("60-looks",)),
    )


WORLDS = _worlds()
NULL_WORLDS = tuple(w.key for w in WORLDS if w.null)


# ---- the world: traffic, exporters, scrapes -------------------------------------------------------


def _labels(world: DataWorld, version: str, name: str, **extra: str) -> dict[str, str]:
    return {NAME: name, "seldon_deployment_id": "iris", "predictor_name": "default", "kubernetes_namespace": version,
            **extra}


@dataclass
class Exported:
    """One version's exporter counters (cumulative since its pod started)."""

    count: dict[str, float] = field(default_factory=lambda: {"200": 0.0, "500": 0.0, "fb": 0.0})
    latency: dict[str, float] = field(default_factory=lambda: {"200": 0.0, "500": 0.0})
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(LE))
    """Cumulative per `le` of the answered (code 200) requests; failed ones are all in every bucket."""
    reward: float = 0.0


@dataclass
class Look:
    """Exact increments of one version between two looks (what the oracle reads)."""

    requests: int = 0
    errors: int = 0
    slow: int = 0
    """Requests slower than the p95 limit's bucket."""
    latency_ms: float = 0.0
    feedback: int = 0
    reward: float = 0.0


class Simulation:
    def __init__(self, world: DataWorld, rng: random.Random, horizon: float) -> None:
        self.world, self.rng, self.horizon = world, rng, horizon
        self.db = TSDB()
        self.exported = {v.name: Exported() for v in world.versions}
        self.truth = {v.name: v for v in world.versions}
        self.shares = {v.name: v.bucket_shares() for v in world.versions}
        self.now = 0.0
        """Seconds since the start."""
        self.next_scrape = rng.uniform(0, world.scrape)
        self.looks: list[dict[str, Look]] = []
        self.current = {v.name: Look() for v in world.versions}
        self.look_index = 0
        self.slow_index = next(i for i, b in enumerate(BUCKETS) if 1000 * b >= world.versions[0].p95_limit)

    def mean_factor(self, t: float) -> float:
        if self.world.drift == "trend":
            return 1 + 0.1 * (2 * t / self.horizon - 1)
        if self.world.drift == "sine":
            return 1 + 0.5 * math.sin(2 * math.pi * t / 300)
        return 1.0

    def traffic_factor(self, t: float) -> float:
        return 10 ** (0.5 * math.sin(2 * math.pi * t / 240)) if self.world.swings else 1.0

    def _draw_reward(self, mean: float) -> float:
        rng, kind = self.rng, self.world.reward
        if kind == "lognormal":
            return mean * math.exp(rng.gauss(0, 1.5) - 1.125)
        if kind == "pareto":
            return mean * (1 / 3) * float(rng.random() ** (-1 / 1.5))
        if kind == "zeros":
            return 0.0 if rng.random() < 0.9 else 10 * mean * math.exp(rng.gauss(0, 1) - 0.5)
        return 10.0 if rng.random() < mean / 10 else 0.0  # binary10

    def _serve(self, truth: Version, weight: float, t0: float, t1: float) -> None:
        world, rng, dt = self.world, self.rng, t1 - t0
        mid = (t0 + t1) / 2
        quiet = truth.name != world.versions[0].name and world.quiet[0] <= self.look_index + 1 < world.quiet[1]
        lam = 0.0 if quiet else world.request_rate * self.traffic_factor(mid) * weight / 100 * dt
        n = poisson(rng, lam) if lam > 0 else 0
        rate = truth.error_rate
        errors = 0
        if world.incident:
            start, end, share = INCIDENT
            overlap = max(0.0, min(t1, end) - max(t0, start)) / dt
            if overlap > 0:
                hit = binomial(rng, n, overlap)
                errors += binomial(rng, hit, share)
                n_rest = n - errors
            else:
                n_rest = n
        else:
            n_rest = n
        if world.burst > 1:
            errors += min(n_rest, world.burst * poisson(rng, n_rest * rate / world.burst))
        else:
            errors += binomial(rng, n_rest, rate)
        ok = n - errors
        out, look = self.exported[truth.name], self.current[truth.name]
        out.count["200"] += ok
        out.count["500"] += errors
        out.latency["500"] += errors * FAST_FAILURE_S
        look.requests += n
        look.errors += errors
        look.latency_ms += errors * FAST_FAILURE_S * 1000
        slowed = 0
        if world.slow_incident and ok:
            start, end, factor = SLOW_INCIDENT
            overlap = max(0.0, min(t1, end) - max(t0, start)) / dt
            slowed = binomial(rng, ok, overlap) if overlap > 0 else 0
            if slowed:
                slow = dataclasses.replace(truth, median_ms=truth.median_ms * factor)
                self._answered(slow, slowed, slow.bucket_shares(), out, look)
        if ok - slowed:
            self._answered(truth, ok - slowed, self.shares[truth.name], out, look)
        if world.reward == "events":
            k = poisson(rng, truth.reward * world.feedback * self.mean_factor(mid) * dt)
            value = float(k)
        else:
            k = binomial(rng, ok, world.feedback)
            value = sum(self._draw_reward(truth.reward * self.mean_factor(mid)) for _ in range(k))
        out.count["fb"] += k
        out.reward += value
        look.feedback += k
        look.reward += value

    def _answered(self, truth: Version, ok: int, shares: list[float], out: Exported, look: Look) -> None:
        """`ok` answered requests of `truth`'s latency distribution: the `_sum`, the buckets, the slow count."""
        rng = self.rng
        sd = truth.mean_ms * math.sqrt((math.exp(truth.sigma**2) - 1) * ok)
        latency = max(0.0, rng.gauss(truth.mean_ms * ok, sd))
        out.latency["200"] += latency / 1000
        look.latency_ms += latency
        left, rest, cumulative, within = ok, 1.0, 0, 0
        for i, p in enumerate(shares[:-1]):
            got = binomial(rng, left, min(1.0, p / rest)) if left and rest > 0 else 0
            left, rest = left - got, rest - p
            cumulative += got
            out.buckets[i] += cumulative
            if i == self.slow_index:
                within = cumulative
        out.buckets[-1] += ok
        look.slow += ok - within

    def _scrape(self, at: float) -> None:
        world, rng = self.world, self.rng
        stamp_ms = round(1000 * (T0 + at)) + (rng.randint(-world.jitter_ms, world.jitter_ms) if world.jitter_ms else 0)
        for truth in world.versions:
            if world.gaps and rng.random() < world.gaps:
                continue
            out, v = self.exported[truth.name], truth.name
            append = self.db.append
            predictions = {"service": "predictions"}
            for code in ("200", "500"):
                append(_labels(world, v, f"{SERVER}_count", code=code, **predictions), stamp_ms, out.count[code])
                append(_labels(world, v, f"{SERVER}_sum", code=code, **predictions), stamp_ms, out.latency[code])
            for i, le in enumerate(LE):
                append(_labels(world, v, f"{SERVER}_bucket", code="200", le=le, **predictions), stamp_ms,
                       out.buckets[i])
                append(_labels(world, v, f"{SERVER}_bucket", code="500", le=le, **predictions), stamp_ms,
                       out.count["500"])
            append(_labels(world, v, f"{SERVER}_count", code="200", service="feedback"), stamp_ms, out.count["fb"])
            append(_labels(world, v, FEEDBACK_REWARD), stamp_ms, out.reward)

    def run_until(self, t: float, weights: dict[str, float]) -> None:
        """Serve traffic split by `weights` up to `t` (seconds since the start), scraping on the way."""
        while self.now < t:
            step_end = min(t, self.next_scrape)
            if step_end > self.now:
                for truth in self.world.versions:
                    self._serve(truth, weights.get(truth.name, 0.0), self.now, step_end)
                self.now = step_end
            if self.now >= self.next_scrape:
                self._scrape(self.next_scrape)
                self.next_scrape += self.world.scrape

    def close_look(self) -> None:
        self.looks.append(self.current)
        self.current = {v.name: Look() for v in self.world.versions}
        self.look_index += 1
        if self.world.restart_at and self.look_index == self.world.restart_at:
            self.exported[self.world.versions[1].name] = Exported()



# ---- the contenders on a data world ---------------------------------------------------------------


@cache
def world_spec(world: DataWorld, algorithm: str, looks: int, changed: bool = False) -> ExperimentSpec:
    """The experiment a user of the metric library writes for this world (after the mid-run change when
    `changed`: the reward read as `feedback-reward` and mean-latency's limit at 1500 ms)."""
    reward = "user-engagement" if world.reward == "events" else "feedback-reward"
    if changed:
        reward = "feedback-reward" if reward == "user-engagement" else "user-engagement"
    p95_limit = world.versions[0].p95_limit
    data: dict[str, Any] = {
        "name": f"bench-{world.key}",
        "target": "iris",
        "algorithm": algorithm,
        "intervalSeconds": world.cadence,
        "iterationsPerLoop": looks,
        "requestCount": "request-count",
        "rewards": [{"metric": reward, "preferredDirection": "High"}],
        "objectives": [
            {"metric": "mean-latency", "upperLimit": 1500.0 if changed else LATENCY_LIMIT},
            {"metric": "95th-percentile-tail-latency", "upperLimit": p95_limit},
            {"metric": "error-rate", "upperLimit": ERROR_LIMIT},
        ],
        "versions": [{"name": v.name, "variables": {"ns": v.name, "sid": "iris", "predictor": "default"}}
                     for v in world.versions],
        "metrics": [dict(m) for m in LIBRARY_METRICS] + [slow_request_metric(p95_limit)],
        "sequential": {"alpha": ALPHA, "exposure": "time", "burstSize": world.declared_burst,
                       "quantileTests": [quantile_test("95th-percentile-tail-latency", 0.95, p95_limit)]},
    }
    return parse_experiment(data)


def faults(world: DataWorld, spec: ExperimentSpec, look: int, now: float) -> Callable[[str, float], str | None]:
    """What goes wrong at this look: the query strings collect_snapshot sends for the faulty metrics."""
    elapsed = str(elapsed_seconds(T0, now))

    def batched(metric: str) -> str:
        query = spec.metric(metric).query
        return batched_query([render(query, {**v.variable_map(), ELAPSED_TIME: elapsed}) for v in spec.versions])

    failing = batched(spec.request_count) if look in world.failed_count_at and spec.request_count else None
    emptied = batched(spec.rewards[0].metric) if look == world.empty_reward_at else None

    def fault(query: str, _at: float) -> str | None:
        if query == failing:
            return "fail"
        if query == emptied:
            return "empty:1"
        return None
    return fault


def horizon_looks(world: DataWorld, looks: int) -> int:
    return world.looks or looks


def run_data_core(world: DataWorld, algorithm: str, looks: int, rng: random.Random) -> Run:
    """One experiment on the real engine, each look as the provider's update runs it."""
    looks = horizon_looks(world, looks)
    horizon = looks * world.cadence
    sim = Simulation(world, rng, horizon)
    spec = world_spec(world, algorithm, looks)
    state = start(spec, float(T0))
    seconds = dict.fromkeys(spec.version_names, 0.0)
    client = EmulatedPrometheus(sim.db)
    look, verdicts = 0, []
    while not state.finished and look < looks:
        sim.run_until((look + 1) * world.cadence, {k: float(v) for k, v in state.weights.items()})
        for name, weight in state.weights.items():
            seconds[name] += weight * world.cadence
        look += 1
        sim.close_look()
        now = float(T0 + look * world.cadence)
        current = world_spec(world, algorithm, looks, changed=True) if world.change_at and look >= world.change_at \
            else spec
        client.fault = faults(world, current, look, now)

        def snapshot_at(at: Any, current: ExperimentSpec = current, now: float = now) -> Any:
            return collect_snapshot(current, client.as_client(), at.started_at, now)

        state = advance(current, state, None, now, snapshot_at)
        verdicts.append((look * world.cadence, state.winner))
    promoted = state.promoted if state.stage == COMPLETED and state.promoted else spec.baseline.name
    rolled = tuple(re.findall(r"(\S+) broke ", state.messages[0])) if state.stage == FAILED and state.messages \
        else ()
    seconds[promoted] += 100 * (horizon - look * world.cadence)
    decided_at = float(look * world.cadence)
    if algorithm == "sequential":
        for at, winner in reversed(verdicts):
            if winner != promoted:
                break
            decided_at = float(at)
    return Run(promoted, decided_at, seconds, rolled)


def _z(alpha: float) -> float:
    return NormalDist().inv_cdf(1 - alpha)


def _dispersed_breach(shares: list[tuple[int, int]], limit: float, z: float) -> bool:
    """A share above `limit`, its variance inflated by the per-look shares' overdispersion (quasi-binomial)."""
    n = sum(k for k, _ in shares)
    if n == 0:
        return False
    p = sum(x for _, x in shares) / n
    used = [(k, x) for k, x in shares if k]
    phi = 1.0
    if len(used) > 1 and 0 < p < 1:
        phi = max(1.0, sum(k * (x / k - p) ** 2 for k, x in used) / (p * (1 - p) * (len(used) - 1)))
    return (p - limit) / math.sqrt(phi * limit * (1 - limit) / n) > z


def run_data_oracle(world: DataWorld, looks: int, rng: random.Random) -> Run:
    """The fixed-horizon oracle: an even split for the whole budget, then one test per comparison on the exact
    per-look counts: the candidate's reward against the baseline's on paired per-look differences (of feedback
    events, or of mean reward per feedback call), its error and slow shares against their limits with the
    looks' overdispersion, each one-sided at alpha over the comparisons (Bonferroni)."""
    looks = horizon_looks(world, looks)
    horizon = looks * world.cadence
    sim = Simulation(world, rng, horizon)
    names = [v.name for v in world.versions]
    split = {n: 100 / len(names) for n in names}
    for look in range(looks):
        sim.run_until((look + 1) * world.cadence, split)
        sim.close_look()
    base, z_objective = names[0], _z(ALPHA / 3)
    rolled = tuple(n for n in names[1:]
                   if _dispersed_breach([(lk[n].requests, lk[n].errors) for lk in sim.looks], ERROR_LIMIT, z_objective)
                   or _dispersed_breach([(lk[n].requests, lk[n].slow) for lk in sim.looks], 0.05, z_objective))

    def per_look(name: str, lk: dict[str, Look]) -> float | None:
        got = lk[name]
        if world.reward == "events":
            return float(got.feedback)
        return got.reward / got.feedback if got.feedback else None

    z = _z(ALPHA / max(1, len(names) - 1))
    winners = []
    for n in names[1:]:
        if n in rolled:
            continue
        diffs = [c - b for lk in sim.looks if (c := per_look(n, lk)) is not None and (b := per_look(base, lk))
                 is not None]
        if len(diffs) > 2:
            mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
            if sd > 0 and mean / (sd / math.sqrt(len(diffs))) > z:
                winners.append((mean, n))
    promoted = max(winners)[1] if winners else base
    return Run(promoted, float(horizon), {n: split[n] * horizon for n in names}, rolled)


DATA_CONTENDERS = ("iter8-v2", "sequential", "oracle")


class InlineExecutor:
    """A `concurrent.futures` executor that runs each call at submit: collect_snapshot's answers do not depend
    on its threads, and starting 8 threads per look was half of a simulated run's time."""

    def __init__(self, max_workers: int | None = None) -> None:
        del max_workers

    def __enter__(self) -> InlineExecutor:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args))
        return future


def run_world(world: DataWorld, contender: str, looks: int, index: int) -> Run:
    collect.ThreadPoolExecutor = InlineExecutor  # type: ignore[attr-defined,assignment]  # in this process only
    rng = random.Random(f"data/{world.key}/{contender}/{looks}/{index}")
    if contender == "oracle":
        return run_data_oracle(world, looks, rng)
    return run_data_core(world, contender, looks, rng)


def world_by_key(key: str) -> DataWorld:
    found = next((w for w in WORLDS if w.key == key), None)
    if found is None:
        raise KeyError(f"no data world {key!r}")
    return found

