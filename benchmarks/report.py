"""The decision benchmark's outputs: the tables, the markdown page (build/ and, when asked, docs/) and the plot."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.contenders import CONTENDERS, MARGINAL_SCORE, MAX_WEIGHT, PASS_SCORE, SAMPLES, STEP, THRESHOLD
from benchmarks.world import ERROR_LIMIT, LATENCY_LIMIT, P95_LIMIT, SCENARIOS


@dataclass(frozen=True)
class Figures:
    scenario: str
    budget: str
    contender: str
    runs: int
    correct: float
    false_promotion: float
    false_promotion_ci: tuple[float, float]
    false_rollback: float
    median_decision_s: float
    worse_traffic: float | None
    broken_traffic: float | None


@dataclass(frozen=True)
class Target:
    name: str
    ok: bool
    value: str


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def table(rows: Sequence[Figures]) -> str:
    lines = ["| scenario | contender | runs | correct | false promotion | false rollback | median time to decision "
             "| traffic to worse | traffic to broken |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for f in rows:
        lines.append(f"| {f.scenario} | {f.contender} | {f.runs} | {pct(f.correct)} | {pct(f.false_promotion)} "
                     f"| {pct(f.false_rollback)} | {f.median_decision_s:.0f} s | {pct(f.worse_traffic)} "
                     f"| {pct(f.broken_traffic)} |")
    return "\n".join(lines)


def _level(rows: Sequence[Figures]) -> str:
    lines = ["| budget | scenario | runs | false promotions | 95% CI (Wilson) |", "|---|---|---:|---:|---|"]
    for f in rows:
        if f.contender == "sequential" and f.scenario.startswith("null"):
            low, high = f.false_promotion_ci
            lines.append(f"| {f.budget} | {f.scenario} | {f.runs} | {pct(f.false_promotion)} "
                         f"| {pct(low)} – {pct(high)} |")
    return "\n".join(lines)


def _scenarios() -> str:
    lines = ["| scenario | versions (baseline first) | reward events | look every |", "|---|---|---|---:|"]
    for s in SCENARIOS:
        unit = "per request" if s.traffic_driven else "per second"
        events = (f"follow traffic ({s.request_rate:g} requests/s)" if s.traffic_driven
                  else f"fixed by load ({s.request_rate:g} requests/s)")
        rewards = ", ".join(f"{v.reward:g}" for v in s.versions)
        lines.append(f"| {s.key}: {s.title} | {rewards} {unit} | {events} | {s.cadence} s |")
    return "\n".join(lines)


BEGIN = "<!-- data-path worlds: begin (benchmarks/decisions.py --docs-worlds) -->"
END = "<!-- data-path worlds: end -->"


def _world_rows() -> str:
    from benchmarks.dataworlds import WORLDS

    lines = ["| world | what it holds | look every / scrape every | looks |", "|---|---|---:|---:|"]
    for w in WORLDS:
        lines.append(f"| {w.key} | {w.title} | {w.cadence} s / {w.scrape} s | {w.looks or 'budget'} |")
    return "\n".join(lines)


def data_section(rows: Sequence[Figures], checks: Sequence[Target], elapsed: float, workers: int,
                 revision: str = "") -> str:
    """The data-path worlds' figures (issue 16) between markers, so that `--docs-worlds` can replace them alone."""
    from benchmarks.dataworlds import WORLDS

    keys = {w.key for w in WORLDS}
    ours = [f for f in rows if f.scenario in keys]
    if not ours:
        return ""
    budgets = list(dict.fromkeys(f.budget for f in ours))
    tables = "\n\n".join(f"#### Budget: {b}\n\n{table([f for f in ours if f.budget == b])}" for b in budgets)
    names = tuple(f"{b}, {k}:" for b in budgets for k in keys)
    verdicts = "\n".join(f"- {'PASS' if t.ok else 'MISS'}: {t.name}: {t.value}" for t in checks
                         if t.name.startswith(names))
    runs = sum(f.runs for f in ours)
    fewest = min(f.runs for f in ours if f.contender == "sequential")
    if fewest < 400:
        runs_note = (f" Sequential cells ran {fewest} times or more: with none wrong, the upper end of the 95% CI "
                     f"is {100 * 3.84 / (fewest + 3.84):.1f}%, so a <= 1% target cannot PASS below 381 runs, nor a "
                     "<= 5% one below 73 (a MISS on that count alone says nothing against the algorithm).")
    else:
        runs_note = ""
    return f"""{BEGIN}
## Data-path worlds (issue 16): the decision reads what Prometheus answers

Each look runs as the provider's update does (`engine.advance` on `collect_snapshot`), the metric library's
queries answered by `benchmarks/promql.py`: Prometheus v2.42's `increase()`/`rate()` and `histogram_quantile`
on counters scraped every 15/30/60 s, checked against a real Prometheus to the last bit
(tests/test_promql_emulation.py). iter8-v2 and the fixed-horizon oracle (even split, exact per-look counts)
run beside `sequential` on the same worlds. Last run: {runs} simulated experiments in {elapsed:.0f} s with
{workers} worker(s), on commit {revision or 'unknown'}
(`venv/bin/python benchmarks/decisions.py --only worlds --docs-worlds`).{runs_note}

{_world_rows()}

### Targets (upper end of the 95% Wilson CI; sequential, then iter8-v2 and the oracle)

{verdicts}

### Tables

{tables}
{END}
"""


