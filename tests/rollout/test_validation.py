"""Every config mistake is reported at once, naming its field."""

from __future__ import annotations

from typing import Any

import pytest

from rollout.core.validation import SpecError, parse_experiment, validate
from tests.rollout.factories import seed_experiment


def fields(data: dict[str, Any]) -> dict[str, str]:
    return {p.field: p.message for p in validate(data)}


def test_the_seed_is_valid_and_iter8_metric_references_resolve() -> None:
    spec = parse_experiment(seed_experiment())
    assert spec.request_count == "request-count"
    assert spec.rewards[0].metric == "user-engagement"
    assert spec.objectives[2].upper_limit == 0.01  # the seed writes "0.01", a string
    assert spec.version_names == ("iris-v1", "iris-v2")


@pytest.mark.parametrize(("override", "field", "says"), [
    ({"objectives": [{"metric": "latency-p99", "upperLimit": 1}]}, "objectives[0].metric", "unknown metric 'latency-p99'"),
    ({"rewards": [{"metric": "clicks"}]}, "rewards[0].metric", "unknown metric 'clicks'"),
    ({"objectives": [{"metric": "mean-latency", "upperLimit": "fast"}]}, "objectives[0].upperLimit", "must be a number"),
    ({"objectives": [{"metric": "mean-latency"}]}, "objectives[0]", "needs upperLimit or lowerLimit"),
    ({"objectives": [{"metric": "mean-latency", "upperLimit": 1, "lowerLimit": 2}]}, "objectives[0]", "above upperLimit"),
    ({"maxCandidateWeight": 120}, "maxCandidateWeight", "between 0 and 100"),
    ({"maxCandidateWeightIncrement": -1}, "maxCandidateWeightIncrement", "between 0 and 100"),
    ({"intervalSeconds": 0}, "intervalSeconds", "at least 1"),
    ({"iterationsPerLoop": 0}, "iterationsPerLoop", "at least 1"),
    ({"intervalSeconds": 2.5}, "intervalSeconds", "whole number"),
    ({"intervalSeconds": True}, "intervalSeconds", "whole number"),
    ({"intervalSeconds": "ten"}, "intervalSeconds", "must be a whole number, got 'ten'"),
    ({"objectives": [{"metric": "error-rate", "upperLimit": float("nan")}]}, "objectives[0].upperLimit", "finite"),
    ({"objectives": [{"metric": "error-rate", "upperLimit": 1, "rollbackOnFailure": "no"}]},
     "objectives[0].rollbackOnFailure", "must be true or false, got 'no'"),
    ({"sequential": {"alpha": 1.5}}, "sequential.alpha", "between 0 and 1"),
    ({"sequential": {"explorationFloor": 21}}, "sequential.explorationFloor", "between 0 and 20"),
    ({"historyLimit": 0}, "historyLimit", "between 1 and 1000"),
    ({"deploymentPattern": "Canary"}, "deploymentPattern", "must be one of Progressive, FixedSplit, BlueGreen"),
    ({"rewards": "user-engagement"}, "rewards", "must be a list"),
    ({"rewards": [{"metric": "user-engagement", "direction": "High"}]}, "rewards[0].direction", "not a known key"),
    ({"intervalSecs": 5}, "intervalSecs", "is not a known key"),
    ({"testingPattern": "AB"}, "testingPattern", "must be one of"),
    ({"algorithm": "bandit"}, "algorithm", "must be one of"),
    ({"rewards": [{"metric": "user-engagement", "preferredDirection": "Up"}]}, "rewards[0].preferredDirection", "High, Low"),
    ({"name": ""}, "name", "non-empty"),
    ({"testingPattern": "A/B", "rewards": []}, "rewards", "needs at least one reward"),
])
def test_each_mistake_names_its_field(override: dict[str, Any], field: str, says: str) -> None:
    problems = fields(seed_experiment(**override))
    assert field in problems, problems
    assert says in problems[field]


def test_duplicate_version_names() -> None:
    data = seed_experiment()
    data["versions"][1]["name"] = "iris-v1"
    assert "duplicate name 'iris-v1'" in fields(data)["versions[1].name"]


@pytest.mark.parametrize("value", ["ns-candidate'} or vector(1) #", "a b", "ns\n", "ns\"x", ""])
def test_variable_values_that_could_inject_promql_are_refused(value: str) -> None:
    data = seed_experiment()
    data["versions"][1]["variables"]["ns"] = value
    assert "[A-Za-z0-9_.:/-]" in fields(data)["versions[1].variables.ns"]


def test_a_variable_a_query_needs_must_be_defined_for_every_version() -> None:
    data = seed_experiment()
    del data["versions"][0]["variables"]["sid"]
    assert fields(data)["metrics[0].query"] == "uses sid, which version 'iris-v1' does not define"


def test_jq_that_does_not_compile() -> None:
    data = seed_experiment()
    data["metrics"][0]["jqExpression"] = ".data.result[0 | tonumber"
    assert "does not compile" in fields(data)["metrics[0].jqExpression"]


def test_malformed_template() -> None:
    data = seed_experiment()
    data["metrics"][0]["query"] = "sum(x{ns='$'})"
    assert "malformed" in fields(data)["metrics[0].query"]


def test_all_problems_reported_together() -> None:
    data = seed_experiment(intervalSeconds=0, maxCandidateWeight=101,
                           objectives=[{"metric": "nope", "upperLimit": "x"}])
    with pytest.raises(SpecError) as err:
        parse_experiment(data)
    assert {p.field for p in err.value.problems} >= {
        "intervalSeconds", "maxCandidateWeight", "objectives[0].metric", "objectives[0].upperLimit"}


def test_iter8_variable_list_shape_is_accepted() -> None:
    data = seed_experiment()
    data["versions"][0]["variables"] = [{"name": "ns", "value": "ns-baseline"}, {"name": "sid", "value": "iris"},
                                        {"name": "predictor", "value": "default"}]
    assert parse_experiment(data).baseline.variable_map()["ns"] == "ns-baseline"


def test_the_spec_goes_over_the_wire_and_back_unchanged() -> None:
    spec = parse_experiment(seed_experiment(objectives=[{"metric": "error-rate", "lowerLimit": 0, "upperLimit": 0.1}]))
    wire = spec.to_wire()
    assert wire["intervalSeconds"] == 10 and wire["objectives"][0] == {
        "metric": "error-rate", "lowerLimit": 0, "upperLimit": 0.1, "rollbackOnFailure": True,
        "onFailure": "rollback"}
    assert "requestCount" in wire and "sampleSize" not in wire["metrics"][1]  # error-count has none
    assert parse_experiment(wire) == spec


def test_numbers_arrive_as_floats_from_the_engine() -> None:
    spec = parse_experiment(seed_experiment(intervalSeconds=10.0, maxCandidateWeight=90.0))
    assert (spec.interval_seconds, spec.max_candidate_weight) == (10, 90)
    assert isinstance(spec.interval_seconds, int)


def test_defaults_are_the_projects() -> None:
    data = seed_experiment()
    for key in ("intervalSeconds", "iterationsPerLoop"):
        del data[key]
    spec = parse_experiment(data)
    assert (spec.interval_seconds, spec.iterations_per_loop, spec.max_loops) == (10, 10, 1)


def test_not_a_mapping() -> None:
    assert [str(p) for p in validate([])] == ["experiment: must be a mapping"]
