"""The KServe model server stand-in (docs/kserve.md): v1 and v2 protocols, KServe's error bodies
and status codes, the predictor Service name, and what is not served."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from localenv.app import DataPlane
from localenv.kserve import inference_service
from localenv.routes import BadObject
from tests.localenv import mesh as objects
from tests.localenv.mesh import HOST, V1_PAYLOAD, V2_PAYLOAD, MeshCluster


def direct(http: requests.Session, plane: DataPlane, namespace: str, path: str, body: Any) -> requests.Response:
    data = body if isinstance(body, bytes) else None
    return http.post(f"{plane.url}/services/{namespace}/iris-predictor{path}", data=data,
                     json=None if data is not None else body, timeout=10)


def test_predictor_service_name_is_isvc_name_dash_predictor() -> None:
    assert inference_service(objects.inference_service("ns", "sklearn")).service == "iris-predictor"
    named = objects.inference_service("ns", "xgboost", name="flowers")
    named["spec"]["predictor"]["name"] = "blue"
    assert inference_service(named).service == "flowers-blue-predictor"


def test_bad_inference_services_name_the_field() -> None:
    with pytest.raises(BadObject, match=r"modelFormat.name 'onnx' is not served"):
        inference_service(objects.inference_service("ns", "onnx"))
    no_uri = objects.inference_service("ns", "sklearn")
    del no_uri["spec"]["predictor"]["model"]["storageUri"]
    with pytest.raises(BadObject, match="storageUri is missing"):
        inference_service(no_uri)


def test_v1_predict(mesh_plane: DataPlane, http: requests.Session) -> None:
    assert direct(http, mesh_plane, "ns-baseline", "/v1/models/iris:predict", V1_PAYLOAD).json() == {
        "predictions": [1]}
    [[setosa, versicolor, virginica]] = direct(http, mesh_plane, "ns-candidate", "/v1/models/iris:predict",
                                               V1_PAYLOAD).json()["predictions"]
    assert versicolor == pytest.approx(0.98, abs=0.01) and setosa < versicolor and virginica < versicolor


def test_v2_infer(mesh_plane: DataPlane, http: requests.Session) -> None:
    answer = direct(http, mesh_plane, "ns-baseline", "/v2/models/iris/infer", {**V2_PAYLOAD, "id": "r1"}).json()
    assert answer == {"id": "r1", "model_name": "iris", "model_version": None,
                      "outputs": [{"name": "output-0", "shape": [1], "datatype": "INT64", "data": [1]}]}
    output = direct(http, mesh_plane, "ns-candidate", "/v2/models/iris/infer", V2_PAYLOAD).json()["outputs"][0]
    assert (output["shape"], output["datatype"], len(output["data"])) == ([1, 3], "FP32", 3)


def test_kserve_errors(mesh_plane: DataPlane, http: requests.Session) -> None:
    cases = [
        ("/v1/models/other:predict", V1_PAYLOAD, 404, {"error": "Model with name other does not exist."}),
        ("/v2/models/other/infer", V2_PAYLOAD, 404, {"error": "Model with name other does not exist."}),
        ("/v1/models/iris:predict", {"instances": "nope"}, 400, {"error": 'Expected "instances" to be a list'}),
        ("/v1/models/iris:predict", {"instances": [[1, 2, 3]]}, 500,
         {"error": "X has 3 features, but LogisticRegression is expecting 4 features as input."}),
        ("/v1/models/iris:predict", {"rows": []}, 500, {"error": "'instances'"}),
    ]
    for path, body, status, expected in cases:
        reply = direct(http, mesh_plane, "ns-baseline", path, body)
        assert (reply.status_code, reply.json()) == (status, expected), path
    reply = direct(http, mesh_plane, "ns-baseline", "/v1/models/iris:predict", b"{not json")
    assert reply.status_code == 400 and reply.json()["error"].startswith("Unrecognized request format: ")
    reply = direct(http, mesh_plane, "ns-baseline", "/v2/models/iris/infer", {"id": "x"})
    assert reply.status_code == 422
    assert [(d["type"], d["loc"]) for d in reply.json()["detail"]] == [("missing", ["body", "inputs"])]


def test_faults_answer_inference_errors(mesh_plane: DataPlane, http: requests.Session) -> None:
    http.post(f"{mesh_plane.url}/admin/faults", json={"ns-candidate": {"errorRate": 0.5}}, timeout=10)
    codes = [http.post(f"{mesh_plane.url}/v1/models/iris:predict", json=V1_PAYLOAD, headers={"Host": HOST},
                       timeout=10) for _ in range(20)]
    failed = [r for r in codes if r.status_code != 200]
    assert [(r.status_code, r.json()) for r in failed] == [(500, {"error": "injected fault"})]  # 2 candidate calls


def test_unserved_format_gets_no_pod_and_the_gateway_answers_503(mesh: MeshCluster, mesh_plane: DataPlane,
                                                                 http: requests.Session) -> None:
    mesh.set(isvcs=[objects.inference_service("ns-baseline", "onnx"), mesh.isvcs[1]],
             routes=[objects.http_route(objects.backend("ns-baseline", 1))])
    mesh_plane.sync.run_once()
    assert [s["namespace"] for s in mesh_plane.status()["inferenceServices"]] == ["ns-candidate"]
    reply = http.post(f"{mesh_plane.url}/v1/models/iris:predict", json=V1_PAYLOAD, headers={"Host": HOST}, timeout=10)
    assert reply.status_code == 500  # no such Service: BackendNotFound, Gateway API's 500