def replace_data_section(page: str, section: str) -> str:
    """`page` with its data-path worlds' section replaced by `section` (inserted before 'How to read the tables'
    when it has none)."""
    if BEGIN in page and END in page:
        head, rest = page.split(BEGIN, 1)
        return head + section.rstrip("\n") + rest.split(END, 1)[1]
    anchor = "## How to read the tables"
    if anchor in page:
        head, rest = page.split(anchor, 1)
        return head + section + "\n" + anchor + rest
    return page.rstrip("\n") + "\n\n" + section


def render_markdown(rows: Sequence[Figures], checks: Sequence[Target], elapsed: float, workers: int,
                    experiments: int) -> str:
    budgets = list(dict.fromkeys(f.budget for f in rows))
    tables = "\n\n".join(f"### Budget: {b}\n\n{table([f for f in rows if f.budget == b])}" for b in budgets)
    verdicts = "\n".join(f"- {'PASS' if t.ok else 'MISS'}: {t.name}: {t.value}" for t in checks)
    return f"""# Decision benchmark: iter8-v2, Flagger-like, Kayenta-like, sequential, and a fixed-horizon oracle

Generated by `make docs-decisions` (`benchmarks/decisions.py --docs`; `make bench-decisions` writes the
same page and `build/decisions.json` under build/ only). Last run: {experiments} simulated experiments
in {elapsed:.0f} s with {workers} worker(s). Every figure comes from simulated experiments with seeded
random numbers: the same code gives the same tables.

Every contender gets the same looks in a scenario: the budget is 10 looks (the seed's
`iterationsPerLoop`) or 60 looks, at the scenario's cadence; the horizon of every figure is
looks x cadence.

{tables}

![Figures per scenario and contender, 60-looks budget](decisions.png)

## Targets

{verdicts}

## Level under the null (sequential, equal versions)

{_level(rows)}

## How to read the tables

- **correct**: share of runs that ended with the right version: the best version that meets its
  objectives, or the baseline when no candidate is better or every better one breaks an objective.
- **false promotion**: share of runs that promoted a candidate that is not better than the baseline
  (equal or worse reward) or that breaks an objective. With equal versions any promotion counts.
- **false rollback**: share of runs that rolled back (removed for failed checks) a version that meets
  every objective and whose reward is not below the baseline's.
- **median time to decision**: seconds from the start to the look at which the outcome is fixed: for
  the sequential algorithm the first look from which its verdict holds to the end (a winner, or the
  baseline once no candidate can win); for the others the end of the experiment (completion,
  rollback or promotion); the budget's end when nothing was decided.
- **traffic to worse / to broken**: share of the traffic (weight x time over the horizon; after an
  experiment ends its promoted version takes 100%) that went to versions other than the right one /
  to versions that break an objective. "–" when there are none.

## Scenarios

{_scenarios()}

Requests are Poisson; healthy versions fail 0.1% of requests and have log-normal latencies (median
40 ms, log-sd 1: mean 66 ms, p95 207 ms). The objectives are the seed's: `mean-latency` <= {LATENCY_LIMIT:g}
ms, `95th-percentile-tail-latency` <= {P95_LIMIT:g} ms, `error-rate` <= {ERROR_LIMIT:g}. Latencies reach every
contender as Prometheus has them: counts in the client's default histogram buckets (p95 by
`histogram_quantile`'s interpolation) and the sum. The slow candidate (median 1 s, log-sd 1.3) has a
p95 of 8.5 s and a mean of 2.3 s; 10.8% of its requests are slower than 5 s.

## Contenders

- **iter8-v2**: the project's core in Iter8 parity mode: Progressive weights, caps 100/10,
  objectives checked on each single reading, rollback on failure, `iterationsPerLoop` = the budget.
  With traffic-driven rewards its reward is feedback per request (`engagement-rate`).
- **flagger**: a Flagger-like canary: {STEP}% more per passing look up to {MAX_WEIGHT}%, then promotion; checks on
  the last interval (error rate, mean latency and p95 within the limits, reward not below the
  baseline's); {THRESHOLD} failed checks roll back. With three versions both candidates step in parallel.
- **kayenta**: the same steps judged like Kayenta: each look a one-sided Mann-Whitney U test per metric
  (reward, error rate, mean latency; {SAMPLES} samples per interval, one per step) at p < 0.05; the score
  is the share of metrics passing; >= {PASS_SCORE:g} steps up, < {MARGINAL_SCORE:g} rolls back; no correction
  for repeated looks.
- **sequential**: the project's core with `algorithm: sequential` (alpha 0.05, minSamples 30,
  explorationFloor 5, the same caps and objectives, `quantileTests` on the p95 with the
  `requests-slower-than-5000ms` count; `exposure: time` for load-fixed rewards, `requests` for
  traffic-driven ones), `iterationsPerLoop` = the budget.
- **oracle**: a fixed-horizon test that knows the budget in advance: an even split for the whole
  budget, then one-sided z-tests at the end (reward at alpha/(n-1) on the log rate ratio; each objective
  at alpha/3: error rate and share slower than 5 s against their limits, mean latency with the batch
  means' spread). It promotes the best candidate that is significantly better and not shown broken.
  It is the reference for what a valid test can extract from the budget's data; its traffic figures
  are those of an even split.

## The sequential test's design

- **Reward, counts** (a metric declared `kind: events`, without `sampleSize`). Between two looks the new
  reward events of two versions, given their sum, are
  binomial with a success probability fixed by the exposure ratio r under "equal rates" (r/(1+r)) and
  by the rate ratio theta otherwise (theta r/(1+theta r)). The product of these per-look likelihood
  ratios is a test martingale for each theta; the e-value mixes it over a fixed grid of log(theta)
  (0.04 ... 1.2 each way) with prior weights that put 74% on the 22% to 77% differences a progressive
  rollout is run to find (11% on 10% to 15%). An experiment keeps the weights it started with.
- **Exposure.** `time` when reward events are fixed by the load (r = 1; the split does not change the
  evidence, so the weights follow the probability of being best); `requests` when they follow the
  traffic (r = ratio of new requests; the evidence grows with the smaller version's traffic, so the
  split stays even until a decision).
- **Why repeated looks do not inflate errors.** By Ville's inequality a test supermartingale crosses
  1/alpha with probability at most alpha over its whole path, so looking every 10 s or every hour
  gives the same bound. A version wins when it beats the baseline (and every other candidate in play)
  with e-value >= (n-1)/alpha and minSamples events per version.
- **Objectives as tests** (a breach at (#objectives)/alpha each). Error rate: a binomial mixture against
  the limit on the counts of the looks with new requests, its log likelihood ratio divided by the
  looks' overdispersion (see "The data path"); for a candidate, also against the baseline within looks.
  A latency quantile: the share of requests slower than the
  limit (`requests-slower-than-5000ms`), tested the same way against 1 - quantile (see "Quantiles at the
  limit"). Mean latency: bets on each
  look's batch mean (`_sum` / `_count` differences) against the limit, exactly valid for nonnegative
  values. A version whose test's e-value is above 1 is held back at floor / e-value^2; under half a
  percent that is 0% and the version is kept out (out of play); before a winner is decided, one whose
  estimate is beyond a limit gains no traffic; a breach rolls back.
- **Quantiles at the limit** (issue 16). "p95 <= L" holds exactly when at most 5% of the requests are
  slower than L, which a histogram counts only when L is one of its bucket bounds. Rounding L up to the
  next bound (the earlier rule) kept the breach test valid but not the proof: with L = 3000 ms and the
  5 s bound, a version whose p95 is 4200 ms has few requests over 5 s and was shown "within". Of the two
  valid ways out (refuse such a limit, or prove from the bound at or below L and find breaches from the
  one at or above), we refuse, naming the nearest bounds (2500 and 5000 for 3000): the other leaves a
  band between the bounds where a version can be neither proven nor rolled back, costs a second count
  per version and look, and the p95 reading it would report is interpolated inside a bucket. A quantile
  objective (its query uses `histogram_quantile`) without a quantile test is refused too, rather than
  handed to the mean test (a p95 is no mean: a healthy 160 ms candidate was held back); the program
  gives the library's p95 its test by default, for the executor's buckets (Seldon's `DefBuckets`,
  docs/seldon-metrics.md). Assumes the slow count reads the histogram the quantile is estimated from
  (the library builds both from it).
- **Cadence against scrape interval** (issue 16). A look sooner than every second scrape often finds no
  new sample of a version (a look one interval after the last can land just before the next scrape,
  and a scraped sample reaches queries a little later): it adds no evidence, and holds for missing data
  pile up (10 s looks against 30 s and 60 s scrapes ended 55% and 100% of the experiments Failed).
  `create` reads the scrape interval of the targets the metrics' series come from (Prometheus' targets
  API) and refuses `intervalSeconds` under twice the longest, giving both;
  `experiment.allowShortInterval: true` starts anyway. Not checked, and said in the record, when no
  series exists yet or the backend has no targets API.
- **The data path** (issue 16). Every reading is an `increase()` over the experiment so far: not an
  integer, a little jittery (extrapolation), sometimes empty, sometimes not growing. What each test
  assumes, and what the program does and refuses so the assumptions hold:
  - *Only new information.* A look adds evidence to a test only when its sample size grew by at least
    one (request, or event for a count reward); otherwise the totals stay and the next look's batch spans
    both. A reading lower than the last is held, never taken for a counter reset (`increase()` already
    accounts for resets inside its window), so no data is ever counted twice. Assumes each look's new
    data are new samples (the batch between two readings).
  - *Missing is never zero.* A failed query for any metric a test reads (reward, objective, its
    `sampleSize`, `requestCount`, a slow count) holds the iteration and counts toward
    `consecutiveErrorLimit`, as does the baseline with no data; a candidate's empty answer holds that
    version's tests for the look (weights held, no decision on that look). A version is shown within its
    limits only with its sample size in hand.
  - *Units cannot decide.* The count test assumes independent events whose rate is compared (Poisson
    increments); only a metric declared `kind: events` may be a reward without `sampleSize`, anything
    else is refused at `rewards[0].metric`. A sum of values (`kind: values`, the library's
    `feedback-reward`) is tested on per-look means per `sampleSize` (its events): the difference of the
    two versions' batch means in each look, weighted by the look's samples, in a normal mixture whose
    scale is the estimated standard deviation, so cents and dollars give the same e-values. Assumes
    enough samples per look for the batch means to be near normal and at least 2 looks (the variance
    is an upper 95% bound from the looks' differences): valid asymptotically, not exactly.
  - *Within looks.* Two versions are compared only on the batches of the same looks (each pair of
    versions keeps the totals it last compared at), for counts and means alike: a level both share (a
    drift of the reward, a traffic swing) cancels in each look's comparison, whatever the weights, and
    the looks' spread, not a drift, sets the variance. Assumes a shared change is shared within a look.
  - *Errors in bursts; the baseline's share.* Errors of correlated requests spread the looks' error
    shares more than independent requests would; the binomial test's log likelihood ratio is divided by
    that overdispersion (at least 1, estimated from 3 looks with new requests; no evidence before),
    so a burst of 20 counts as about one (a quasi-likelihood: valid asymptotically, not exactly;
    without bursts never stronger than the exact binomial test). A candidate's breach also needs its
    error share to be higher
    than the baseline's, tested within looks (same normal mixture as the means, the variance no lower
    than the binomial one): an incident both versions suffer rolls neither back, and the user's
    absolute limit stays the objective: the candidate's own test holds it back (floor / e-value^2, no
    traffic gain, no win) as soon as it leans to a breach. Assumes bursts shorter than a look and the
    baseline on the same data path; a candidate worse than its limit but no worse than the baseline is
    held back, not rolled back; held back, it keeps floor / e^2 of the traffic with e the smaller of
    its own e-value and that of being worse than the baseline (after a shared incident no traffic moves:
    at 0% it would get no data to clear it). The share of requests slower than a quantile's limit is
    tested the same way (per look, overdispersion, against the baseline's slow share). A candidate's proof
    "within" leaves out the looks in which the baseline's own share was beyond the limit: which looks go
    depends on the baseline's data alone, so the proof stays valid on the rest, and it means "within the
    limit but for incidents the baseline suffered in the same looks". A count that reads lower than
    its last (extrapolation of a flat counter) adds no error that look, keeps the higher total, and the
    look still counts.
  - *Bursts the data cannot show: `sequential.burstSize`.* The overdispersion is measured from the
    errors seen; with few or none there is no spread to measure, and a quiet stretch would show "within
    the limit" on a version that fails in bursts (3% of requests in bursts of 20 leave 1,000 requests
    without an error 22% of the time: e^(-1000 x 0.03 / 20)). The proof "within" divides its log
    likelihood ratio by the larger of the measured overdispersion and `sequential.burstSize` (default
    1: independent requests), the user's statement of the most requests one incident fails together.
    With no errors, showing a rate under a limit L at alpha needs about burstSize x ln(1/alpha) / L
    requests (300 x burstSize at 1% and 0.05), and a version failing r in bursts of B shows none in
    that many with chance exp(-ln(1/alpha) (r/L) (burstSize/B)): e^-9 = 0.012% at 3x the limit with
    burstSize = B = 20. Assumes the bursts are no larger than stated; the breach side needs no such
    statement (it measures the spread). Before a share's test can judge (its first 3 looks with new
    requests), a version whose share is beyond the limit is not decided the winner.
  - *Evidence belongs to a configuration.* Each test's running evidence carries a fingerprint of what
    it depends on (metric, query, jq, kind, its sample size's query, limits, alpha, algorithm, exposure,
    prior); when that changes while the experiment runs the test starts again from the totals at that
    moment (none of the data it may have been chosen on is counted), and the history entry lists it
    (`restarted`). Stored evidence that is there but cannot be read ends the experiment Failed, 100%
    baseline, naming the field (`algorithmState.tests.<test>.state: ...`, the output it is stored in).
- **Promotion needs the objectives shown.** The error rate and the slow share are also tested the other
  way ("within the limit", at 1/alpha: promotion needs every one of them, so no Bonferroni); a reward
  winner ends the experiment only when those cross too. Until then
  it takes the traffic (a breach can still roll it back); at the budget's end an unproven winner is
  not promoted.
- **Futility.** From a quarter of the budget on, a candidate whose comparison could not reach the
  threshold by the budget's end even at the optimistic end of a two-standard-error interval is out of
  play: 0% traffic. When no candidate is left the baseline is the decision.
- **Weights.** floor + (100 - n floor) x P(best) (time exposure) or an even split (requests exposure)
  over the versions in play, then the same caps as iter8-v2 and largest-remainder rounding.
"""


