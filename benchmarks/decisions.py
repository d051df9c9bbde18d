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
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.contenders import CONTENDERS, Run, run_one
from benchmarks.dataworlds import DATA_CONTENDERS, WORLDS, DataWorld, run_world, world_by_key
from benchmarks.report import Figures, Target, data_section, render_markdown, replace_data_section, table, write_plot
from benchmarks.targets import BUDGETS, targets, wilson
from benchmarks.world import SCENARIOS, Scenario

RUNS, NULL_RUNS, NULL_SEQUENTIAL_RUNS = 400, 500, 2000
"""Runs per cell; equal-version scenarios get more (the level's confidence interval), most for sequential."""
DATA_RUNS, DATA_SEQUENTIAL_RUNS, DATA_NULL_SEQUENTIAL_RUNS, LONG_RUNS = 100, 400, 800, 100
"""Runs per cell of a data-path world (benchmarks/dataworlds.py): 400 for sequential, enough for a 95% CI whose
upper end is under 1% when it never errs; 800 in the null worlds, whose false promotions (0-3% at 400 runs)
need them for an upper end under 5% at about 3% (the 1000-look world included: sequential ends it early);
the other contenders' runs of the 1000-look world (7 s a run) are fewer."""
QUICK_SCALE = 0.1
"""`--quick`: every cell at this share of its runs (at least MIN_RUNS): a few minutes on 2 cores, figures only
indicative (the CIs are too wide for the <= 1% targets)."""
MIN_RUNS = 20
CHUNK = 100
ROOT = Path(__file__).resolve().parent.parent


