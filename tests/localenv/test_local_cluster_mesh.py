"""KServe and Gateway API objects in a real local API server drive the data plane (watches), and the
HTTPRoute's status is written through the status subresource. Needs etcd and kube-apiserver
(skipped without). The kinds' CRDs are the cluster's when it serves them (the toolchain's, from
their sources), else this test's stand-ins (`data/mesh-crds.yaml`)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from localenv.app import DataPlane
from localenv.cluster import ApiServerSource
from localenv.models import Model
from testbed.toolchain import LocalCluster
from testbed.waiting import wait_for
from tests.localenv.mesh import HOST, V1_PAYLOAD, backend, http_route, inference_service, reference_grant
from tests.localenv.test_local_cluster import WEIGHT_CHANGE_SECONDS, apply, namespace

BASELINE, CANDIDATE = "localenv-mesh-baseline", "localenv-mesh-candidate"
KINDS = ("httproutes.gateway.networking.k8s.io", "referencegrants.gateway.networking.k8s.io",
         "inferenceservices.serving.kserve.io")


def route(baseline: int, candidate: int) -> dict[str, Any]:
    return http_route(backend(BASELINE, baseline), backend(CANDIDATE, candidate), name="localenv-mesh")


@pytest.fixture
def mesh_objects(local_cluster: LocalCluster) -> Iterator[LocalCluster]:
    missing = [k for k in KINDS if local_cluster.kubectl("get", "crd", k, check=False).returncode != 0]
    if missing:
        local_cluster.kubectl("apply", "-f", str(Path(__file__).parent / "data" / "mesh-crds.yaml"))
        local_cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                              *[f"crd/{k}" for k in missing])
    apply(local_cluster, namespace(BASELINE), namespace(CANDIDATE), inference_service(BASELINE, "sklearn"),
          inference_service(CANDIDATE, "xgboost"), reference_grant(BASELINE), route(9, 1))
    yield local_cluster
    local_cluster.kubectl("delete", "--ignore-not-found", "-n", "default", "httproute/localenv-mesh", check=False)
    for ns in (BASELINE, CANDIDATE):
        local_cluster.kubectl("delete", "--ignore-not-found", "-n", ns, "inferenceservice/iris",
                              "referencegrant/allow-default-routes", check=False)
    local_cluster.kubectl("delete", "--ignore-not-found", "--wait=false", f"namespace/{BASELINE}",
                          f"namespace/{CANDIDATE}", check=False)


@pytest.fixture
def plane_url(mesh_objects: LocalCluster, models: dict[str, Model]) -> Iterator[str]:
    """In this process (the CLI's own test is test_local_cluster.py): the interpreter's start and
    imports would add seconds on a loaded machine."""
    source = ApiServerSource(mesh_objects.kubeconfig)
    try:
        with DataPlane(source, models=models) as plane:
            assert plane.sync.synced.wait(30), plane.sync.last_error
            yield plane.url
    finally:
        source.close()


def resolved_refs(cluster: LocalCluster) -> dict[str, Any] | None:
    obj = json.loads(cluster.kubectl("get", "httproute", "localenv-mesh", "-n", "default", "-o", "json").stdout)
    for parent in (obj.get("status") or {}).get("parents") or []:
        for condition in parent.get("conditions") or []:
            if condition["type"] == "ResolvedRefs":
                found: dict[str, Any] = condition
                return found
    return None


def codes(http: requests.Session, url: str, n: int) -> Counter[int]:
    return Counter(http.post(f"{url}/v1/models/iris:predict", json=V1_PAYLOAD, headers={"Host": HOST},
                             timeout=10).status_code for _ in range(n))


def test_reference_grant_status_and_weights_through_the_api_server(mesh_objects: LocalCluster, plane_url: str,
                                                                   http: requests.Session) -> None:
    cluster, url = mesh_objects, plane_url
    condition = wait_for(lambda: resolved_refs(cluster), 10, "the route's status")
    assert (condition["status"], condition["reason"]) == ("False", "RefNotPermitted")
    assert CANDIDATE in condition["message"]
    assert codes(http, url, 10) == Counter({200: 9, 500: 1}), "the candidate's share without a grant: 500"

    apply(cluster, reference_grant(CANDIDATE))
    wait_for(lambda: (resolved_refs(cluster) or {}).get("status") == "True", 10, "ResolvedRefs True")
    assert codes(http, url, 10) == Counter({200: 10})

    apply(cluster, route(0, 1))

    def candidate_answers() -> bool:
        answer = http.post(f"{url}/v1/models/iris:predict", json=V1_PAYLOAD, headers={"Host": HOST},
                           timeout=10).json()["predictions"][0]
        return isinstance(answer, list) and len(answer) == 3  # the xgboost candidate's probabilities

    wait_for(candidate_answers, WEIGHT_CHANGE_SECONDS, "the weight change to reach traffic")
    assert all(candidate_answers() for _ in range(5)), "weight 0: the baseline gets nothing"
