"""`renderDirectory`: the dev stack rendered by the real engine and the pinned Kubernetes provider
(4.25), and the rendered manifests accepted by a server-side dry run on a local API server that has
the project's CRDs (`crds/`).

A dry run creates nothing, so the namespaces the manifests live in are applied for real first
(the cluster is this test's own); then every manifest, the namespaces included, goes through
`kubectl apply --dry-run=server`: admission, defaulting and the CRDs' schemas, without storing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.live import LivePrometheus
from testbed.project import copy_project, write_stack_config
from testbed.toolchain import (
    ENGINE,
    PROVIDER,
    REPO,
    SERVER,
    PulumiCli,
    require_executables,
    start_cluster,
    stop_cluster,
)

STACK = "render"


def rendered_objects(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in sorted(directory.rglob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]


def render(project: Path, pulumi_cli: PulumiCli, stack: str, directory: Path, **overrides: Any) -> list[
        tuple[Path, dict[str, Any]]]:
    """`pulumi up` of the dev stack's config with `renderDirectory` (and `overrides`): the objects written."""
    dev: dict[str, Any] = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"]
    config = {key.split(":", 1)[1]: value for key, value in dev.items()}
    config.update(kubeconfig="", renderDirectory=str(directory), **overrides)  # render mode takes no cluster
    write_stack_config(project, stack, config)
    pulumi_cli.run("stack", "init", stack, cwd=project)
    pulumi_cli.run("up", "--yes", "--skip-preview", cwd=project, stack=stack)
    return rendered_objects(directory)


@pytest.mark.timeout(900)
def test_the_dev_stack_renders_and_its_manifests_pass_a_server_side_dry_run(
        tmp_path: Path, pulumi_cli: PulumiCli, live_prometheus: LivePrometheus) -> None:
    require_executables(ENGINE + PROVIDER + SERVER)
    project = copy_project(tmp_path / "project")
    # Provider 4.25 rejects a kubeconfig beside renderYamlToDirectory, and the SDK copies $KUBECONFIG
    # into the provider's kubeconfig when none is given: the program passes "" in render mode.
    (tmp_path / "elsewhere.kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    pulumi_cli.extra_env["KUBECONFIG"] = str(tmp_path / "elsewhere.kubeconfig")
    # The experiment asks Prometheus for its build info before it starts (render mode too): a live one.
    objects = render(project, pulumi_cli, STACK, tmp_path / "rendered", prometheusUrl=live_prometheus.url)
    found = sorted((doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]) for _, doc in objects)
    assert found == sorted([
        ("Namespace", "", "ns-baseline"), ("Namespace", "", "ns-candidate"), ("Namespace", "", "iter8-seldon"),
        ("SeldonDeployment", "ns-baseline", "iris"), ("SeldonDeployment", "ns-candidate", "iris"),
        ("VirtualService", "default", "routing-rule"), ("ConfigMap", "iter8-seldon", "seldon-rollout-metrics"),
        ("Job", "default", "fortio-requests"), ("Job", "default", "fortio-irisv1-rewards"),
        ("Job", "default", "fortio-irisv2-rewards")]), found
    vs = next(doc for _, doc in objects if doc["kind"] == "VirtualService")
    assert [r["weight"] for r in vs["spec"]["http"][0]["route"]] == [100, 0], "the experiment's first weights"
    as_crd = render(project, pulumi_cli, "render-crd", tmp_path / "rendered-crd", metricsAsCrd=True,
                    prometheusUrl=live_prometheus.url)
    metrics = [doc for _, doc in as_crd if doc["kind"] == "Metric"]
    library = next(doc for _, doc in objects if doc["kind"] == "ConfigMap")
    assert len(metrics) == len(library["data"]) and {m["apiVersion"] for m in metrics} == {"iter8.tools/v2alpha2"}

    cluster_dir = tmp_path / "cluster"
    cluster = start_cluster(cluster_dir)
    try:
        for path, doc in objects:
            if doc["kind"] == "Namespace":
                cluster.kubectl("apply", "-f", str(path))
        for directory, count in ((tmp_path / "rendered", len(objects)), (tmp_path / "rendered-crd", len(as_crd))):
            dry_run = cluster.kubectl("apply", "--dry-run=server", "-R", "-f", str(directory))
            assert dry_run.stdout.count("(server dry run)") == count, dry_run.stdout
        assert cluster.kubectl("get", "seldondeployments.machinelearning.seldon.io,virtualservices.networking.istio.io,"
                               "metrics.iter8.tools,jobs", "-A", "-o", "name").stdout == "", "a dry run stores nothing"

        # The dry run is a real check: a manifest the CRD's schema rejects fails it.
        vs["spec"]["http"][0]["route"][0]["weight"] = "100"
        broken = tmp_path / "broken.yaml"
        broken.write_text(yaml.safe_dump(vs))
        refused = cluster.kubectl("apply", "--dry-run=server", "-f", str(broken), check=False)
        assert refused.returncode != 0
        assert "weight" in refused.stderr, refused.stderr
    finally:
        stop_cluster(cluster_dir)
