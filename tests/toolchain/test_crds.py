"""The project's CRDs, installed by `scripts/cluster up`, accept the seed's objects and reject malformed ones.

Every request is a server-side dry run: the API server validates against the CRD's structural schema
(and prunes, defaults, admits) but stores nothing, so the tests share one cluster without cleanup.
"""

from __future__ import annotations

import pytest

from testbed.toolchain import LocalCluster

ROUTING_RULE = """\
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: routing-rule
  namespace: default
spec:
  gateways:
  - istio-system/seldon-gateway
  hosts:
  - iris.example.com
  http:
  - route:
    - destination:
        host: iris-default.ns-baseline.svc.cluster.local
        port:
          number: 8000
      headers:
        response:
          set:
            version: iris-v1
      weight: 100
    - destination:
        host: iris-default.ns-candidate.svc.cluster.local
        port:
          number: 8000
      headers:
        response:
          set:
            version: iris-v2
      weight: 0
"""

SELDON_DEPLOYMENT = """\
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: iris
  namespace: default
spec:
  predictors:
  - name: default
    graph:
      name: classifier
      modelUri: gs://seldon-models/v1.12.0-dev/sklearn/iris
      implementation: SKLEARN_SERVER
"""

METRIC = """\
apiVersion: iter8.tools/v2alpha2
kind: Metric
metadata:
  name: mean-latency
  namespace: default
spec:
  description: Mean latency
  jqExpression: .data.result[0].value[1] | tonumber
  params:
  - name: query
    value: |
      (sum(increase(seldon_api_executor_client_requests_seconds_sum{seldon_deployment_id='$sid'}[${elapsedTime}s])) or on() vector(0))
  provider: prometheus
  sampleSize: iter8-seldon/request-count
  type: Gauge
  units: milliseconds
  urlTemplate: http://seldon-core-analytics-prometheus-seldon.seldon-system/api/v1/query
"""


def dry_run(cluster: LocalCluster, manifest: str) -> tuple[bool, str]:
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", stdin=manifest, check=False)
    return proc.returncode == 0, proc.stdout + proc.stderr


def accepted(cluster: LocalCluster, manifest: str) -> None:
    ok, out = dry_run(cluster, manifest)
    assert ok, out


def rejected(cluster: LocalCluster, manifest: str, *fragments: str) -> None:
    ok, out = dry_run(cluster, manifest)
    assert not ok, f"accepted, but should be rejected:\n{manifest}"
    assert " is invalid: " in out, out
    for fragment in fragments:
        assert fragment in out, out


GATEWAY_API_STANDARD = ("backendtlspolicies", "gatewayclasses", "gateways", "grpcroutes", "httproutes",
                        "listenersets", "referencegrants", "tcproutes", "tlsroutes", "udproutes")
"""The Gateway API v1.6.3 standard channel's CRDs (config/crd/standard), fetched by scripts/toolchain."""


def test_crds_are_established(local_cluster: LocalCluster) -> None:
    names = local_cluster.kubectl("get", "crd", "-o", "name").stdout.split()
    prefix = "customresourcedefinition.apiextensions.k8s.io/"
    assert sorted(names) == sorted([
        f"{prefix}metrics.iter8.tools",
        f"{prefix}seldondeployments.machinelearning.seldon.io",
        f"{prefix}virtualservices.networking.istio.io",
        f"{prefix}inferenceservices.serving.kserve.io",
        *(f"{prefix}{kind}.gateway.networking.k8s.io" for kind in GATEWAY_API_STANDARD),
    ])


@pytest.mark.parametrize("version", ["v1alpha3", "v1beta1", "v1"])
def test_seed_routing_rule_is_accepted(local_cluster: LocalCluster, version: str) -> None:
    accepted(local_cluster, ROUTING_RULE.replace("networking.istio.io/v1alpha3", f"networking.istio.io/{version}"))


def test_string_weight_is_rejected(local_cluster: LocalCluster) -> None:
    rejected(local_cluster, ROUTING_RULE.replace("weight: 100", 'weight: "50"'), "spec.http[0].route[0].weight")


def test_route_without_destination_host_is_rejected(local_cluster: LocalCluster) -> None:
    manifest = ROUTING_RULE.replace("        host: iris-default.ns-candidate.svc.cluster.local\n", "")
    rejected(local_cluster, manifest, "spec.http[0].route[1].destination.host")


def test_route_without_destination_is_rejected(local_cluster: LocalCluster) -> None:
    manifest = ROUTING_RULE.replace(
        "    - destination:\n        host: iris-default.ns-candidate.svc.cluster.local\n        port:\n          number: 8000\n      headers:",
        "    - headers:",
    )
    rejected(local_cluster, manifest, "spec.http[0].route[1].destination")


def test_weight_above_100_is_rejected(local_cluster: LocalCluster) -> None:
    rejected(local_cluster, ROUTING_RULE.replace("weight: 100", "weight: 150"), "weight")


def test_non_string_response_header_is_rejected(local_cluster: LocalCluster) -> None:
    rejected(local_cluster, ROUTING_RULE.replace("version: iris-v1", "version: 1"), "headers.response.set")


def test_seed_seldon_deployment_is_accepted(local_cluster: LocalCluster) -> None:
    accepted(local_cluster, SELDON_DEPLOYMENT)


def test_seldon_deployment_without_predictors_is_rejected(local_cluster: LocalCluster) -> None:
    manifest = SELDON_DEPLOYMENT.split("  predictors:")[0] + "  protocol: seldon\n"
    rejected(local_cluster, manifest, "spec.predictors")


def test_seldon_deployment_with_empty_predictors_is_rejected(local_cluster: LocalCluster) -> None:
    manifest = SELDON_DEPLOYMENT.split("  predictors:")[0] + "  predictors: []\n"
    rejected(local_cluster, manifest, "spec.predictors")


def test_seldon_graph_without_name_is_rejected(local_cluster: LocalCluster) -> None:
    rejected(local_cluster, SELDON_DEPLOYMENT.replace("      name: classifier\n", ""), "graph.name")


def test_seldon_component_specs_stay_free_form(local_cluster: LocalCluster) -> None:
    manifest = SELDON_DEPLOYMENT + (
        "    componentSpecs:\n"
        "    - spec:\n"
        "        containers:\n"
        "        - name: classifier\n"
        "          image: example/iris:1.0\n"
        "          resources: {requests: {cpu: 100m}}\n"
    )
    stored = local_cluster.kubectl(
        "apply", "--dry-run=server", "-o", "jsonpath={.spec.predictors[0].componentSpecs[0].spec.containers[0].image}",
        "-f", "-", stdin=manifest,
    ).stdout
    assert stored == "example/iris:1.0"


def test_seed_metric_is_accepted(local_cluster: LocalCluster) -> None:
    accepted(local_cluster, METRIC)


def test_metric_with_unknown_type_is_rejected(local_cluster: LocalCluster) -> None:
    rejected(local_cluster, METRIC.replace("type: Gauge", "type: Histogram"), "spec.type")
