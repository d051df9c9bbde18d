"""How often each decision algorithm promotes the right version, how fast, and at what traffic cost.

Run: `venv/bin/python benchmarks/decisions.py [--scale 0.1] [--workers N]` (or `make bench-decisions`).
No servers: thousands of simulated experiments per scenario (benchmarks/world.py) for the iter8-v2
mode and the sequential algorithm (the real core) and a Flagger-like schedule (benchmarks/contenders.py).
Prints a markdown table, writes docs/decisions.md and docs/decisions.png, and checks the targets.
Every run has its own seed, so the figures do not depend on the number of workers.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.contenders import ITER8_LOOKS, MAX_WEIGHT, STEP, THRESHOLD, Run, run_one
from benchmarks.report import Figures, write_markdown, write_plot
from benchmarks.world import SCENARIOS, Scenario

ALGORITHMS = ("iter8-v2", "flagger", "sequential")
RUNS = {"null-10s": 2000, "null-60s": 2000, "null-600s": 2000}
"""Runs per scenario and algorithm (others: DEFAULT_RUNS); the null ones bound a 5% rate to about +-1%."""
DEFAULT_RUNS = 1000
CHUNK = 100
ROOT = Path(__file__).resolve().parent.parent


def _chunk(args: tuple[str, str, int, int]) -> list[Run]:
    key, algorithm, first, count = args
    scenario = next(s for s in SCENARIOS if s.key == key)
    return [run_one(scenario, algorithm, i) for i in range(first, first + count)]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def figures(scenario: Scenario, algorithm: str, runs: list[Run]) -> Figures:
    base = scenario.versions[0]
    bad = {v.name for v in scenario.versions[1:] if v.reward <= base.reward or v.breaks_objective}
    total = 100.0 * scenario.horizon

    def share(names: tuple[str, ...]) -> float | None:
        if not names:
            return None
        return statistics.fmean(sum(r.seconds[n] for n in names) / total for r in runs)

    times = [r.decided_at for r in runs]
    return Figures(scenario.key, algorithm, len(runs),
                   sum(r.promoted in bad for r in runs) / len(runs),
                   sum(r.promoted == scenario.right for r in runs) / len(runs),
                   statistics.median(times), _quantile(times, 0.9),
                   share(scenario.worse), share(scenario.broken))


def table(rows: list[Figures]) -> str:
    def pct(x: float | None) -> str:
        return "–" if x is None else f"{100 * x:.1f}%"

    lines = ["| scenario | algorithm | runs | false promotion | correct promotion | median time to decision "
             "| p90 time to decision | traffic to worse version | traffic to version breaking an objective |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for f in rows:
        lines.append(f"| {f.scenario} | {f.algorithm} | {f.runs} | {pct(f.false_promotion)} | {pct(f.correct)} "
                     f"| {f.median_time:.0f} s | {f.p90_time:.0f} s | {pct(f.worse_share)} | {pct(f.broken_share)} |")
    return "\n".join(lines)


def targets(rows: list[Figures]) -> list[tuple[str, bool, str]]:
    by = {(f.scenario, f.algorithm): f for f in rows}
    out = []
    for key in ("null-10s", "null-60s", "null-600s"):
        f = by[(key, "sequential")]
        out.append((f"false promotions <= 5% ({key})", f.false_promotion <= 0.05, pct1(f.false_promotion)))
    seed, iter8 = by[("seed", "sequential")], by[("seed", "iter8-v2")]
    out.append(("seed: right version promoted in >= 95% of runs", seed.correct >= 0.95, pct1(seed.correct)))
    out.append(("seed: median time to decision <= 200 s", seed.median_time <= 200, f"{seed.median_time:.0f} s"))
    worse, anchor = seed.worse_share or 0.0, iter8.worse_share or 0.0
    out.append(("seed: less traffic to the worse version than iter8-v2", worse < anchor,
                f"{pct1(worse)} vs {pct1(anchor)}"))
    return out


def pct1(x: float) -> str:
    return f"{100 * x:.1f}%"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every run count (e.g. 0.1 for a smoke run)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-docs", action="store_true", help="print only; do not write docs/")
    args = parser.parse_args()
    started = time.monotonic()
    jobs, counts = [], {}
    for scenario in SCENARIOS:
        runs = max(CHUNK // 10, round(RUNS.get(scenario.key, DEFAULT_RUNS) * args.scale))
        counts[scenario.key] = runs
        for algorithm in ALGORITHMS:
            jobs += [(scenario.key, algorithm, first, min(CHUNK, runs - first)) for first in range(0, runs, CHUNK)]
    results: dict[tuple[str, str], list[Run]] = {}
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        for job, chunk in zip(jobs, pool.map(_chunk, jobs), strict=True):
            results.setdefault((job[0], job[1]), []).extend(chunk)
    rows = [figures(s, a, results[(s.key, a)]) for s in SCENARIOS for a in ALGORITHMS]
    elapsed = time.monotonic() - started
    text = table(rows)
    print(text)
    print()
    checks = targets(rows)
    for name, ok, value in checks:
        print(f"{'PASS' if ok else 'MISS'}  {name}: {value}")
    print(f"\n{sum(counts.values()) * len(ALGORITHMS)} simulated experiments in {elapsed:.0f} s "
          f"with {args.workers} worker(s)")
    if not args.no_docs:
        settings = {"iter8 looks": ITER8_LOOKS, "flagger step": STEP, "flagger max weight": MAX_WEIGHT,
                    "flagger threshold": THRESHOLD}
        write_markdown(ROOT / "docs" / "decisions.md", text, checks, elapsed, args.workers, settings)
        write_plot(ROOT / "docs" / "decisions.png", rows, ALGORITHMS)
        print("wrote docs/decisions.md and docs/decisions.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
