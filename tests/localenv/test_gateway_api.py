"""Routing by a Gateway API HTTPRoute (docs/gateway-api.md): relative weights, 0 = no traffic, a
cross-namespace backendRef needs a ReferenceGrant in the backend's namespace (else its share gets
500 and the route's ResolvedRefs condition is False, RefNotPermitted), status written only when
it changes; a promotion through the route and the InferenceService."""

from __future__ import annotations

import copy
import time
from collections import Counter
from typing import Any

import requests

from components.routing.istio import Route
from components.serving.kserve import PREDICTOR_PORT
from localenv.app import DataPlane
from localenv.httproute import CONTROLLER_NAME, Grant, permitted
from localenv.models import Model
from testbed.fakes import routing_rule
from tests.localenv.mesh import HOST, V1_PAYLOAD, V2_PAYLOAD, MeshCluster, backend, http_route, reference_grant

BASELINE = "iris-predictor.ns-baseline.svc.cluster.local"
CANDIDATE = "iris-predictor.ns-candidate.svc.cluster.local"


def send(http: requests.Session, plane: DataPlane, n: int, host: str = HOST) -> Counter[int]:
    codes: Counter[int] = Counter()
    for _ in range(n):
        codes[http.post(f"{plane.url}/v1/models/iris:predict", json=V1_PAYLOAD, headers={"Host": host},
                        timeout=10).status_code] += 1
    return codes


def routed_during(http: requests.Session, plane: DataPlane, n: int) -> tuple[Counter[str], Counter[int]]:
    before = Counter(plane.gateway.routed())
    codes = send(http, plane, n)
    return Counter(plane.gateway.routed()) - before, codes


def resolved_refs(mesh: MeshCluster) -> dict[str, Any]:
    [parent] = [p for p in mesh.routes[0]["status"]["parents"] if p["controllerName"] == CONTROLLER_NAME]
    [condition] = [c for c in parent["conditions"] if c["type"] == "ResolvedRefs"]
    found: dict[str, Any] = condition
    return found


def set_route(mesh: MeshCluster, plane: DataPlane, *backends: dict[str, Any]) -> None:
    mesh.set(routes=[http_route(*backends)])
    plane.sync.run_once()


def test_weights_are_relative_not_percentages(mesh: MeshCluster, mesh_plane: DataPlane,
                                              http: requests.Session) -> None:
    routed, codes = routed_during(http, mesh_plane, 10)
    assert (routed, codes) == (Counter({BASELINE: 9, CANDIDATE: 1}), Counter({200: 10}))
    set_route(mesh, mesh_plane, backend("ns-baseline", 3), backend("ns-candidate", 1))  # sums to 4, not 100
    assert routed_during(http, mesh_plane, 40)[0] == Counter({BASELINE: 30, CANDIDATE: 10})
    set_route(mesh, mesh_plane, backend("ns-baseline", 500_000), backend("ns-candidate", 500_000))
    assert routed_during(http, mesh_plane, 10)[0] == Counter({BASELINE: 5, CANDIDATE: 5})


def test_unspecified_weight_is_one_and_zero_gets_no_traffic(mesh: MeshCluster, mesh_plane: DataPlane,
                                                            http: requests.Session) -> None:
    set_route(mesh, mesh_plane, backend("ns-baseline", None), backend("ns-candidate", 3))
    assert routed_during(http, mesh_plane, 8)[0] == Counter({BASELINE: 2, CANDIDATE: 6})
    set_route(mesh, mesh_plane, backend("ns-baseline", 0), backend("ns-candidate", 7))
    assert routed_during(http, mesh_plane, 20) == (Counter({CANDIDATE: 20}), Counter({200: 20}))
    assert mesh_plane.status()["weightedHosts"] == [CANDIDATE]
    set_route(mesh, mesh_plane, backend("ns-baseline", 0), backend("ns-candidate", 0))
    assert routed_during(http, mesh_plane, 5) == (Counter(), Counter({500: 5}))


def test_cross_namespace_backend_without_reference_grant_gets_no_traffic(
        mesh: MeshCluster, mesh_plane: DataPlane, http: requests.Session) -> None:
    assert resolved_refs(mesh)["status"] == "True"
    mesh.set(grants=[reference_grant("ns-baseline")])  # the candidate's grant is gone
    mesh_plane.sync.run_once()
    routed, codes = routed_during(http, mesh_plane, 20)
    # Gateway API: the share the invalid backend would have had (1 in 10) is answered 500.
    assert (routed, codes) == (Counter({BASELINE: 18}), Counter({200: 18, 500: 2}))
    condition = resolved_refs(mesh)
    assert (condition["status"], condition["reason"]) == ("False", "RefNotPermitted")
    assert "ns-candidate/iris-predictor" in condition["message"]
    assert mesh_plane.status()["httpRoutes"][0]["rules"][0][1]["invalid"] == "RefNotPermitted"
    assert mesh_plane.status()["weightedHosts"] == [BASELINE], "an invalid backend gets no share"

    mesh.set(grants=[reference_grant("ns-baseline"), reference_grant("ns-candidate")])
    mesh_plane.sync.run_once()
    assert routed_during(http, mesh_plane, 10) == (Counter({BASELINE: 9, CANDIDATE: 1}), Counter({200: 10}))
    assert resolved_refs(mesh)["status"] == "True"


