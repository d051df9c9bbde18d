"""The program under mocks with models.kind kserve, routing.kind gateway-api and metrics.library istio/kserve
(Pulumi.kserve.yaml), and the config's combinations: each runs or is refused naming its keys."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from components.routing.gateway_api import Backend, http_route_spec
from components.stack_config import ConfigError, load_stack_config
from tests.test_program import COMPLETED, ROOT, RUNNING, run_program

ISVC = "kubernetes:serving.kserve.io/v1beta1:InferenceService"
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
GRANT = "kubernetes:gateway.networking.k8s.io/v1beta1:ReferenceGrant"
VS = "kubernetes:networking.istio.io/v1alpha3:VirtualService"
KSERVE_STACK = {key.split(":", 1)[1]: value
                for key, value in yaml.safe_load((ROOT / "Pulumi.kserve.yaml").read_text())["config"].items()}
KSERVE_STACK["load"] = {**KSERVE_STACK["load"], "gatewayUrl": "http://10.0.0.1"}  # run_program's gateway
ROLLED_BACK = {"stage": "Completed", "iteration": 4, "weights": {"iris-v1": 100, "iris-v2": 0},
               "winner": None, "promoted": "iris-v1"}


def test_every_version_is_an_inference_service_in_standard_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = run_program(monkeypatch, RUNNING, KSERVE_STACK)
    assert not rec.of("kubernetes:machinelearning.seldon.io/v1:SeldonDeployment")
    assert not rec.of("kubernetes:networking.istio.io/v1alpha3:VirtualService")
    isvcs = {r.name: r.inputs for r in rec.of(ISVC)}
    assert sorted(isvcs) == ["iris-v1-isvc", "iris-v2-isvc"]
    candidate = isvcs["iris-v2-isvc"]
    assert candidate["metadata"] == {"name": "iris", "namespace": "ns-candidate",
                                     "annotations": {"serving.kserve.io/deploymentMode": "Standard"}}
    assert candidate["spec"] == {"predictor": {"model": {"modelFormat": {"name": "xgboost"},
                                                         "storageUri": "gs://kfserving-examples/models/xgboost/iris"}}}
    assert isvcs["iris-v1-isvc"]["spec"]["predictor"]["model"]["modelFormat"] == {"name": "sklearn"}


def test_the_route_splits_by_the_experiments_weights_with_a_grant_per_namespace(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rec = run_program(monkeypatch, RUNNING, KSERVE_STACK)
    route = rec.one(ROUTE, "routing-rule")
    assert route["metadata"] == {"name": "routing-rule", "namespace": "default"}
    assert route["spec"] == {
        "parentRefs": [{"name": "seldon-gateway", "namespace": "istio-system"}], "hostnames": ["iris.example.com"],
        "rules": [{"backendRefs": [
            {"name": "iris-predictor", "namespace": "ns-baseline", "port": 80, "weight": 70},
            {"name": "iris-predictor", "namespace": "ns-candidate", "port": 80, "weight": 30}]}]}
    grants = sorted((g.inputs["metadata"]["namespace"], json.dumps(g.inputs["spec"], sort_keys=True))
                    for g in rec.of(GRANT))
    assert grants == [(ns, json.dumps({"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                                                 "namespace": "default"}],
                                       "to": [{"group": "", "kind": "Service", "name": "iris-predictor"}]},
                                      sort_keys=True)) for ns in ("ns-baseline", "ns-candidate")]
    load = rec.one("kubernetes:batch/v1:Job", "fortio-requests")
    fortio = load["spec"]["template"]["spec"]["containers"][0]
    assert fortio["env"] == [{"name": "URL", "value": "http://10.0.0.1/v1/models/iris:predict"}]
    # KServe takes no feedback: the reward loads post to the application's endpoint (load.rewardPath)
    jobs = {j.name: j.inputs["spec"]["template"]["spec"]["containers"][0] for j in rec.of("kubernetes:batch/v1:Job")}
    assert sorted(jobs) == ["fortio-irisv1-rewards", "fortio-irisv2-rewards", "fortio-requests"]
    assert jobs["fortio-irisv2-rewards"]["env"] == [{"name": "URL",
                                                    "value": "http://10.0.0.1/app/engagement/ns-candidate"}]
    without = run_program(monkeypatch, RUNNING, {**KSERVE_STACK, "load": {"gatewayUrl": "http://10.0.0.1"},
                                                 "experiment": {"testingPattern": "Canary", "rewards": []}})
    assert [j.name for j in without.of("kubernetes:batch/v1:Job")] == ["fortio-requests"]  # no rewardPath


def test_promotion_puts_the_winners_model_on_the_baseline_with_all_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = run_program(monkeypatch, COMPLETED, KSERVE_STACK)
    baseline = rec.one(ISVC, "iris-v1-isvc")
    assert baseline["metadata"]["namespace"] == "ns-baseline"
    assert baseline["spec"]["predictor"]["model"] == {"modelFormat": {"name": "xgboost"},
                                                      "storageUri": "gs://kfserving-examples/models/xgboost/iris"}
    assert rec.one(ROUTE, "routing-rule")["spec"]["rules"] == [{"backendRefs": [
        {"name": "iris-predictor", "namespace": "ns-baseline", "port": 80, "weight": 100}]}]


def test_a_rollback_keeps_the_baselines_model(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = run_program(monkeypatch, ROLLED_BACK, KSERVE_STACK)
    assert rec.one(ISVC, "iris-v1-isvc")["spec"]["predictor"]["model"]["modelFormat"] == {"name": "sklearn"}


def test_seldon_behind_an_httproute_names_seldons_predictor_services(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = run_program(monkeypatch, RUNNING, {"routing": {"kind": "gateway-api"}, "metrics": {"library": "istio"},
                                             "experiment": {"testingPattern": "Canary", "rewards": []}})
    assert len(rec.of("kubernetes:machinelearning.seldon.io/v1:SeldonDeployment")) == 2
    refs = rec.one(ROUTE, "routing-rule")["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["namespace"], r["port"]) for r in refs] == [("iris-default", "ns-baseline", 8000),
                                                                      ("iris-default", "ns-candidate", 8000)]
    configmap = rec.one("kubernetes:core/v1:ConfigMap", "metrics-configmap")
    assert "istio_requests_total" in configmap["data"]["request-count"]


def test_kserve_behind_a_virtual_service_routes_to_kserves_predictor_services(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rec = run_program(monkeypatch, RUNNING, {**KSERVE_STACK, "routing": {"kind": "istio"}})
    assert sorted(r.name for r in rec.of(ISVC)) == ["iris-v1-isvc", "iris-v2-isvc"]
    assert not rec.of(ROUTE) and not rec.of(GRANT)
    routes = rec.one(VS, "routing-rule")["spec"]["http"][0]["route"]
    assert [(r["destination"]["host"], r["destination"]["port"]["number"]) for r in routes] == [
        ("iris-predictor.ns-baseline.svc.cluster.local", 80), ("iris-predictor.ns-candidate.svc.cluster.local", 80)]
    promoted = run_program(monkeypatch, COMPLETED, {**KSERVE_STACK, "routing": {"kind": "istio"}})
    assert [r["destination"]["host"] for r in promoted.one(VS, "routing-rule")["spec"]["http"][0]["route"]] == [
        "iris-predictor.ns-baseline.svc.cluster.local"]


def test_the_default_stack_keeps_every_resource_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed's stack (no new key set) and one that sets the defaults explicitly make the same resources."""
    plain = run_program(monkeypatch, RUNNING)
    explicit = run_program(monkeypatch, RUNNING, {"models": {"kind": "seldon"}, "routing": {"kind": "istio"},
                                                  "metrics": {"library": "seldon"}})

    def names(rec: Any) -> list[tuple[str, str]]:
        return sorted((r.typ, r.name) for r in rec.resources)
    assert names(plain) == names(explicit)
    assert ("kubernetes:networking.istio.io/v1alpha3:VirtualService", "routing-rule") in names(plain)
    assert not [n for n in names(plain) if n[0] in (ISVC, ROUTE, GRANT)]


