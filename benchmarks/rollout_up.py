"""Wall time of a rollout `pulumi up` (one iteration) against a no-op `pulumi up` of the same stack.

Runs on its own (`venv/bin/python benchmarks/rollout_up.py [--runs N]`, or `make bench-up`): starts a
private local API server, the data plane and a Prometheus scraping it, then times `pulumi up` with
the real engine. Rollout ups: intervalSeconds 1, so every `up` runs an iteration (queries, decision,
new weights into the VirtualService). No-op ups: the same stack with the interval set to an hour,
so `diff` says nothing is due and nothing changes. Runner ups: the same no-op `up` through the
runner's Automation API call (`rollout/ops/runner.py`), alternated with plain ones, for the runner's
overhead per iteration. Prints medians, spreads and the ratios; it reports, it does not judge
(exit 0), since this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rollout.ops.runner import automation_up
from testbed.e2e import DataPlane, Rollout, new_prometheus, seed_config
from testbed.project import write_stack_config
from testbed.toolchain import make_pulumi_cli, require_executables, start_cluster, stop_cluster


def timed(rollout: Rollout) -> float:
    start = time.perf_counter()
    rollout.up()
    return time.perf_counter() - start


def describe(name: str, times: list[float]) -> str:
    return (f"{name:<28} median {statistics.median(times):6.2f} s   min {min(times):6.2f} s   "
            f"max {max(times):6.2f} s   ({len(times)} runs)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    require_executables(("pulumi", "pulumi-resource-kubernetes", "etcd", "kube-apiserver"))
    with tempfile.TemporaryDirectory(prefix="bench-up-") as tmp:
        root = Path(tmp)
        (root / "cluster").mkdir()
        cluster = start_cluster(root / "cluster")
        plane = prometheus = None
        try:
            (root / "plane").mkdir()
            plane = DataPlane(cluster, root / "plane")
            (root / "prom").mkdir()
            prometheus = new_prometheus(root / "prom", plane)
            prometheus.start()
            cli = make_pulumi_cli(root / "backend", root / "home")
            fast = seed_config(cluster, plane, prometheus, intervalSeconds=1, iterationsPerLoop=1000)
            rollout = Rollout.create(cli, root, "bench", cluster, fast)
            print("creating the stack ...", flush=True)
            rollout.up()
            time.sleep(1.0)  # the first iteration is due one interval after the start
            rollouts = []
            for i in range(args.runs):
                before = rollout.record()["iteration"]
                rollouts.append(timed(rollout))
                after = rollout.record()["iteration"]
                assert after == before + 1, f"rollout up {i} did not iterate ({before} -> {after})"
                print(f"  rollout up {i + 1}: {rollouts[-1]:.2f} s (iteration {after})", flush=True)
            write_stack_config(rollout.project, "bench",
                               seed_config(cluster, plane, prometheus, intervalSeconds=3600, iterationsPerLoop=1000))
            rollout.up()  # the changed interval is an input change: applied once, no iteration
            noops = []
            for i in range(args.runs):
                before = rollout.record()["iteration"]
                noops.append(timed(rollout))
                assert rollout.record()["iteration"] == before
                print(f"  no-op up {i + 1}: {noops[-1]:.2f} s", flush=True)
            os.environ.update({**cli.env, "PATH": f"{cli.env['SELDON_ROLLOUT_CACHE']}/bin:{os.environ['PATH']}",
                               "PULUMI_SKIP_UPDATE_CHECK": "true",
                               "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true"})
            runner_up = automation_up("bench", rollout.project, create=False)
            plain, through_runner = [], []
            for i in range(args.runs):  # alternated, so that the machine's load drifts on both alike
                plain.append(timed(rollout))
                start = time.perf_counter()
                runner_up(lambda line: None)
                through_runner.append(time.perf_counter() - start)
                print(f"  plain up {i + 1}: {plain[-1]:.2f} s, runner up: {through_runner[-1]:.2f} s", flush=True)
            rollout.destroy()
        finally:
            if prometheus is not None:
                prometheus.stop()
            if plane is not None:
                plane.stop()
            stop_cluster(root / "cluster")
    print()
    print(describe("rollout `pulumi up`", rollouts))
    print(describe("no-op `pulumi up`", noops))
    print(f"{'ratio of medians':<28} {statistics.median(rollouts) / statistics.median(noops):6.2f} x")
    print(describe("plain no-op `pulumi up`", plain))
    print(describe("the runner's no-op `up`", through_runner))
    print(f"{'runner / plain':<28} {statistics.median(through_runner) / statistics.median(plain):6.2f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
