from __future__ import annotations

import pytest

from localenv.routes import BadObject, route_table, served_model
from testbed.fakes import SKLEARN, XGBOOST, routing_rule, seldon_deployment


def test_the_programs_routing_rule_reads_as_two_weighted_destinations() -> None:
    table = route_table(routing_rule(80, 20))
    assert table.hosts == ("iris.example.com",)
    [baseline, candidate] = table.destinations
    assert (baseline.namespace, baseline.service, baseline.weight) == ("ns-baseline", "iris-default", 80)
    assert (candidate.namespace, candidate.service, candidate.weight) == ("ns-candidate", "iris-default", 20)
    assert baseline.response_headers == (("version", "iris-v1"),)
    assert candidate.response_headers == (("version", "iris-v2"),)


def test_after_promotion_one_route_to_the_baseline_answers_with_the_winner() -> None:
    [only] = route_table(routing_rule(0, 0, promoted="iris-v2")).destinations
    assert (only.namespace, only.weight, only.response_headers) == ("ns-baseline", 100, (("version", "iris-v2"),))


def test_host_matching_ignores_port_and_case() -> None:
    table = route_table(routing_rule(100, 0))
    assert table.matches("iris.example.com")
    assert table.matches("IRIS.example.com:80")
    assert not table.matches("other.example.com")
    assert not table.matches("")


def test_a_single_route_without_weight_takes_everything() -> None:
    vs = {"metadata": {"namespace": "default"}, "spec": {"hosts": ["*"], "http": [
        {"route": [{"destination": {"host": "iris-default.ns-x.svc.cluster.local"}}]}]}}
    [only] = route_table(vs).destinations
    assert (only.namespace, only.weight) == ("ns-x", 100)


@pytest.mark.parametrize("spec", [
    {"hosts": "iris.example.com", "http": []},
    {"hosts": ["iris.example.com"], "http": []},
    {"hosts": ["iris.example.com"], "http": [{"route": [{"destination": {}}]}]},
    {"hosts": ["iris.example.com"], "http": [{"route": [{"destination": {"host": "a.b"}, "weight": -1},
                                                        {"destination": {"host": "c.d"}, "weight": 101}]}]},
])
def test_malformed_virtual_services_are_reported(spec: dict[str, object]) -> None:
    with pytest.raises(BadObject):
        route_table({"metadata": {}, "spec": spec})


def test_served_model_reads_the_first_predictors_graph() -> None:
    model = served_model(seldon_deployment("ns-candidate", XGBOOST))
    assert (model.namespace, model.deployment, model.predictor, model.node) == ("ns-candidate", "iris", "default",
                                                                                "classifier")
    assert (model.implementation, model.model_uri) == ("XGBOOST_SERVER", XGBOOST.model_uri)
    assert model.service == "iris-default"
    assert served_model(seldon_deployment("ns-baseline", SKLEARN)).implementation == "SKLEARN_SERVER"


def test_deployment_without_predictors_is_reported() -> None:
    with pytest.raises(BadObject, match="no predictors"):
        served_model({"metadata": {"name": "iris", "namespace": "x"}, "spec": {"predictors": []}})