@pytest.mark.parametrize(("config", "says"), [
    ({"models": {"kind": "kserve"}, "routing": {"kind": "gateway-api"}},
     ["seldon-rollout:metrics.library: seldon reads the metrics of seldon's model server, but models.kind is kserve"]),
    ({"metrics": {"library": "kserve"}},
     ["seldon-rollout:metrics.library: kserve reads the metrics of kserve's model server, but models.kind is seldon"]),
    ({"models": {"kind": "knative"}}, ["seldon-rollout:models.kind: must be one of seldon, kserve, got 'knative'"]),
    ({"routing": {"kind": "gateway"}}, ["seldon-rollout:routing.kind: must be one of istio, gateway-api"]),
    ({"metrics": {"library": "datadog"}}, ["seldon-rollout:metrics.library: must be one of seldon, istio, kserve"]),
    ({**KSERVE_STACK, "candidates": [{"name": "iris-v2", "namespace": "ns-candidate",
                                      "model": {"implementation": "TEMPO_SERVER", "modelUri": "gs://m"}}]},
     ["seldon-rollout:candidates[0].model.modelFormat: is required with models.kind kserve (TEMPO_SERVER has no "
      "KServe format)"]),
    ({"baseline": KSERVE_STACK["baseline"]},
     ["seldon-rollout:baseline.model.implementation: is required with models.kind seldon",
      "seldon-rollout:baseline.model.modelUri: is required with models.kind seldon"]),
], ids=["seldon-metrics-on-kserve", "kserve-metrics-on-seldon", "unknown-models",
        "unknown-routing", "unknown-library", "a-seldon-server-without-kserve-format", "a-kserve-model-on-seldon"])
