"""The issue's targets, checked on the benchmark's figures: each line PASS or MISS, with the oracle beside."""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.report import Figures, Target, pct

LONG, SEED = "60-looks", "10-looks"
NULLS = ("null-10s", "null-60s", "null-600s")


def targets(rows: Sequence[Figures]) -> list[Target]:
    by = {(f.budget, f.scenario, f.contender): f for f in rows}

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
                      f"{small.median_decision_s:.0f} s"))
    seed = seq("seed")
    out.append(Target("seed's rewards: >= 99% correct", seed.correct >= 0.99, f"{pct(seed.correct)}; {oracle('seed')}"))
    out.append(Target("seed's rewards: median time to decision <= 120 s", seed.median_decision_s <= 120,
                      f"{seed.median_decision_s:.0f} s"))
    flaky = seq("flaky")
    for key in ("broken", "slow"):
        f, anchor = seq(key), by[(LONG, key, "iter8-v2")]
        fewer = (f.broken_traffic or 0) <= (anchor.broken_traffic or 0)
        out.append(Target(f"{key} candidate: traffic to it <= iter8-v2's", fewer,
                          f"{pct(f.broken_traffic)} vs {pct(anchor.broken_traffic)}; {oracle(key)}"))
        out.append(Target(f"{key} candidate: rolled back or kept out (baseline kept) in >= 99% of runs",
                          f.correct >= 0.99, f"{pct(f.correct)}"))
    out.append(Target("healthy candidate with errors below the limit: false rollbacks <= 1%",
                      flaky.false_rollback <= 0.01,
                      f"{pct(flaky.false_rollback)} vs iter8-v2 {pct(by[(LONG, 'flaky', 'iter8-v2')].false_rollback)}; "
                      + oracle("flaky")))
    return out
