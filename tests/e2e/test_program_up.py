"""A real `pulumi up` of the program against the local API server, with a live Prometheus.

Engine, language host, Kubernetes provider and API server are the ones `make toolchain` builds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from testbed.live import LivePrometheus
from testbed.project import copy_project, stack_outputs, write_stack_config
from testbed.toolchain import LocalCluster, PulumiCli

INTERVAL = 30  # long enough that the second `up` lands inside it even on a loaded machine
STACK = "e2e"


def config(cluster: LocalCluster, prometheus_url: str) -> dict[str, Any]:
    return {
        "kubeconfig": str(cluster.kubeconfig),
        "prometheusUrl": prometheus_url,
        "load": {"enabled": True, "gatewayUrl": "http://127.0.0.1:18080", "predictionQps": 5,
                 "rewardQps": [0.7, 1], "durationSeconds": 6000},
        "experiment": {"name": "quickstart-exp", "target": "iris", "testingPattern": "A/B",
                       "deploymentPattern": "Progressive", "algorithm": "iter8-v2", "intervalSeconds": INTERVAL,
                       "iterationsPerLoop": 10, "requestCount": "request-count",
                       "rewards": [{"metric": "user-engagement", "preferredDirection": "High"}],
                       "objectives": [{"metric": "mean-latency", "upperLimit": 2000},
                                      {"metric": "95th-percentile-tail-latency", "upperLimit": 5000},
                                      {"metric": "error-rate", "upperLimit": 0.01}]},
    }


def get(cluster: LocalCluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def weights_in_cluster(cluster: LocalCluster) -> list[tuple[str, int]]:
    vs = get(cluster, "virtualservices.networking.istio.io", "routing-rule", "-n", "default")
    return [(r["headers"]["response"]["set"]["version"], r["weight"]) for r in vs["spec"]["http"][0]["route"]]


@pytest.mark.timeout(900)
def test_up_creates_everything_iterates_on_schedule_and_destroy_removes_it(
        tmp_path: Path, local_cluster: LocalCluster, pulumi_cli: PulumiCli, live_prometheus: LivePrometheus) -> None:
    project = copy_project(tmp_path / "project")
    write_stack_config(project, STACK, config(local_cluster, live_prometheus.url))
    pulumi_cli.run("stack", "init", STACK, cwd=project)

    first = pulumi_cli.run("up", "--yes", "--skip-preview", cwd=project, stack=STACK)
    assert "downloading" not in first.stdout.lower() + first.stderr.lower()
    outputs = stack_outputs(pulumi_cli.run("stack", "output", "--json", cwd=project, stack=STACK).stdout)
    assert (outputs["stage"], outputs["iteration"], outputs["weights"]) == ("Running", 0, {"iris-v1": 100, "iris-v2": 0})

    # Everything the seed creates is in the API server, with the fields the program set.
    for ns in ("ns-baseline", "ns-candidate", "iter8-seldon"):
        assert get(local_cluster, "namespace", ns)["status"]["phase"] == "Active"
    baseline = get(local_cluster, "seldondeployments.machinelearning.seldon.io", "iris", "-n", "ns-baseline")
    assert baseline["spec"]["predictors"][0]["graph"] == {
        "name": "classifier", "implementation": "SKLEARN_SERVER", "modelUri": "gs://seldon-models/v1.12.0-dev/sklearn/iris"}
    candidate = get(local_cluster, "seldondeployments.machinelearning.seldon.io", "iris", "-n", "ns-candidate")
    assert candidate["spec"]["predictors"][0]["graph"]["implementation"] == "XGBOOST_SERVER"
    vs = get(local_cluster, "virtualservices.networking.istio.io", "routing-rule", "-n", "default")
    assert vs["spec"]["gateways"] == ["istio-system/seldon-gateway"]
    assert vs["spec"]["hosts"] == ["iris.example.com"]
    assert weights_in_cluster(local_cluster) == [("iris-v1", 100), ("iris-v2", 0)]
    cm = get(local_cluster, "configmap", "seldon-rollout-metrics", "-n", "iter8-seldon")
    assert len(cm["data"]) == 7  # the seed's six metrics and feedback-reward
    jobs = {j["metadata"]["name"]: j for j in get(local_cluster, "jobs", "-n", "default")["items"]}
    assert sorted(jobs) == ["fortio-irisv1-rewards", "fortio-irisv2-rewards", "fortio-requests"]
    assert all(j["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true" for j in jobs.values())

    # A second `up` inside the interval changes nothing.
    pulumi_cli.run("up", "--yes", "--skip-preview", "--expect-no-changes", cwd=project, stack=STACK)

    # Once the interval has passed, `up` runs one iteration over the live Prometheus and the new
    # weights reach the VirtualService in the same run.
    state = json.loads(pulumi_cli.run("stack", "output", "experiment", "--json", cwd=project, stack=STACK).stdout)
    time.sleep(max(0.0, state["lastIterationAt"] + INTERVAL - time.time()))  # the schedule, not luck
    pulumi_cli.run("up", "--yes", "--skip-preview", cwd=project, stack=STACK)
    outputs = stack_outputs(pulumi_cli.run("stack", "output", "--json", cwd=project, stack=STACK).stdout)
    assert (outputs["iteration"], outputs["winner"]) == (1, "iris-v2"), outputs["experiment"]["messages"]
    assert outputs["weights"] == {"iris-v1": 90, "iris-v2": 10}
    assert weights_in_cluster(local_cluster) == [("iris-v1", 90), ("iris-v2", 10)]

    # Secrets end to end (a real token through an auth gate): tests/e2e/test_secrets.py.

    pulumi_cli.run("destroy", "--yes", "--skip-preview", cwd=project, stack=STACK)
    for kind, ns in (("seldondeployments.machinelearning.seldon.io", "ns-baseline"),
                     ("virtualservices.networking.istio.io", "default"), ("jobs", "default"),
                     ("configmaps", "iter8-seldon")):
        left = local_cluster.kubectl("get", kind, "-n", ns, "-o", "name", check=False)
        assert "routing-rule" not in left.stdout and "fortio" not in left.stdout and "seldon-rollout" not in left.stdout
        assert "iris" not in left.stdout
    for ns in ("ns-baseline", "ns-candidate", "iter8-seldon"):
        phase = local_cluster.kubectl("get", "namespace", ns, "-o", "jsonpath={.status.phase}", check=False)
        assert phase.returncode != 0 or phase.stdout == "Terminating"


def test_bad_config_fails_with_the_key_named_and_no_traceback(tmp_path: Path, pulumi_cli: PulumiCli,
                                                              local_cluster: LocalCluster) -> None:
    project = copy_project(tmp_path / "project")
    bad = {"kubeconfig": str(local_cluster.kubeconfig), "prometheusUrl": "prometheus:9090",
           "experiment": {"name": "x", "intervalSeconds": 0, "rewards": [{"metric": "user-engagement"}]}}
    write_stack_config(project, STACK, bad)
    pulumi_cli.run("stack", "init", STACK, cwd=project)
    result = pulumi_cli.run("preview", cwd=project, stack=STACK, check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert "seldon-rollout:prometheusUrl: must start with http://" in text
    assert "Traceback" not in text