def write_plot(path: Path, rows: Sequence[Figures], budget: str = "60-looks") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [s.key for s in SCENARIOS]
    by = {(f.scenario, f.contender): f for f in rows if f.budget == budget}
    panels: list[tuple[str, Callable[[Figures], float]]] = [
        ("false promotion (%)", lambda f: 100 * f.false_promotion),
        ("correct (%)", lambda f: 100 * f.correct),
        ("median time to decision (s, log)", lambda f: f.median_decision_s),
        ("traffic to worse version (%)", lambda f: 100 * (f.worse_traffic or 0.0)),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(14, 8))
    width = 0.8 / len(CONTENDERS)
    for ax, (title, value) in zip(axes.flat, panels, strict=True):
        for i, contender in enumerate(CONTENDERS):
            xs = [k + (i - (len(CONTENDERS) - 1) / 2) * width for k in range(len(keys))]
            ax.bar(xs, [value(by[(key, contender)]) for key in keys], width, label=contender)
        ax.set_title(title)
        ax.set_xticks(range(len(keys)), keys, rotation=20)
        if "log" in title:
            ax.set_yscale("log")
        if title.startswith("false"):
            ax.axhline(5, color="black", linestyle="--", linewidth=1)
    axes.flat[0].legend()
    fig.suptitle(f"Decision benchmark, {budget} budget (simulated experiments, seeded)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
