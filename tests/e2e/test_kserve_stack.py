"""The kserve stack (Pulumi.kserve.yaml: KServe InferenceServices behind a Gateway API HTTPRoute, the seed's A/B
test decided from Istio's standard metrics and the application's engagement count) end to end: the real engine
and provider, the local API server serving the Gateway API standard channel's CRDs and the InferenceService CRD,
the data plane answering KServe's v1 protocol by the HTTPRoute's weights and counting the reward loads'
engagement (localenv/engagement.py), and a Prometheus scraping the pods' Istio sidecars and that application.

Lean: looks every 2 s (Prometheus scrapes every 500 ms) and 4 iterations, predictions at 50 per second so the
candidate's 5% share has data from the first look on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from testbed.e2e import DataPlane, Rollout, Traffic, seed_config
from testbed.live import LivePrometheus
from testbed.project import REPO, copy_project, write_stack_config
from testbed.toolchain import LocalCluster, PulumiCli, require_gateway_api_crds

pytestmark = pytest.mark.timeout(600)
BASELINE, CANDIDATE = "iris-v1", "iris-v2"
KSERVE_STACK = {key.split(":", 1)[1]: value
                for key, value in yaml.safe_load((REPO / "Pulumi.kserve.yaml").read_text())["config"].items()}


def kserve_config(cluster: LocalCluster, plane: DataPlane, prometheus: LivePrometheus, **experiment: Any) -> dict[
        str, Any]:
    config = seed_config(cluster, plane, prometheus, **{**KSERVE_STACK.get("experiment", {}), "intervalSeconds": 2,
                                                        "iterationsPerLoop": 4, **experiment})
    config["load"] = {**KSERVE_STACK["load"], **config["load"], "predictionQps": 50}
    return {**KSERVE_STACK, **config}


def route_weights(cluster: LocalCluster) -> dict[str, int]:
    route = json.loads(cluster.kubectl("get", "httproutes.gateway.networking.k8s.io", "routing-rule", "-n", "default",
                                       "-o", "json").stdout)
    namespaces = {"ns-baseline": BASELINE, "ns-candidate": CANDIDATE}
    return {namespaces[r["namespace"]]: r["weight"] for r in route["spec"]["rules"][0]["backendRefs"]}


@pytest.fixture
def rollout(request: pytest.FixtureRequest, tmp_path: Path, pulumi_cli: PulumiCli, local_cluster: LocalCluster,
            plane: DataPlane, plane_prometheus: LivePrometheus) -> Iterator[Rollout]:
    require_gateway_api_crds()
    plane.clear_faults()
    r = Rollout.create(pulumi_cli, tmp_path, "kserve", local_cluster,
                       kserve_config(local_cluster, plane, plane_prometheus, **getattr(request, "param", {})),
                       Traffic(plane, plane_prometheus, "engagement"))
    try:
        yield r
    finally:
        plane.clear_faults()
        r.destroy()
        for kind, ns in (("inferenceservices.serving.kserve.io", "ns-baseline"),
                         ("referencegrants.gateway.networking.k8s.io", "ns-candidate"),
                         ("httproutes.gateway.networking.k8s.io", "default")):
            assert local_cluster.kubectl("get", kind, "-n", ns, "-o", "name", check=False).stdout == "", kind


def test_the_seed_story_on_kserve_promotes_the_xgboost_model(rollout: Rollout, plane: DataPlane,
                                                              plane_prometheus: LivePrometheus,
                                                              pulumi_cli: PulumiCli, tmp_path: Path) -> None:
    rollout.up()
    assert route_weights(rollout.cluster) == {BASELINE: 100, CANDIDATE: 0}
    grants = rollout.cluster.kubectl("get", "referencegrants.gateway.networking.k8s.io", "-A", "-o", "name").stdout
    assert sorted(grants.split()) == ["referencegrant.gateway.networking.k8s.io/routing-rule-iris-predictor"] * 2

    # renderDirectory on the same config: the manifests pass a server-side dry run (the CRDs' schemas, the
    # Gateway API's CEL rules) against the API server, where the stack made the namespaces.
    project = copy_project(tmp_path / "render")
    write_stack_config(project, "render", {**kserve_config(rollout.cluster, plane, plane_prometheus),
                                           "kubeconfig": "", "renderDirectory": str(tmp_path / "rendered")})
    pulumi_cli.run("stack", "init", "render", cwd=project)
    pulumi_cli.run("up", "--yes", "--skip-preview", cwd=project, stack="render")
    rendered = [doc for path in sorted((tmp_path / "rendered").rglob("*.yaml"))
                for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]
    kinds = sorted(doc["kind"] for doc in rendered)
    assert kinds == sorted(["Namespace"] * 3 + ["InferenceService"] * 2 + ["ReferenceGrant"] * 2
                           + ["HTTPRoute", "ConfigMap"] + ["Job"] * 3), kinds  # predictions, two reward loads
    dry_run = rollout.cluster.kubectl("apply", "--dry-run=server", "-R", "-f", str(tmp_path / "rendered"))
    assert dry_run.stdout.count("(server dry run)") == len(rendered), dry_run.stdout

    rollout.wait_for_next_iteration()
    records = rollout.run_until_finished(max_ups=8)
    history = records[-1]["history"]
    assert [int(h["weights"][CANDIDATE]) for h in history] == [5, 15, 25, 100], history
    outputs = rollout.outputs()
    assert (outputs["stage"], outputs["winner"], outputs["promoted"]) == ("Completed", CANDIDATE, CANDIDATE)
    # The A/B test's reward is the application's engagement count, fed by the reward loads (0.7 and 1 a second).
    engagement = records[-1]["values"]["user-engagement"]
    assert 0 < engagement[BASELINE]["value"] < engagement[CANDIDATE]["value"], engagement
    # Promotion: the baseline InferenceService serves the winner's format and storageUri, with all the traffic.
    isvc = json.loads(rollout.cluster.kubectl("get", "inferenceservices.serving.kserve.io", "iris", "-n",
                                              "ns-baseline", "-o", "json").stdout)
    assert isvc["spec"]["predictor"]["model"] == {"modelFormat": {"name": "xgboost"},
                                                  "storageUri": "gs://kfserving-examples/models/xgboost/iris"}
    assert route_weights(rollout.cluster) == {BASELINE: 100}
    served = {s["namespace"]: s["modelFormat"] for s in plane.status()["inferenceServices"]}
    assert served["ns-baseline"] == "xgboost"
    reply = requests.post(plane.url + "/v1/models/iris:predict", headers={"Host": "iris.example.com"},
                          json={"instances": [[6.8, 2.8, 4.8, 1.4]]}, timeout=5)
    assert reply.status_code == 200, reply.text
    print(f"\nkserve story: candidate weights {[int(h['weights'][CANDIDATE]) for h in history]}, "
          f"values at the end {json.dumps(records[-1].get('values'))}")


@pytest.mark.parametrize("rollout", [{"iterationsPerLoop": 10}], indirect=True)
def test_a_candidate_with_five_percent_errors_is_rolled_back(rollout: Rollout, plane: DataPlane) -> None:
    plane.faults({"ns-candidate": {"errorRate": 0.05, "extraLatencyMs": 0}})
    rollout.up()
    rollout.wait_for_next_iteration()
    records = rollout.run_until_finished(max_ups=10)
    final = records[-1]
    assert final["stage"] == "Failed"
    assert final.get("promoted") is None
    assert {k: int(v) for k, v in final["weights"].items()} == {BASELINE: 100, CANDIDATE: 0}
    assert "iris-v2 broke error-rate <= 0.01" in final["messages"][0]
    assert final["values"]["error-rate"][CANDIDATE]["value"] > 0.01
    assert route_weights(rollout.cluster) == {BASELINE: 100, CANDIDATE: 0}
    isvc = json.loads(rollout.cluster.kubectl("get", "inferenceservices.serving.kserve.io", "iris", "-n",
                                              "ns-baseline", "-o", "json").stdout)
    assert isvc["spec"]["predictor"]["model"]["modelFormat"] == {"name": "sklearn"}
    print(f"\nkserve fault: rolled back after {len(final['history'])} looks: {final['messages'][0]}")


def test_kserve_behind_istios_virtual_service_runs_the_same_story(
        tmp_path: Path, pulumi_cli: PulumiCli, local_cluster: LocalCluster, plane: DataPlane,
        plane_prometheus: LivePrometheus) -> None:
    """routing.kind istio with models.kind kserve: the VirtualService routes to each version's `<name>-predictor`
    Service, port 80, and the data plane answers KServe's protocol by its weights."""
    require_gateway_api_crds()
    plane.clear_faults()
    config = {**kserve_config(local_cluster, plane, plane_prometheus), "routing": {"kind": "istio"}}
    r = Rollout.create(pulumi_cli, tmp_path, "kservevs", local_cluster, config, Traffic(plane, plane_prometheus, "engagement"))
    try:
        r.up()
        assert local_cluster.kubectl("get", "httproutes.gateway.networking.k8s.io", "-A", "-o", "name").stdout == ""
        r.wait_for_next_iteration()
        records = r.run_until_finished(max_ups=8)
        assert [int(h["weights"][CANDIDATE]) for h in records[-1]["history"]] == [5, 15, 25, 100], [
            (h["weights"], h["reason"]) for h in records[-1]["history"]]
        assert r.outputs()["promoted"] == CANDIDATE
        vs = json.loads(local_cluster.kubectl("get", "virtualservices.networking.istio.io", "routing-rule", "-n",
                                              "default", "-o", "json").stdout)
        assert vs["spec"]["http"][0]["route"] == [{
            "destination": {"host": "iris-predictor.ns-baseline.svc.cluster.local", "port": {"number": 80}},
            "headers": {"response": {"set": {"version": CANDIDATE}}}, "weight": 100}]
        reply = requests.post(plane.url + "/v1/models/iris:predict", headers={"Host": "iris.example.com"},
                              json={"instances": [[6.8, 2.8, 4.8, 1.4]]}, timeout=5)
        assert (reply.status_code, reply.headers["version"]) == (200, CANDIDATE)
        [probabilities] = reply.json()["predictions"]  # xgboost's answer: the promoted model, on the baseline
        assert len(probabilities) == 3 and max(probabilities) == probabilities[1]
    finally:
        r.destroy()
