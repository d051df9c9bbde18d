"""How often each decision algorithm promotes the right version, how fast, and at what traffic cost.

Run: `venv/bin/python benchmarks/decisions.py [--scale 0.1] [--workers N] [--docs]` (or `make
bench-decisions`; `make docs-decisions` also rewrites docs/decisions.md and docs/decisions.png).
No servers: simulated experiments (benchmarks/world.py) for five contenders (benchmarks/contenders.py),
each with the same looks, under two budgets: the seed's 10 looks and a long one of 60. Prints the
tables and the targets, writes build/decisions.json (and build/decisions.md). Every run has its own
seed, so the figures do not depend on the number of workers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.contenders import CONTENDERS, Run, run_one
from benchmarks.report import Figures, Target, render_markdown, table, write_plot
from benchmarks.targets import BUDGETS, targets
from benchmarks.world import SCENARIOS, Scenario

RUNS, NULL_RUNS, NULL_SEQUENTIAL_RUNS = 400, 500, 2000
"""Runs per cell; equal-version scenarios get more (the level's confidence interval), most for sequential."""
CHUNK = 100
ROOT = Path(__file__).resolve().parent.parent


def runs_for(scenario: Scenario, contender: str, scale: float) -> int:
    base = (NULL_SEQUENTIAL_RUNS if contender == "sequential" else NULL_RUNS) if scenario.null else RUNS
    return max(CHUNK // 10, round(base * scale))


def _chunk(args: tuple[str, str, int, int, int]) -> list[Run]:
    key, contender, looks, first, count = args
    scenario = next(s for s in SCENARIOS if s.key == key)
    return [run_one(scenario, contender, looks, i) for i in range(first, first + count)]


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval for a share."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def figures(scenario: Scenario, budget: str, contender: str, runs: list[Run]) -> Figures:
    base = scenario.versions[0]
    bad = {v.name for v in scenario.versions[1:] if v.reward <= base.reward or v.breaks_objective}
    total = 100.0 * BUDGETS[budget] * scenario.cadence

    def share(names: tuple[str, ...]) -> float | None:
        if not names:
            return None
        return statistics.fmean(sum(r.seconds[n] for n in names) / total for r in runs)

    healthy = {v.name for v in scenario.versions if not v.breaks_objective and v.reward >= base.reward}
    false_promotions = sum(r.promoted in bad for r in runs)
    return Figures(
        scenario=scenario.key, budget=budget, contender=contender, runs=len(runs),
        correct=sum(r.promoted == scenario.right for r in runs) / len(runs),
        false_promotion=false_promotions / len(runs),
        false_promotion_ci=wilson(false_promotions, len(runs)),
        false_rollback=sum(any(v in healthy for v in r.rolled_back) for r in runs) / len(runs),
        median_decision_s=statistics.median(r.decided_at for r in runs),
        worse_traffic=share(scenario.worse), broken_traffic=share(scenario.broken))


def as_json(rows: list[Figures]) -> dict[str, object]:
    out: dict[str, dict[str, dict[str, dict[str, object]]]] = {}
    for f in rows:
        out.setdefault(f.budget, {}).setdefault(f.scenario, {})[f.contender] = {
            "runs": f.runs, "correct": f.correct, "false_promotion": f.false_promotion,
            "false_rollback": f.false_rollback, "median_decision_s": f.median_decision_s,
            "worse_traffic": f.worse_traffic, "broken_traffic": f.broken_traffic}
    return {"budgets": out}


def simulate(scale: float, workers: int) -> list[Figures]:
    jobs = []
    for scenario in SCENARIOS:
        for looks in BUDGETS.values():
            for contender in CONTENDERS:
                runs = runs_for(scenario, contender, scale)
                jobs += [(scenario.key, contender, looks, first, min(CHUNK, runs - first))
                         for first in range(0, runs, CHUNK)]
    results: dict[tuple[str, str, int], list[Run]] = {}
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        for job, chunk in zip(jobs, pool.map(_chunk, jobs), strict=True):
            results.setdefault((job[0], job[1], job[2]), []).extend(chunk)
    return [figures(s, budget, c, results[(s.key, c, looks)])
            for budget, looks in BUDGETS.items() for s in SCENARIOS for c in CONTENDERS]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every run count (0.1 for a smoke run)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=ROOT / "build", help="where decisions.json and .md go")
    parser.add_argument("--docs", action="store_true", help="also rewrite docs/decisions.md and docs/decisions.png")
    args = parser.parse_args()
    started = time.monotonic()
    rows = simulate(args.scale, args.workers)
    elapsed = time.monotonic() - started
    checks: list[Target] = targets(rows)
    for budget in BUDGETS:
        print(f"\n## Budget: {budget}\n\n{table([f for f in rows if f.budget == budget])}")
    print()
    for t in checks:
        print(f"{'PASS' if t.ok else 'MISS'}  {t.name}: {t.value}")
    experiments = sum(f.runs for f in rows)
    print(f"\n{experiments} simulated experiments in {elapsed:.0f} s with {args.workers} worker(s)")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "decisions.json").write_text(json.dumps(as_json(rows), indent=1) + "\n")
    text = render_markdown(rows, checks, elapsed, args.workers, experiments)
    (args.out / "decisions.md").write_text(text)
    print(f"wrote {args.out / 'decisions.json'} and {args.out / 'decisions.md'}")
    if args.docs:
        (ROOT / "docs" / "decisions.md").write_text(text)
        write_plot(ROOT / "docs" / "decisions.png", rows)
        print("wrote docs/decisions.md and docs/decisions.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
