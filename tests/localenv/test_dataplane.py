"""The data plane over HTTP, on a fake cluster: routing, promotion, metrics, faults."""

from __future__ import annotations

from collections import Counter

import pytest
import requests

from localenv.app import DataPlane
from localenv.cluster import ClusterUnavailable
from localenv.metrics import CLIENT, SERVER
from localenv.models import Model
from testbed.fakes import SKLEARN, XGBOOST, FakeCluster, routing_rule, seldon_deployment
from testbed.waiting import wait_for
from tests.localenv.helpers import count, feedback, predict, samples


def versions(http: requests.Session, url: str, n: int) -> Counter[str]:
    answers: Counter[str] = Counter()
    for _ in range(n):
        response = predict(http, url)
        assert response.status_code == 200, response.text
        answers[response.headers["version"]] += 1
    return answers


def test_prediction_through_the_gateway_answers_like_seldon(plane: DataPlane, http: requests.Session) -> None:
    response = predict(http, plane.url)
    assert response.status_code == 200
    assert response.headers["version"] == "iris-v1"
    body = response.json()
    assert body["data"]["names"] == ["t:0", "t:1", "t:2"]
    [probabilities] = body["data"]["ndarray"]
    assert probabilities.index(max(probabilities)) == 1
    assert body["meta"]["requestPath"] == {"classifier": "seldonio/sklearnserver:1.13.1"}


@pytest.mark.parametrize(("baseline", "candidate"), [(90, 10), (70, 30), (50, 50), (0, 100)])
def test_the_split_follows_the_weights_exactly(cluster: FakeCluster, plane: DataPlane, http: requests.Session,
                                               baseline: int, candidate: int) -> None:
    cluster.set(vs=routing_rule(baseline, candidate))
    plane.sync.run_once()
    expected = Counter({"iris-v1": baseline, "iris-v2": candidate})
    assert versions(http, plane.url, 100) == +expected
    assert versions(http, plane.url, 100) == +expected
    routed = plane.gateway.routed()
    assert routed.get("iris-default.ns-candidate.svc.cluster.local", 0) == 2 * candidate


def test_a_weight_change_reaches_traffic_within_two_seconds(cluster: FakeCluster, plane: DataPlane,
                                                         http: requests.Session) -> None:
    assert versions(http, plane.url, 10) == Counter({"iris-v1": 10})
    cluster.set(vs=routing_rule(0, 100))
    wait_for(lambda: predict(http, plane.url).headers["version"] == "iris-v2", 2.0, "the candidate to be served")
    assert versions(http, plane.url, 10) == Counter({"iris-v2": 10})


def test_promotion_switches_the_baselines_model(cluster: FakeCluster, plane: DataPlane,
                                                http: requests.Session) -> None:
    before = predict(http, plane.url).json()
    cluster.set(deployments=[seldon_deployment("ns-baseline", XGBOOST), seldon_deployment("ns-candidate", XGBOOST)],
                vs=routing_rule(0, 0, promoted="iris-v2"))
    plane.sync.run_once()
    after = predict(http, plane.url)
    assert after.headers["version"] == "iris-v2"
    assert before["meta"]["requestPath"] == {"classifier": "seldonio/sklearnserver:1.13.1"}
    assert after.json()["meta"]["requestPath"] == {"classifier": "seldonio/xgboostserver:1.13.1"}
    assert after.json()["data"]["ndarray"][0][1] > before["data"]["ndarray"][0][1]
    found = samples(http, plane.url)
    assert count(found, CLIENT, "ns-baseline") == 1, "a new pod, with fresh counters, serves the promoted model"
    assert count(found, CLIENT, "ns-candidate") == 0


def test_predictions_and_feedback_are_recorded_with_seldons_labels(cluster: FakeCluster, plane: DataPlane,
                                                                   http: requests.Session) -> None:
    cluster.set(vs=routing_rule(70, 30))
    plane.sync.run_once()
    versions(http, plane.url, 10)
    for _ in range(3):
        assert feedback(http, plane.url, "ns-candidate").status_code == 200
    assert feedback(http, plane.url, "ns-baseline").status_code == 200
    found = samples(http, plane.url)
    assert count(found, SERVER, "ns-baseline") == 7
    assert count(found, SERVER, "ns-candidate") == 3
    assert count(found, CLIENT, "ns-baseline") == 7
    assert count(found, CLIENT, "ns-candidate") == 3
    assert count(found, SERVER, "ns-candidate", service="feedback") == 3
    assert count(found, SERVER, "ns-baseline", service="feedback") == 1
    assert count(found, CLIENT, "ns-candidate", service="/send-feedback") == 3
    assert count(found, CLIENT, "ns-candidate", service="feedback") == 0
    assert plane.status()["feedback"] == {"ns-baseline": 1, "ns-candidate": 3}  # what the e2e tests wait on
    le_inf = {("le", "+Inf")}
    buckets = [v for (name, labels), v in found.items() if name == f"{SERVER}_bucket" and le_inf <= labels]
    assert sorted(buckets) == [1, 3, 3, 7]
    sums = [v for (name, _), v in found.items() if name == f"{CLIENT}_sum"]
    assert all(0 < s < 5 for s in sums), "latencies are recorded in seconds"


