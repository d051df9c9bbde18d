"""How long one iteration's metric snapshot takes against a real Prometheus.

Run: `venv/bin/python benchmarks/iteration.py` (or `make bench`). Starts its own Prometheus with
backfilled executor histograms for ten versions, then times `collect_snapshot` with the seed's six
metrics for 2 versions (12 queries) and for 10 versions (60 queries): the median of RUNS timed runs
after WARMUP untimed ones. It reports each target as PASS or MISS and always exits 0.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from components.metrics.seldon import SEED_METRICS
from rollout.core.outcomes import Observed
from rollout.core.spec import ExperimentSpec
from rollout.core.validation import parse_experiment
from rollout.metrics.collect import collect_snapshot
from rollout.metrics.prometheus import PrometheusClient, PrometheusSettings
from testbed.promserver import BASELINE, QUERY_TIME, running_prometheus

WARMUP = 3
RUNS = 15
WINDOW = 600
TWO_VERSION_TARGET = 0.3
"""Seconds: the 2-version median must stay under this."""
SCALING_TARGET = 2.0
"""The 10-version median must stay under this multiple of the 2-version median."""
NAMESPACES = tuple(f"ns-v{i}" for i in range(10))


def spec_for(namespaces: tuple[str, ...]) -> ExperimentSpec:
    return parse_experiment({
        "name": "bench",
        "versions": [{"name": ns, "variables": {"ns": ns, "sid": "iris", "predictor": "default"}}
                     for ns in namespaces],
        "metrics": list(SEED_METRICS),
        "rewards": [{"metric": "user-engagement", "preferredDirection": "High"}],
    })


@dataclass(frozen=True)
class Timing:
    median: float
    """Wall-clock seconds of one snapshot, median over RUNS."""
    client_cpu: float
    """CPU seconds this process spent per snapshot (all threads), mean over every run."""
    server_cpu: float | None
    """CPU seconds Prometheus spent per snapshot, mean over every run (None where /proc is missing)."""


def process_cpu_seconds(pid: int | None) -> float | None:
    """User+system CPU seconds of process `pid`, from /proc (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_snapshots(spec: ExperimentSpec, client: PrometheusClient, server_pid: int | None) -> Timing:
    expected = len(spec.metrics) * len(spec.versions)
    timings = []
    client_before, server_before = time.process_time(), process_cpu_seconds(server_pid)
    for run in range(WARMUP + RUNS):
        started = time.perf_counter()
        snapshot = collect_snapshot(spec, client, started_at=QUERY_TIME - WINDOW, now=QUERY_TIME)
        elapsed = time.perf_counter() - started
        observed = sum(isinstance(o, Observed) for o in snapshot.values())
        if observed != expected:
            raise SystemExit(f"benchmark data is wrong: {observed} of {expected} queries observed a value")
        if run >= WARMUP:
            timings.append(elapsed)
    runs = WARMUP + RUNS
    server_after = process_cpu_seconds(server_pid)
    server_cpu = None
    if server_after is not None and server_before is not None:
        server_cpu = (server_after - server_before) / runs
    return Timing(statistics.median(timings), (time.process_time() - client_before) / runs, server_cpu)


def cpu_note(timing: Timing) -> str:
    server = f", Prometheus {timing.server_cpu * 1000:.0f} ms" if timing.server_cpu is not None else ""
    return f"   (CPU per snapshot: client {timing.client_cpu * 1000:.0f} ms{server})"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    workloads = [replace(BASELINE, namespace=ns) for ns in NAMESPACES]
    with running_prometheus(workloads) as server, requests.Session() as session:
        client = PrometheusClient(PrometheusSettings(url=server.url, timeout_seconds=10.0), session=session)
        two = time_snapshots(spec_for(NAMESPACES[:2]), client, server.pid)
        ten = time_snapshots(spec_for(NAMESPACES), client, server.pid)
    ratio = ten.median / two.median
    print(f"one iteration's snapshot, median of {RUNS} runs after {WARMUP} warm-up runs, {os.cpu_count()} CPUs:")
    print(f"  2 versions (12 queries):  {two.median * 1000:7.1f} ms"
          f"   target < {TWO_VERSION_TARGET * 1000:.0f} ms            {verdict(two.median < TWO_VERSION_TARGET)}"
          f"{cpu_note(two)}")
    print(f"  10 versions (60 queries): {ten.median * 1000:7.1f} ms"
          f"   ratio {ratio:.2f} x, target < {SCALING_TARGET:g} x   {verdict(ratio < SCALING_TARGET)}"
          f"{cpu_note(ten)}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