def runs_for(scenario: Scenario | DataWorld, contender: str, scale: float) -> int:
    if isinstance(scenario, DataWorld):
        if contender == "sequential":
            base = DATA_NULL_SEQUENTIAL_RUNS if scenario.null else DATA_SEQUENTIAL_RUNS
        else:
            base = LONG_RUNS if scenario.looks else DATA_RUNS
    else:
        base = (NULL_SEQUENTIAL_RUNS if contender == "sequential" else NULL_RUNS) if scenario.null else RUNS
    return max(MIN_RUNS if isinstance(scenario, DataWorld) else CHUNK // 10, round(base * scale))


def _chunk(args: tuple[str, str, int, int, int]) -> list[Run]:
    key, contender, looks, first, count = args
    if key.startswith("data:"):
        world = world_by_key(key.removeprefix("data:"))
        return [run_world(world, contender, looks, i) for i in range(first, first + count)]
    scenario = next(s for s in SCENARIOS if s.key == key)
    return [run_one(scenario, contender, looks, i) for i in range(first, first + count)]


def figures(scenario: Scenario | DataWorld, budget: str, contender: str, runs: list[Run]) -> Figures:
    base = scenario.versions[0]
    bad = {v.name for v in scenario.versions[1:] if v.reward <= base.reward or v.breaks_objective}
    looks = scenario.looks if isinstance(scenario, DataWorld) and scenario.looks else BUDGETS[budget]
    total = 100.0 * looks * scenario.cadence

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


def _cells(worlds: bool, exact: bool) -> list[tuple[str, Scenario | DataWorld, str, str, int]]:
    """(job key, scenario or world, budget, contender, looks) of every cell to run."""
    cells: list[tuple[str, Scenario | DataWorld, str, str, int]] = []
    for budget, looks in BUDGETS.items():
        if exact:
            cells += [(s.key, s, budget, c, looks) for s in SCENARIOS for c in CONTENDERS]
        if worlds:
            cells += [(f"data:{w.key}", w, budget, c, looks) for w in WORLDS if budget in w.budgets
                      for c in DATA_CONTENDERS]
    return cells


def rows_from_json(data: dict[str, Any]) -> list[Figures]:
    """The Figures `as_json` wrote (schema: budgets -> scenario -> contender -> figures)."""
    rows = []
    for budget, scenarios in data["budgets"].items():
        for scenario, contenders in scenarios.items():
            for contender, f in contenders.items():
                rows.append(Figures(
                    scenario=scenario, budget=budget, contender=contender, runs=f["runs"], correct=f["correct"],
                    false_promotion=f["false_promotion"],
                    false_promotion_ci=wilson(round(f["false_promotion"] * f["runs"]), f["runs"]),
                    false_rollback=f["false_rollback"], median_decision_s=f["median_decision_s"],
                    worse_traffic=f["worse_traffic"], broken_traffic=f["broken_traffic"]))
    return rows


def simulate(scale: float, workers: int, worlds: bool = True, exact: bool = True) -> list[Figures]:
    cells = _cells(worlds, exact)
    jobs = []
    for key, scenario, _budget, contender, looks in cells:
        runs = runs_for(scenario, contender, scale)
        chunk = CHUNK if not isinstance(scenario, DataWorld) else 10 if scenario.looks else 25
        jobs += [(key, contender, looks, first, min(chunk, runs - first)) for first in range(0, runs, chunk)]
    jobs.sort(key=lambda job: -job[4] * (1000 if job[0] == "data:long-null" else job[2]))  # long ones first
    results: dict[tuple[str, str, int], list[Run]] = {}
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        for job, chunk_runs in zip(jobs, pool.map(_chunk, jobs), strict=True):
            results.setdefault((job[0], job[1], job[2]), []).extend(chunk_runs)
    return [figures(s, budget, c, results[(key, c, looks)]) for key, s, budget, c, looks in cells]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every run count (0.1 for a smoke run)")
    parser.add_argument("--quick", action="store_true", help=f"--scale {QUICK_SCALE} (a few minutes; indicative)")
    parser.add_argument("--only", choices=("exact", "worlds"), help="only the exact-count scenarios, or only the "
                        "data-path worlds (the targets of the other part are then not checked)")
    parser.add_argument("--docs-worlds", action="store_true",
                        help="rewrite only the data-path worlds' section of docs/decisions.md")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=ROOT / "build", help="where decisions.json and .md go")
    parser.add_argument("--docs", action="store_true", help="also rewrite docs/decisions.md and docs/decisions.png")
    parser.add_argument("--from-json", type=Path, help="no simulation: the tables, targets and pages of an earlier "
                        "run's decisions.json (the CIs recomputed from its shares and run counts)")
    parser.add_argument("--elapsed", type=float, default=0.0, help="with --from-json: that run's seconds, for the page")
    parser.add_argument("--revision", help="the commit the figures ran on, for the page (default: HEAD's)")
    args = parser.parse_args()
    started = time.monotonic()
    scale = QUICK_SCALE if args.quick else args.scale
    if args.from_json:
        rows, elapsed = rows_from_json(json.loads(args.from_json.read_text())), args.elapsed
    else:
        rows = simulate(scale, args.workers, worlds=args.only != "exact", exact=args.only != "worlds")
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
    exact = [f for f in rows if f.scenario in {s.key for s in SCENARIOS}]
    revision = args.revision or subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                               text=True, check=False).stdout.strip() or "unknown"
    worlds_section = data_section(rows, checks, elapsed, args.workers, revision)
    text = render_markdown(exact, [t for t in checks if t.name not in worlds_section], elapsed, args.workers,
                           experiments) if exact else ""
    text = replace_data_section(text, worlds_section)
    (args.out / "decisions.md").write_text(text)
    print(f"wrote {args.out / 'decisions.json'} and {args.out / 'decisions.md'}")
    if args.docs_worlds:
        page = ROOT / "docs" / "decisions.md"
        page.write_text(replace_data_section(page.read_text(), worlds_section))
        print("wrote the data-path worlds' section of docs/decisions.md")
    if args.docs and exact:
        (ROOT / "docs" / "decisions.md").write_text(text)
        write_plot(ROOT / "docs" / "decisions.png", exact)
        print("wrote docs/decisions.md and docs/decisions.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
