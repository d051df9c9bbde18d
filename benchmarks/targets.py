"""The issue's targets, checked on the benchmark's figures: each line PASS or MISS, with the oracle beside."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist

from benchmarks.bounds import at_the_limit, least_requests, per_request_kl
from benchmarks.dataworlds import WORLDS
from benchmarks.report import Figures, Target, pct
from benchmarks.world import SCENARIOS, Truth

LONG, SEED = "60-looks", "10-looks"
BUDGETS = {SEED: 10, LONG: 60}
"""Looks per experiment in each budget: the seed's `iterationsPerLoop` and a long one."""
NULLS = ("null-10s", "null-60s", "null-600s")


def fixed_horizon_seconds(key: str, power: float, alpha: float = 0.05) -> float:
    """Seconds a one-look z-test on the log rate ratio (even split) needs for `power` at level `alpha`:
    (z_alpha + z_power)^2 * (1/rate_baseline + 1/rate_candidate) / log(ratio)^2, rates in events/s."""
    s = next(x for x in SCENARIOS if x.key == key)
    base, cand = s.versions[0].reward, s.versions[-1].reward
    per = s.request_rate / len(s.versions) if s.traffic_driven else 1.0
    z = NormalDist().inv_cdf(1 - alpha) + NormalDist().inv_cdf(power)
    return z**2 * (1 / (base * per) + 1 / (cand * per)) / math.log(cand / base) ** 2


def floor_note(key: str) -> str:
    """Wald's floor on the bad candidate's traffic (see `benchmarks.bounds`), as a share of the horizon's."""
    s = next(x for x in SCENARIOS if x.key == key)
    bad = s.versions[1]
    total = s.request_rate * s.cadence * BUDGETS[LONG]

    def floor(good: Truth) -> str:
        n = least_requests(per_request_kl(bad, good))
        return f"{n:.2g} of its requests ({100 * n / total:.2g}%)"

    note = (f"Wald's floor for any rule that keeps the healthy candidate and cuts this one, each in >= 99% "
            f"of runs: {floor(Truth('healthy', bad.reward))}")
    if key == "slow":
        note += f"; that also keeps a candidate whose p95 is at the limit: {floor(at_the_limit(bad))}"
    return note


def targets(rows: Sequence[Figures]) -> list[Target]:
    """The targets of the parts that ran: the exact-count scenarios' and the data-path worlds' (issue 16)."""
    by = {(f.budget, f.scenario, f.contender): f for f in rows}
    out = exact_targets(by) if (LONG, "seed", "sequential") in by else []
    return out + world_targets(by)


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval for a share."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _ci(share: float, runs: int) -> str:
    low, high = wilson(round(share * runs), runs)
    return f"{pct(share)} [{pct(low)}, {pct(high)}] in {runs} runs"


def world_targets(by: dict[tuple[str, str, str], Figures]) -> list[Target]:
    """Issue 16's targets on the data-path worlds (benchmarks/dataworlds.py): upper ends of 95% Wilson CIs,
    every figure beside iter8-v2's and the fixed-horizon oracle's from the same run."""
    out = []

    def beside(budget: str, key: str, share: Callable[[Figures], float]) -> str:
        others = [(c, by.get((budget, key, c))) for c in ("iter8-v2", "oracle")]
        return "; ".join(f"{c} {_ci(share(f), f.runs)}" for c, f in others if f is not None)

    def check(name: str, budget: str, key: str, share: Callable[[Figures], float], limit: float) -> None:
        f = by.get((budget, key, "sequential"))
        if f is None:
            return
        high = wilson(round(share(f) * f.runs), f.runs)[1]
        out.append(Target(f"{budget}, {key}: {name} <= {100 * limit:g}% (upper end of the 95% CI)", high <= limit,
                          f"{_ci(share(f), f.runs)}; {beside(budget, key, share)}"))

    def promoted(f: Figures) -> float:
        return f.false_promotion

    def rolled(f: Figures) -> float:
        return f.false_rollback

    for budget in (SEED, LONG):
        for world in WORLDS:
            if world.null:
                check("false promotions of equal versions", budget, world.key, promoted, 0.05)
        check("healthy candidate (errors 0.8x the limit, bursts of 20) rolled back", budget, "bursty-healthy",
              rolled, 0.05)
        check("healthy candidate (p95 200 ms, limit 250 ms) rolled back", budget, "p95-healthy", rolled, 0.05)
        for key in ("incident-seed", "incident-null", "slow-incident-seed", "slow-incident-null"):
            check("a shared incident rolls back the candidate alone", budget, key, rolled, 0.01)
        for key in ("bursty-broken", "p95-broken"):
            check("broken candidate promoted", budget, key, promoted, 0.01)
    return out


def exact_targets(by: dict[tuple[str, str, str], Figures]) -> list[Target]:
    def seq(scenario: str, budget: str = LONG) -> Figures:
        return by[(budget, scenario, "sequential")]

    def oracle(scenario: str, budget: str = LONG) -> str:
        o = by[(budget, scenario, "oracle")]
        return (f"oracle {pct(o.correct)} correct, {pct(o.false_promotion)} false promotions, "
                f"{pct(o.broken_traffic)} traffic to broken, {o.median_decision_s:.0f} s")

    out = []
    for budget in (SEED, LONG):
        for key in NULLS:
            f = seq(key, budget)
            low, high = f.false_promotion_ci
            out.append(Target(f"{budget}, {key}: false promotions of equal versions <= 5% (upper end of the 95% CI)",
                              high <= 0.05, f"{pct(f.false_promotion)} [{pct(low)}, {pct(high)}] in {f.runs} runs; "
                              + oracle(key, budget)))
    small = seq("small")
    out.append(Target("small difference: >= 95% correct within the hour", small.correct >= 0.95,
                      f"{pct(small.correct)}; {oracle('small')}"))
    out.append(Target("small difference: median time to decision <= 20 min", small.median_decision_s <= 1200,
                      f"{small.median_decision_s:.0f} s; a fixed-horizon test needs "
                      f"{fixed_horizon_seconds('small', 0.95):.0f} s for 95% power"))
    seed = seq("seed")
    out.append(Target("seed's rewards: >= 99% correct", seed.correct >= 0.99, f"{pct(seed.correct)}; {oracle('seed')}"))
    out.append(Target("seed's rewards: median time to decision <= 120 s", seed.median_decision_s <= 120,
                      f"{seed.median_decision_s:.0f} s; a fixed-horizon test needs "
                      f"{fixed_horizon_seconds('seed', 0.95):.0f} s for 95% power, "
                      f"{fixed_horizon_seconds('seed', 0.99):.0f} s for 99%"))
    flaky = seq("flaky")
    for key in ("broken", "slow"):
        f, anchor = seq(key), by[(LONG, key, "iter8-v2")]
        fewer = (f.broken_traffic or 0) <= (anchor.broken_traffic or 0)
        out.append(Target(f"{key} candidate: traffic to it <= iter8-v2's", fewer,
                          f"{pct(f.broken_traffic)} vs {pct(anchor.broken_traffic)}; {oracle(key)}; "
                          + floor_note(key)))
        out.append(Target(f"{key} candidate: rolled back or kept out (baseline kept) in >= 99% of runs",
                          f.correct >= 0.99, f"{pct(f.correct)}"))
    out.append(Target("healthy candidate with errors below the limit: false rollbacks <= 1%",
                      flaky.false_rollback <= 0.01,
                      f"{pct(flaky.false_rollback)} vs iter8-v2 {pct(by[(LONG, 'flaky', 'iter8-v2')].false_rollback)}; "
                      + oracle("flaky")))
    return out
