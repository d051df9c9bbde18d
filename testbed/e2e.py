"""The local environment for end-to-end tests: the data plane on the local API server, a Prometheus
scraping it, and a Pulumi project whose stack points at both."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

from testbed.live import LivePrometheus
from testbed.project import REPO, copy_project, stack_outputs, write_stack_config
from testbed.promserver import end_process
from testbed.toolchain import LocalCluster, PulumiCli
from testbed.waiting import wait_for


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...), read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class DataPlane:
    """`python -m localenv` started here (ended by its handle) against one cluster."""

    def __init__(self, cluster: LocalCluster, workdir: Path) -> None:
        self._log: IO[bytes] = open(workdir / "localenv.log", "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "localenv", "--kubeconfig", str(cluster.kubeconfig),
             "--listen", "127.0.0.1:0", "--state-dir", str(workdir)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=self._log)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()
        if not line.startswith("localenv ready: "):
            self.stop()
            raise RuntimeError(f"data plane did not start: {line!r}; see {workdir / 'localenv.log'}")
        self.url = line.removeprefix("localenv ready: ")

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")

    def faults(self, faults: dict[str, Any]) -> None:
        requests.post(self.url + "/admin/faults", json=faults, timeout=5).raise_for_status()

    def clear_faults(self) -> None:
        requests.delete(self.url + "/admin/faults", timeout=5).raise_for_status()

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = requests.get(self.url + "/admin/status", timeout=5).json()
        return body

    def stop(self) -> None:
        end_process(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


def new_prometheus(workdir: Path, plane: DataPlane) -> LivePrometheus:
    """Ready once it answers: its targets (the data plane's pods) appear with the SeldonDeployments."""
    return LivePrometheus(workdir, plane.address, ready_query="vector(1)")


def seed_config(cluster: LocalCluster, plane: DataPlane, prometheus: LivePrometheus,
                **experiment: Any) -> dict[str, Any]:
    spec = {"name": "quickstart-exp", "target": "iris", "testingPattern": "A/B",
            "deploymentPattern": "Progressive", "algorithm": "iter8-v2", "intervalSeconds": 10,
            "iterationsPerLoop": 10, "consecutiveErrorLimit": 4, "requestCount": "request-count",
            "rewards": [{"metric": "user-engagement", "preferredDirection": "High"}],
            "objectives": [{"metric": "mean-latency", "upperLimit": 2000},
                           {"metric": "95th-percentile-tail-latency", "upperLimit": 5000},
                           {"metric": "error-rate", "upperLimit": 0.01}]}
    spec.update(experiment)
    return {"kubeconfig": str(cluster.kubeconfig), "prometheusUrl": prometheus.url,
            "prometheusTimeoutSeconds": 2,
            "load": {"enabled": True, "gatewayUrl": plane.url, "predictionQps": 5, "rewardQps": [0.7, 1],
                     "durationSeconds": 6000},
            "experiment": spec}


@dataclass
class Traffic:
    """The data a test's next look needs, beside its schedule: two requests to every host the routes in
    force give a share (weight above 0) since the last `up` ended, two reward events for each of their
    namespaces (see `rewards`), and a scrape by Prometheus after them.

    The schedule counts from the last look, and the `up` writes the weights it decides after that look. On a
    busy machine an `up` can take most of the interval; the next look then finds a version just moved to 5%
    with too few requests, the product rightly keeps it there, and a test of the seed's exact trajectory
    fails (seen once in CI: 15% at iteration 3 instead of 25%). Two requests, not one: a version's series
    exists from its first request on (as with the Go client), and to `increase()` a series' first sample is
    where it starts, not an increase. Waiting on the data, not the clock, leaves one trajectory possible."""

    plane: DataPlane
    prometheus: LivePrometheus
    rewards: str = "feedback"
    """Where the reward's events are counted, per namespace, in the data plane's status: `feedback` (the Seldon
    executors' feedback calls) or `engagement` (the application's events, localenv/engagement.py). Each
    namespace of a weighted host needs two of them too: every stack's first look finds new pods, so new series."""
    timeout: float = 60.0
    requests: int = 2
    mark: dict[str, dict[str, int]] = field(default_factory=dict)

    def after_up(self) -> None:
        status = self.plane.status()
        self.mark = {"routed": status["routed"], self.rewards: status[self.rewards]}

    def _missing(self, status: dict[str, Any]) -> list[str]:
        def short(counts: str, key: str) -> bool:
            return bool(status[counts].get(key, 0) < self.mark.get(counts, {}).get(key, 0) + self.requests)

        missing = [h for h in status["weightedHosts"] if short("routed", h)]
        namespaces = [host.split(".")[1] for host in status["weightedHosts"]]
        return missing + [f"{self.rewards} of {ns}" for ns in namespaces if short(self.rewards, ns)]

    def wait(self) -> None:
        try:
            wait_for(lambda: not self._missing(self.plane.status()), self.timeout,
                     f"{self.requests} requests and {self.rewards} events to every weighted host after the last up",
                     every=0.05)
        except AssertionError as err:
            raise AssertionError(f"{err}; still short: {self._missing(self.plane.status())}") from None
        served = time.time()
        if self.prometheus.running:
            wait_for(lambda: self.prometheus.scraped_after(served), self.timeout, "a Prometheus scrape after them",
                     every=0.05)


@dataclass
class Rollout:
    """One stack of the program in a throwaway project directory."""

    cli: PulumiCli
    project: Path
    stack: str
    cluster: LocalCluster
    traffic: Traffic | None = None
    """When set, `wait_for_next_iteration` also waits for data (see Traffic)."""

    @classmethod
    def create(cls, cli: PulumiCli, tmp: Path, stack: str, cluster: LocalCluster, config: dict[str, Any],
               traffic: Traffic | None = None) -> Rollout:
        project = copy_project(tmp / "project")
        write_stack_config(project, stack, config)
        cli.run("stack", "init", stack, cwd=project)
        return cls(cli, project, stack, cluster, traffic)

    def up(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = self.cli.run("up", "--yes", "--skip-preview", cwd=self.project, stack=self.stack, check=check)
        if self.traffic is not None:
            self.traffic.after_up()
        return done

    def outputs(self) -> dict[str, Any]:
        return stack_outputs(self.cli.run("stack", "output", "--json", cwd=self.project, stack=self.stack).stdout)

    def record(self) -> dict[str, Any]:
        record: dict[str, Any] = self.outputs()["experiment"]
        return record

    def wait_for_next_iteration(self) -> None:
        """Sleep until the schedule makes the next iteration due (lastIterationAt + interval)."""
        record = self.record()
        time.sleep(max(0.0, record["lastIterationAt"] + record["spec"]["intervalSeconds"] - time.time()))
        if self.traffic is not None:
            self.traffic.wait()

    def run_until_finished(self, max_ups: int) -> list[dict[str, Any]]:
        """`up` on schedule until the experiment is no longer Running; the record after each up."""
        records = []
        for _ in range(max_ups):
            self.up()
            records.append(self.record())
            if records[-1]["stage"] != "Running":
                return records
            self.wait_for_next_iteration()
        raise AssertionError(f"still running after {max_ups} ups: {records[-1]['messages']}")

    def weights_in_cluster(self) -> dict[str, int]:
        vs = json.loads(self.cluster.kubectl("get", "virtualservices.networking.istio.io", "routing-rule", "-n",
                                             "default", "-o", "json").stdout)
        return {r["headers"]["response"]["set"]["version"]: r["weight"] for r in vs["spec"]["http"][0]["route"]}

    def up_killed_mid_iteration(self, marker: str = "rollout:Experiment experiment updating") -> str:
        """Start `up`, and SIGKILL its whole process group once the experiment's update has begun."""
        argv = [str(REPO / "scripts" / "pulumi"), "up", "--yes", "--skip-preview", "--stack", self.stack,
                "--non-interactive"]
        proc = subprocess.Popen(argv, cwd=self.project, env=self.cli.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        seen = []
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if marker in line:
                plugins = descendants(proc.pid)  # the engine's plugins run in process groups of their own
                os.killpg(proc.pid, signal.SIGKILL)
                for pid in plugins:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                break
        proc.wait(timeout=60)
        proc.stdout.close()
        return "".join(seen)

    def destroy(self) -> None:
        self.cli.run("destroy", "--yes", "--skip-preview", cwd=self.project, stack=self.stack)