def test_a_combination_that_cannot_work_is_refused_naming_its_keys(config: dict[str, Any], says: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        load_stack_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()})
    assert len(err.value.problems) == len(says), err.value.problems
    for problem, start in zip(err.value.problems, says, strict=True):
        assert problem.startswith(start), problem


@pytest.mark.parametrize("models", ["seldon", "kserve"])
@pytest.mark.parametrize("routing", ["istio", "gateway-api"])
@pytest.mark.parametrize("library", ["seldon", "istio", "kserve"])
def test_every_combination_runs_or_is_refused(models: str, routing: str, library: str) -> None:
    config = {"models": {"kind": models}, "routing": {"kind": routing}, "metrics": {"library": library},
              "experiment": {"testingPattern": "Canary", "rewards": []}}
    refused = library not in ("istio", models)
    try:
        settings = load_stack_config({k: json.dumps(v) for k, v in config.items()})
    except ConfigError as err:
        assert refused, err
        assert all(p.startswith("seldon-rollout:metrics.library") for p in err.problems)
        return
    assert not refused
    assert {m.name for m in settings.metrics()} >= {"request-count", "error-rate", "mean-latency",
                                                    "95th-percentile-tail-latency"}


def test_the_mesh_libraries_have_no_reward_and_say_so_under_the_seeds_ab_test() -> None:
    with pytest.raises(ConfigError) as err:
        load_stack_config({"metrics": json.dumps({"library": "istio"})})
    assert err.value.problems == ["seldon-rollout:experiment.rewards[0].metric: unknown metric 'user-engagement' "
                                  "(known: 95th-percentile-tail-latency, error-count, error-rate, mean-latency, "
                                  "request-count): 'user-engagement' is in metrics.library seldon, not in istio, "
                                  "whose metrics carry no business outcome (no feedback API): add your reward to "
                                  "extraMetrics (a query on your application's own counter, kind events or values), "
                                  "or run a Canary (experiment.testingPattern: Canary, rewards: []), as "
                                  "Pulumi.kserve.yaml does"]
    # An objective on a Seldon-only metric names the library too; a name no library has is only unknown.
    with pytest.raises(ConfigError) as err:
        load_stack_config({"metrics": json.dumps({"library": "kserve"}), "models": '{"kind": "kserve"}',
                           "routing": '{"kind": "gateway-api"}', "experiment": json.dumps({
                               "testingPattern": "Canary", "rewards": [],
                               "objectives": [{"metric": "feedback-reward", "upperLimit": 1},
                                              {"metric": "no-such-metric", "upperLimit": 1}]})})
    assert len(err.value.problems) == 2
    assert err.value.problems[0].endswith("'feedback-reward' is in metrics.library seldon, not in kserve: pick one "
                                          "of the known metrics, or define 'feedback-reward' in extraMetrics")
    assert err.value.problems[1].endswith("request-count)")


def test_a_model_keeps_its_format_when_only_models_kind_changes() -> None:
    settings = load_stack_config({"models": json.dumps({"kind": "kserve"}), "routing": '{"kind": "gateway-api"}',
                                  "metrics": '{"library": "istio"}',
                                  "experiment": '{"testingPattern": "Canary", "rewards": []}'})
    assert [(v.model.kserve_format, v.model.kserve_storage_uri) for v in settings.versions] == [
        ("sklearn", "gs://seldon-models/v1.12.0-dev/sklearn/iris"), ("xgboost", "gs://seldon-models/xgboost/iris")]


def test_the_route_refuses_weights_that_do_not_sum_to_100() -> None:
    backends = [Backend("a", "ns-a", "iris-predictor", 80), Backend("b", "ns-b", "iris-predictor", 80)]
    with pytest.raises(ValueError, match="sum to 100"):
        http_route_spec(backends, {"a": 50, "b": 40}, None, "gw", "h")
    with pytest.raises(ValueError, match="not one of"):
        http_route_spec(backends, {}, "c", "gw", "h")
