"""A real Prometheus scrapes the gateway's Istio metrics and the KServe pods' metrics through the data
plane's mesh discovery with Istio's pod relabelling (`localenv.scrape_config`, job `mesh-pods`):
per-version request counts come back by `destination_workload_namespace` (from either reporter)
and by `namespace`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from localenv.app import DataPlane
from localenv.models import Model
from localenv.scrape_config import MESH_JOB
from testbed.live import LivePrometheus
from testbed.promserver import PrometheusUnavailable
from testbed.waiting import wait_for
from tests.localenv.mesh import HOST, V1_PAYLOAD, MeshCluster


@pytest.fixture
def scraped(models: dict[str, Model], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DataPlane, str]]:
    with DataPlane(MeshCluster(), poll_seconds=0.05, models=models) as plane:
        prometheus = LivePrometheus(tmp_path_factory.mktemp("mesh"), plane.url.removeprefix("http://"),
                                    ready_query="vector(1)")
        try:
            prometheus.start()
        except PrometheusUnavailable as err:
            pytest.fail(f"cannot start the live Prometheus: {err}", pytrace=False)
        try:
            yield plane, prometheus.url
        finally:
            prometheus.stop()


def by(url: str, label: str, query: str) -> dict[str, float]:
    body = requests.get(url + "/api/v1/query", params={"query": f"sum by ({label}) ({query})"}, timeout=10).json()
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in body["data"]["result"]}


def test_prometheus_reads_istio_and_kserve_metrics_per_version(scraped: tuple[DataPlane, str],
                                                              http: requests.Session) -> None:
    plane, url = scraped
    for _ in range(20):
        assert http.post(f"{plane.url}/v1/models/iris:predict", json=V1_PAYLOAD, headers={"Host": HOST},
                         timeout=10).status_code == 200
    per_version = {"ns-baseline": 18.0, "ns-candidate": 2.0}
    wait_for(lambda: by(url, "destination_workload_namespace",
                        'istio_requests_total{reporter="source", response_code="200"}') == per_version,
             30, "the gateway's requests in Prometheus", every=0.2)
    wait_for(lambda: by(url, "namespace", "request_predict_seconds_count") == per_version, 30,
             "the model servers' predictions in Prometheus", every=0.2)
    wait_for(lambda: by(url, "destination_workload_namespace",
                        'istio_requests_total{reporter="destination"}') == per_version,
             30, "the sidecars' requests in Prometheus", every=0.2)
    assert by(url, "job", "istio_requests_total") == {MESH_JOB: 40.0}, "once by the gateway, once by the pod"
    assert by(url, "le", 'istio_request_duration_milliseconds_bucket{le="3600000"}') == {"3600000": 40.0}
    assert set(by(url, "pod", "request_predict_seconds_count")) == {
        s.pod for s in plane.model_servers.servers()}