def test_faults_answer_500_and_are_recorded_as_code_500(cluster: FakeCluster, plane: DataPlane,
                                                        http: requests.Session) -> None:
    cluster.set(vs=routing_rule(50, 50))
    plane.sync.run_once()
    set_faults = http.post(f"{plane.url}/admin/faults", json={"ns-candidate": {"errorRate": 0.5, "extraLatencyMs": 0}},
                           timeout=10)
    assert set_faults.json() == {"ns-candidate": {"errorRate": 0.5, "extraLatencyMs": 0.0}}
    codes = Counter((r.status_code, r.headers["version"]) for r in (predict(http, plane.url) for _ in range(20)))
    assert codes == Counter({(200, "iris-v1"): 10, (200, "iris-v2"): 5, (500, "iris-v2"): 5})
    failed = [r for r in (predict(http, plane.url) for _ in range(4)) if r.status_code == 500]
    assert len(failed) == 1
    assert failed[0].json()["status"]["reason"] == "MICROSERVICE_INTERNAL_ERROR"
    found = samples(http, plane.url)
    for histogram in (SERVER, CLIENT):
        assert count(found, histogram, "ns-candidate", code="500") == 6
        assert count(found, histogram, "ns-baseline", code="500") == 0
    assert http.delete(f"{plane.url}/admin/faults", timeout=10).json() == {}
    assert http.get(f"{plane.url}/admin/faults", timeout=10).json() == {}


def test_extra_latency_shows_in_the_client_histogram(cluster: FakeCluster, plane: DataPlane,
                                                     http: requests.Session) -> None:
    http.post(f"{plane.url}/admin/faults", json={"ns-baseline": {"extraLatencyMs": 300}}, timeout=10)
    assert predict(http, plane.url).status_code == 200
    found = samples(http, plane.url)
    client_sum = next(v for (name, labels), v in found.items()
                      if name == f"{CLIENT}_sum" and ("kubernetes_namespace", "ns-baseline") in labels)
    assert 0.3 <= client_sum < 3
    assert count(found, CLIENT, "ns-baseline") == 1
    slow = {k: v for k, v in found.items() if k[0] == f"{CLIENT}_bucket" and ("le", "0.25") in k[1]}
    assert list(slow.values()) == [0.0]


@pytest.mark.parametrize("document", ['{"ns": {"errorRate": 2}}', "not json", "[]"])
def test_bad_fault_documents_get_400(plane: DataPlane, http: requests.Session, document: str) -> None:
    response = http.post(f"{plane.url}/admin/faults", data=document, timeout=10)
    assert response.status_code == 400
    assert response.json()["status"]["reason"] == "BAD_FAULTS"


def test_gateway_answers_like_envoy_without_a_route(cluster: FakeCluster, plane: DataPlane,
                                                    http: requests.Session) -> None:
    assert predict(http, plane.url, host="other.example.com").status_code == 404
    zero = routing_rule(100, 0)
    for route in zero["spec"]["http"][0]["route"]:
        route["weight"] = 0
    cluster.set(vs=zero)
    plane.sync.run_once()
    assert predict(http, plane.url).status_code == 503
    cluster.set(vs=routing_rule(100, 0), deployments=[seldon_deployment("ns-candidate", XGBOOST)])
    plane.sync.run_once()
    assert predict(http, plane.url).status_code == 503
    cluster.set(vs=None)
    plane.sync.run_once()
    assert predict(http, plane.url).status_code == 404
    assert samples(http, plane.url) == {}, "the executors never saw these requests"


def test_bad_requests_get_400_and_unknown_paths_404(plane: DataPlane, http: requests.Session) -> None:
    bad = http.post(f"{plane.url}/api/v1.0/predictions", data='{"data": {"ndarray": [[1, 2]]}}', timeout=10,
                    headers={"Host": "iris.example.com"})
    assert bad.status_code == 400
    assert bad.json()["status"]["reason"] == "MICROSERVICE_BAD_DATA"
    assert feedback(http, plane.url, "ns-baseline", reward="lots").status_code == 400
    assert feedback(http, plane.url, "ns-nowhere").status_code == 503
    assert http.get(f"{plane.url}/nothing", timeout=10).status_code == 404
    found = samples(http, plane.url)
    assert count(found, SERVER, "ns-baseline", code="400") == 1
    assert count(found, SERVER, "ns-baseline", service="feedback", code="400") == 1