def test_status_is_written_once_per_change(mesh: MeshCluster, mesh_plane: DataPlane) -> None:
    written = len(mesh.statuses)
    assert written == 1
    for _ in range(3):
        mesh_plane.sync.run_once()
    assert len(mesh.statuses) == written, "an unchanged status is not written again"
    first = resolved_refs(mesh)
    assert first["observedGeneration"] == 1 and first["lastTransitionTime"]
    mesh.set(grants=[])
    mesh_plane.sync.run_once()
    assert len(mesh.statuses) == written + 1
    [(namespace, name, status)] = mesh.statuses[written:]
    assert (namespace, name) == ("default", "iris")
    [parent] = status["parents"]
    assert parent["parentRef"] == {"name": "iris-gateway", "namespace": "istio-system"}
    assert {c["type"]: c["status"] for c in parent["conditions"]} == {"Accepted": "True", "ResolvedRefs": "False"}


def test_missing_backend_is_backend_not_found(mesh: MeshCluster, mesh_plane: DataPlane,
                                              http: requests.Session) -> None:
    set_route(mesh, mesh_plane, backend("ns-baseline", 1), backend("ns-candidate", 1, name="nothing-here"))
    assert routed_during(http, mesh_plane, 4) == (Counter({BASELINE: 2}), Counter({200: 2, 500: 2}))
    assert resolved_refs(mesh)["reason"] == "BackendNotFound"


def test_grant_rules() -> None:
    grant = Grant("ns-candidate", (("gateway.networking.k8s.io", "HTTPRoute", "default"),),
                  (("", "Service", "iris-predictor"),))
    assert permitted("default", "ns-candidate", "iris-predictor", [grant])
    assert not permitted("default", "ns-candidate", "other", [grant]), "the grant names one Service"
    assert not permitted("elsewhere", "ns-candidate", "iris-predictor", [grant]), "from another namespace"
    assert not permitted("default", "ns-baseline", "iris-predictor", [grant]), "a grant lives in the target's namespace"
    assert permitted("ns-baseline", "ns-baseline", "iris-predictor", []), "same namespace needs no grant"


def test_host_and_route_precedence(mesh: MeshCluster, mesh_plane: DataPlane, http: requests.Session) -> None:
    assert send(http, mesh_plane, 1, host="other.example.com") == Counter({404: 1})
    older = http_route(backend("ns-candidate", 1), name="older", created="2025-01-01T00:00:00Z")
    mesh.set(routes=[mesh.routes[0], older])
    mesh_plane.sync.run_once()
    assert routed_during(http, mesh_plane, 5)[0] == Counter({CANDIDATE: 5}), "the oldest route wins a tie"


def test_promotion_switches_the_model_behind_the_baseline(mesh: MeshCluster, mesh_plane: DataPlane,
                                                          http: requests.Session) -> None:
    def baseline_answer() -> Any:
        return http.post(f"{mesh_plane.url}/services/ns-baseline/iris-predictor/v1/models/iris:predict",
                         json=V1_PAYLOAD, timeout=10).json()

    assert baseline_answer() == {"predictions": [1]}  # the sklearn server answers labels
    isvcs = mesh.inference_services()
    isvcs[0]["spec"]["predictor"]["model"] = isvcs[1]["spec"]["predictor"]["model"]
    mesh.set(isvcs=isvcs, routes=[http_route(backend("ns-baseline", 1))])
    mesh_plane.sync.run_once()
    [[_, versicolor, _]] = baseline_answer()["predictions"]  # xgboost: probabilities
    assert versicolor > 0.9
    assert routed_during(http, mesh_plane, 5)[0] == Counter({BASELINE: 5})


class DefaultingCluster(MeshCluster):
    """An API server whose CRD defaults fields of the stored status (`parentRef.group`, `kind`)."""

    def write_route_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        status = copy.deepcopy(status)
        for parent in status["parents"]:
            parent["parentRef"] = {"group": "gateway.networking.k8s.io", "kind": "Gateway", **parent["parentRef"]}
        super().write_route_status(namespace, name, status)


def test_a_status_stored_differently_is_not_written_again(models: dict[str, Model]) -> None:
    cluster = DefaultingCluster()
    with DataPlane(cluster, poll_seconds=0.05, models=models) as plane:
        for _ in range(3):
            time.sleep(1.0)  # a second later: a status written anew would carry a new lastTransitionTime
            plane.sync.run_once()
        assert len(cluster.statuses) == 1, "each pass would write again, and each write is a watch event"


def test_kserve_behind_a_virtual_service_is_routed_by_its_weights_on_both_protocols(
        mesh: MeshCluster, mesh_plane: DataPlane, http: requests.Session) -> None:
    routes = (Route("iris-v1", "ns-baseline", "iris", "default", "iris-predictor", PREDICTOR_PORT),
              Route("iris-v2", "ns-candidate", "iris", "default", "iris-predictor", PREDICTOR_PORT))
    mesh.set(routes=[], vs=routing_rule(75, 25, routes=routes))  # the program's VirtualService, no HTTPRoute
    mesh_plane.sync.run_once()
    before = Counter(mesh_plane.gateway.routed())
    answers = [http.post(f"{mesh_plane.url}{path}", json=body, headers={"Host": HOST}, timeout=10)
               for path, body in [("/v1/models/iris:predict", V1_PAYLOAD), ("/v2/models/iris/infer", V2_PAYLOAD)] * 4]
    assert [a.status_code for a in answers] == [200] * 8
    assert Counter(mesh_plane.gateway.routed()) - before == Counter({BASELINE: 6, CANDIDATE: 2})
    assert {a.headers["version"] for a in answers} == {"iris-v1", "iris-v2"}  # the route's response header
    # Another host is not the VirtualService's: 404 from the gateway, nothing routed.
    other = http.post(f"{mesh_plane.url}/v1/models/iris:predict", json=V1_PAYLOAD, headers={"Host": "other.example"},
                      timeout=10)
    assert other.status_code == 404
