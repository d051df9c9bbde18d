"""The data plane exports what a Seldon Core v1 pod exports (tests/localenv/seldon_families.py,
transcribed from docs/seldon-metrics.md): families, label names, `service`/`method`/`code` values,
buckets and quantiles, per container, one scrape target per container of each SeldonDeployment."""

from __future__ import annotations

import re
from collections import defaultdict

import requests
from prometheus_client.parser import text_string_to_metric_families

from localenv.app import DataPlane
from testbed.fakes import FakeCluster, routing_rule
from tests.localenv.helpers import feedback, predict, targets
from tests.localenv.seldon_families import (
    ADDED_BY_PROMETHEUS,
    BUCKETS,
    EXECUTOR,
    FAMILIES,
    METHOD,
    MODEL_SERVER,
    QUANTILES,
    SERVICE,
)

PREDICTION, FEEDBACK = 0, 1


def exercise(cluster: FakeCluster, plane: DataPlane, http: requests.Session) -> None:
    """Every kind of call the seed makes, plus errors: both namespaces, every family gets series."""
    cluster.set(vs=routing_rule(50, 50))
    plane.sync.run_once()
    for _ in range(4):
        assert predict(http, plane.url).status_code == 200
    http.post(f"{plane.url}/admin/faults", json={"ns-candidate": {"errorRate": 1.0}}, timeout=10)
    assert {predict(http, plane.url).status_code for _ in range(2)} == {200, 500}
    for ns in ("ns-baseline", "ns-candidate"):
        assert feedback(http, plane.url, ns, reward=1).status_code == 200
        assert feedback(http, plane.url, ns, reward=0.25).status_code == 200
        assert feedback(http, plane.url, ns, reward="lots").status_code == 400


def scrape(plane: DataPlane, http: requests.Session) -> dict[tuple[str, str], str]:
    """(pod, container) -> the exposition, for every discovered target."""
    found = {}
    for group in targets(http, plane.url):
        meta = group["labels"]
        found[(meta["__meta_kubernetes_pod_name"], meta["__meta_kubernetes_pod_container_name"])] = http.get(
            plane.url + meta["__meta_kubernetes_pod_annotation_prometheus_io_path"], timeout=10).text
    return found


def test_one_target_per_container_of_each_seldon_deployment(cluster: FakeCluster, plane: DataPlane,
                                                            http: requests.Session) -> None:
    groups = targets(http, plane.url)
    by_namespace = defaultdict(set)
    for group in groups:
        meta = group["labels"]
        assert group["targets"] == [plane.url.removeprefix("http://")]
        assert meta["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "true"
        assert meta["__meta_kubernetes_pod_container_port_name"] == "metrics"
        assert meta["__meta_kubernetes_pod_label_seldon_deployment_id"] == "iris"
        assert re.fullmatch(r"iris-default-0-classifier-[0-9a-f]{10}-[0-9a-f]{5}", meta["__meta_kubernetes_pod_name"])
        by_namespace[meta["__meta_kubernetes_namespace"]].add(
            (meta["__meta_kubernetes_pod_container_name"], meta["__meta_kubernetes_pod_container_port_number"]))
    assert by_namespace == {ns: {("seldon-container-engine", "8000"), ("classifier", "6000")}
                            for ns in ("ns-baseline", "ns-candidate")}
    assert len({g["labels"]["__meta_kubernetes_pod_annotation_prometheus_io_path"] for g in groups}) == 4
    assert http.get(f"{plane.url}/pods/ns-baseline/no-such-pod/classifier/prometheus", timeout=10).status_code == 404


def test_exposition_matches_seldons_families_labels_and_values(cluster: FakeCluster, plane: DataPlane,
                                                               http: requests.Session) -> None:
    exercise(cluster, plane, http)
    expected = {f.name: f for f in FAMILIES}
    seen: dict[str, set[str]] = defaultdict(set)  # family -> containers it came from
    services: dict[str, set[str]] = defaultdict(set)
    for (_, container), text in scrape(plane, http).items():
        kind = EXECUTOR if container == "seldon-container-engine" else MODEL_SERVER
        for family in text_string_to_metric_families(text):
            assert family.name in expected, f"{family.name} is not a Seldon family"
            table = expected[family.name]
            assert (family.type, kind) == (table.type, table.container), family.name
            seen[family.name].add(kind)
            for sample in family.samples:
                names = set(sample.labels) - {"le", "quantile"}
                assert names == table.labels, f"{sample.name}: {sorted(names ^ table.labels)}"
                assert not names & ADDED_BY_PROMETHEUS
                assert sample.labels["method"] == METHOD["rest" if kind == EXECUTOR else MODEL_SERVER]
                if kind == EXECUTOR:
                    services[family.name.removesuffix("_summary")].add(sample.labels["service"])
                    assert re.fullmatch(r"[1-5][0-9][0-9]", sample.labels["code"]), sample.labels["code"]
                if sample.name.endswith("_bucket"):
                    assert sample.labels["le"] in BUCKETS
                if "quantile" in sample.labels:
                    assert sample.labels["quantile"] in QUANTILES
    assert set(seen) == set(expected), f"families never exported: {set(expected) - set(seen)}"
    assert services == {
        "seldon_api_executor_server_requests_seconds": set(SERVICE[("server", "rest", "seldon")]),
        "seldon_api_executor_client_requests_seconds": set(SERVICE[("client", "rest", "seldon")]),
    }


def test_every_bucket_and_quantile_of_seldon_is_exported(cluster: FakeCluster, plane: DataPlane,
                                                         http: requests.Session) -> None:
    exercise(cluster, plane, http)
    les, quantiles = set(), set()
    for text in scrape(plane, http).values():
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                les.add(sample.labels.get("le"))
                quantiles.add(sample.labels.get("quantile"))
    assert les - {None} == set(BUCKETS)
    assert quantiles - {None} == set(QUANTILES)
