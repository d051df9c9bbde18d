"""The gateway's Istio metrics and the KServe pods' metrics are what Istio and KServe export
(tests/localenv/istio_families.py and kserve_families.py, transcribed from docs/istio-metrics.md and
docs/kserve.md): families, types, label names and values, buckets; found by the mesh discovery."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from localenv.app import DataPlane
from testbed.fakes import SKLEARN, routing_rule, seldon_deployment
from tests.localenv import istio_families as istio
from tests.localenv import kserve_families as kserve
from tests.localenv.helpers import SEED_PAYLOAD
from tests.localenv.mesh import HOST, V1_PAYLOAD, V2_PAYLOAD, MeshCluster


def scrape(http: requests.Session, plane: DataPlane) -> dict[tuple[str, str], list[Any]]:
    """(namespace, container) -> the parsed families of every mesh target."""
    found: dict[tuple[str, str], list[Any]] = {}
    for group in http.get(f"{plane.url}/discovery/mesh-targets", timeout=10).json():
        meta = group["labels"]
        text = http.get(plane.url + meta["__meta_kubernetes_pod_annotation_prometheus_io_path"], timeout=10).text
        found[(meta["__meta_kubernetes_namespace"], meta["__meta_kubernetes_pod_container_name"])] = list(
            text_string_to_metric_families(text))
    return found


def post(http: requests.Session, plane: DataPlane, path: str, body: Any, host: str = HOST) -> int:
    return http.post(plane.url + path, json=body, headers={"Host": host}, timeout=10).status_code


def test_mesh_targets_carry_the_pods_annotations(mesh_plane: DataPlane, http: requests.Session) -> None:
    groups = http.get(f"{mesh_plane.url}/discovery/mesh-targets", timeout=10).json()
    by = {(g["labels"]["__meta_kubernetes_namespace"], g["labels"]["__meta_kubernetes_pod_container_name"]): g["labels"]
          for g in groups}
    assert set(by) == {("istio-system", "istio-proxy"), ("ns-baseline", kserve.CONTAINER),
                       ("ns-candidate", kserve.CONTAINER), ("ns-baseline", "istio-proxy"),
                       ("ns-candidate", "istio-proxy"), ("default", "app")}, \
        "the gateway, each model server and its sidecar, the engagement application"
    for ns in ("ns-baseline", "ns-candidate"):
        meta = by[(ns, kserve.CONTAINER)]
        assert meta["__meta_kubernetes_pod_annotation_prometheus_io_port"] == kserve.PORT
        assert meta["__meta_kubernetes_pod_annotation_prometheus_io_path"].endswith(kserve.PATH)
        assert meta["__meta_kubernetes_pod_label_serving_kserve_io_inferenceservice"] == "iris"
        assert meta["__meta_kubernetes_pod_name"].startswith("iris-predictor-")


def test_kserve_exposition_matches_the_model_servers_families(mesh_plane: DataPlane, http: requests.Session) -> None:
    assert post(http, mesh_plane, "/v1/models/iris:predict", V1_PAYLOAD) == 200
    assert post(http, mesh_plane, "/v2/models/iris/infer", V2_PAYLOAD) == 200
    assert post(http, mesh_plane, "/v1/models/iris:predict", {"instances": [[1, 2]]}) == 500
    seen: dict[str, set[str]] = defaultdict(set)
    counts: dict[tuple[str, str], float] = {}
    for (namespace, container), families in scrape(http, mesh_plane).items():
        if container != kserve.CONTAINER:
            continue
        for family in families:
            assert family.name in kserve.FAMILIES, f"{family.name} is not a KServe family"
            assert (family.type, family.documentation) == (kserve.TYPE, kserve.FAMILIES[family.name])
            seen[namespace].add(family.name)
            for sample in family.samples:
                assert set(sample.labels) - {"le"} == kserve.LABELS
                assert sample.labels["model_name"] == "iris"
                if sample.name.endswith("_bucket"):
                    assert sample.labels["le"] in kserve.BUCKETS
                if sample.name.endswith("_count"):
                    counts[(namespace, family.name)] = sample.value
    assert dict(seen) == {"ns-baseline": set(kserve.OBSERVED_BY_PREDICT)}, "3 calls, all to the baseline (9:1)"
    # a failed prediction is timed in preprocess and predict, never in postprocess
    assert counts[("ns-baseline", "request_preprocess_seconds")] == 3
    assert counts[("ns-baseline", "request_predict_seconds")] == 3
    assert counts[("ns-baseline", "request_postprocess_seconds")] == 2


def istio_samples(http: requests.Session, plane: DataPlane, sidecars: bool = False) -> list[Any]:
    """The gateway's samples, or (`sidecars`) those of every model pod's sidecar."""
    found = []
    for (namespace, container), families in scrape(http, plane).items():
        if container != "istio-proxy" or (namespace != "istio-system") != sidecars:
            continue
        for family in families:
            assert family.name in istio.FAMILIES and family.type == istio.FAMILIES[family.name], family.name
            found.extend(family.samples)
    return found


def test_istio_exposition_matches_the_standard_metrics(mesh: MeshCluster, mesh_plane: DataPlane,
                                                       http: requests.Session) -> None:
    for _ in range(10):
        assert post(http, mesh_plane, "/v1/models/iris:predict", V1_PAYLOAD) == 200
    assert post(http, mesh_plane, "/v1/models/iris:predict", V1_PAYLOAD, host="nobody.example.com") == 404
    samples = istio_samples(http, mesh_plane)
    les = set()
    totals: dict[tuple[str, str, str], float] = {}
    for sample in samples:
        names = [n for n in sample.labels if n != "le"]
        assert set(names) == set(istio.LABELS), sorted(set(names) ^ set(istio.LABELS))
        for name, value in istio.GATEWAY_SOURCE.items():
            assert sample.labels[name] == value, name
        if sample.name.endswith("_bucket"):
            les.add(sample.labels["le"])
        if sample.name == "istio_requests_total":
            key = (sample.labels["destination_workload_namespace"], sample.labels["response_code"],
                   sample.labels["response_flags"])
            totals[key] = sample.value
            if sample.labels["response_code"] == "200":
                namespace = sample.labels["destination_workload_namespace"]
                expected = istio.kserve_destination("iris", namespace)
                assert {k: sample.labels[k] for k in expected} == expected
    assert les == set(istio.BUCKETS)
    assert totals == {("ns-baseline", "200", istio.RESPONSE_FLAGS["ok"]): 9,
                      ("ns-candidate", "200", istio.RESPONSE_FLAGS["ok"]): 1,
                      ("unknown", "404", istio.RESPONSE_FLAGS["no route"]): 1}

    sidecar_totals = {}
    for sample in istio_samples(http, mesh_plane, sidecars=True):
        assert set(sample.labels) - {"le"} == set(istio.LABELS)
        for name, value in istio.SIDECAR_DESTINATION.items():
            assert sample.labels[name] == value, name
        namespace = sample.labels["destination_workload_namespace"]
        expected = istio.kserve_destination("iris", namespace)
        assert {k: sample.labels[k] for k in expected} == expected
        if sample.name == "istio_requests_total":
            sidecar_totals[namespace] = sample.value
    assert sidecar_totals == {"ns-baseline": 9, "ns-candidate": 1}, "each request once more, by its pod"


def test_istio_labels_through_the_virtual_service_and_without_a_pod(
        mesh: MeshCluster, mesh_plane: DataPlane, http: requests.Session) -> None:
    mesh.set(vs=routing_rule(100, 0), deployments=[seldon_deployment("ns-baseline", SKLEARN)], routes=[])
    mesh_plane.sync.run_once()
    reply = http.post(f"{mesh_plane.url}/api/v1.0/predictions", data=SEED_PAYLOAD, headers={"Host": HOST}, timeout=10)
    assert reply.status_code == 200, "whatever the route object, the gateway reports Istio's metrics"
    [seldon] = [s for s in istio_samples(http, mesh_plane) if s.name == "istio_requests_total"]
    assert (seldon.labels["destination_workload"], seldon.labels["destination_version"],
            seldon.labels["destination_service"], seldon.labels["response_flags"]) == (
        "iris-default-0-classifier", "default", "iris-default.ns-baseline.svc.cluster.local", "-")

    mesh.set(deployments=[])  # the route stays, its SeldonDeployment (pod) is gone
    mesh_plane.sync.run_once()
    assert http.post(f"{mesh_plane.url}/api/v1.0/predictions", data=SEED_PAYLOAD, headers={"Host": HOST},
                     timeout=10).status_code == 503
    [gone] = [s for s in istio_samples(http, mesh_plane)
              if s.name == "istio_requests_total" and s.labels["response_code"] == "503"]
    assert gone.labels["response_flags"] == istio.RESPONSE_FLAGS["no healthy upstream"]
    assert gone.labels["destination_service"] == "iris-default.ns-baseline.svc.cluster.local"
    assert {k: gone.labels[k] for k in istio.NO_POD} == istio.NO_POD