def test_direct_prediction_to_a_namespace_bypasses_the_weights(plane: DataPlane, http: requests.Session) -> None:
    response = http.post(f"{plane.url}/seldon/ns-candidate/iris/api/v1.0/predictions",
                         json={"data": {"ndarray": [[6.8, 2.8, 4.8, 1.4]]}}, timeout=10)
    assert response.status_code == 200
    assert "version" not in response.headers
    assert response.json()["meta"]["requestPath"] == {"classifier": "seldonio/xgboostserver:1.13.1"}


def test_an_unsupported_implementation_is_not_served(cluster: FakeCluster, plane: DataPlane,
                                                     http: requests.Session) -> None:
    other = seldon_deployment("ns-baseline", SKLEARN)
    other["spec"]["predictors"][0]["graph"]["implementation"] = "TRITON_SERVER"
    cluster.set(deployments=[other, seldon_deployment("ns-candidate", XGBOOST)])
    plane.sync.run_once()
    assert predict(http, plane.url).status_code == 503


def test_status_reports_routes_models_and_routed_counts(cluster: FakeCluster, plane: DataPlane,
                                                        http: requests.Session) -> None:
    versions(http, plane.url, 4)
    status = http.get(f"{plane.url}/admin/status", timeout=10).json()
    assert [d["weight"] for d in status["routes"]["destinations"]] == [100, 0]
    assert {m["namespace"]: m["implementation"] for m in status["served"]} == {
        "ns-baseline": "SKLEARN_SERVER", "ns-candidate": "XGBOOST_SERVER"}
    assert status["routed"] == {"iris-default.ns-baseline.svc.cluster.local": 4}
    assert status["weightedHosts"] == ["iris-default.ns-baseline.svc.cluster.local"]  # the 0% route is not one
    assert http.get(f"{plane.url}/healthz", timeout=10).text == "ok\n"


def test_an_unreadable_object_does_not_stop_the_sync(cluster: FakeCluster, plane: DataPlane, http: requests.Session,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    broken = routing_rule(100, 0)
    broken["spec"]["http"][0]["route"][0]["headers"] = "not a mapping"
    cluster.set(vs=broken)
    wait_for(lambda: "sync pass failed" in caplog.text, 5, "the failed pass to be logged")
    cluster.set(vs=routing_rule(0, 100))
    wait_for(lambda: predict(http, plane.url).headers["version"] == "iris-v2", 5, "the sync to go on")


class Unreadable(FakeCluster):
    """A cluster whose reads fail until `readable` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.readable = False

    def virtual_service(self) -> dict[str, object] | None:
        if not self.readable:
            raise ClusterUnavailable("HTTP 429: storage is (re)initializing")
        return super().virtual_service()


def test_healthz_and_synced_wait_for_the_first_successful_read(models: dict[str, Model],
                                                                http: requests.Session) -> None:
    cluster = Unreadable()
    with DataPlane(cluster, poll_seconds=0.05, models=models) as plane:
        assert not plane.sync.synced.is_set()
        assert http.get(f"{plane.url}/healthz", timeout=10).status_code == 503
        assert predict(http, plane.url).status_code == 404
        cluster.readable = True
        assert plane.sync.synced.wait(5)
        assert http.get(f"{plane.url}/healthz", timeout=10).status_code == 200
        assert predict(http, plane.url).headers["version"] == "iris-v1"


def test_feedback_rewards_are_counted_as_seldons_model_server_counts_them(plane: DataPlane,
                                                                          http: requests.Session) -> None:
    for reward in (0.7, 0, 1, -0.5):
        response = feedback(http, plane.url, "ns-candidate", reward=reward)
        assert response.status_code == 200
        assert response.json() == {"data": {"tensor": {"shape": [0]}},
                                   "meta": {"requestPath": {"classifier": "seldonio/xgboostserver:1.13.1"}}}
    found = samples(http, plane.url)
    totals = {name: v for (name, labels), v in found.items() if ("kubernetes_namespace", "ns-candidate") in labels
              and name.startswith("seldon_api_model_feedback")}
    # A zero reward counts nothing; rewards are float32, as the wrapper's protobuf holds them.
    assert totals == {"seldon_api_model_feedback_total": 3.0,
                      "seldon_api_model_feedback_reward_total": pytest.approx(0.699999988079071 + 1 - 0.5, abs=1e-12)}
    assert count(found, SERVER, "ns-candidate", service="feedback") == 4
    assert count(found, CLIENT, "ns-candidate", service="/send-feedback") == 4


def test_model_errors_carry_the_model_servers_payload(plane: DataPlane, http: requests.Session) -> None:
    bad = http.post(f"{plane.url}/seldon/ns-baseline/iris/api/v1.0/predictions", data="not json", timeout=10)
    assert bad.status_code == 400
    assert bad.json()["status"]["code"] == -1 and bad.json()["status"]["status"] == 1
    found = samples(http, plane.url)
    assert count(found, CLIENT, "ns-baseline", code="400") == 1, "the executor passed the body on to the model"
    assert count(found, SERVER, "ns-baseline", code="400") == 1
