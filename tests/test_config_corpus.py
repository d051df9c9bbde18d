"""A bad-input corpus: whole stack configs, valid and broken, through the schema and the program.

Every config either loads, or fails with a config error whose every line names a key; nothing else may
escape (no KeyError from a component, no ValueError from inside an `apply`). A config that loads also
runs through the program under mocks, to objects Kubernetes could hold (no two with one name), and its
experiment passes the provider's own `check`.
"""

from __future__ import annotations

import copy
import json
import math
import re
import runpy
from collections import Counter
from typing import Any

import pulumi
import pytest
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st

from components.settings import IMPLEMENTATIONS, StackConfig
from components.stack_config import PROJECT, ConfigError, load_stack_config
from rollout.metrics.prometheus import PrometheusClient
from rollout.metrics.scrape import Cadence
from rollout.provider import ExperimentProvider
from tests.test_program import EXPERIMENT_TYPE, ROOT, Recorded

KEYS = set(StackConfig().model_dump(by_alias=True)) | {"prometheusToken", "prometheusPassword"}
PROBLEM = re.compile(rf"^{PROJECT}:([A-Za-z_][A-Za-z0-9_]*)((\.[^.\[:]+|\[\d+\])*): \S")
CORPUS_SIZE = 400
PROGRAM_RUNS = 150

names = st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z0-9]", fullmatch=True)
junk = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["", " ", "0", "true", "A/B", "http://", "https://u:p@h", "$ns", "{x}"]),
    st.lists(st.integers(0, 3), max_size=3), st.dictionaries(st.sampled_from(["name", "x", "metric"]),
                                                               st.integers(), max_size=2))


def version(name: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        "name": st.just(name), "namespace": st.sampled_from([f"ns-{name}"] * 6 + ["ns-shared", "iter8-seldon"]),
        "model": st.fixed_dictionaries({"implementation": st.sampled_from([*IMPLEMENTATIONS] * 2 + ["PYTORCH_SERVER"]),
                                        "modelUri": st.sampled_from(["gs://seldon-models/xgboost/iris", "s3://m"])})})


def optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


metric = st.fixed_dictionaries(
    {"name": st.sampled_from(["clicks", "revenue", "mean-latency", "Latency_P99"]),
     "query": st.sampled_from(["sum(clicks{ns='$ns'})", "up{sid='$sid',p='$predictor'}[${elapsedTime}s]",
                               "x{pod='$pod'}", "bad{ns='$'}"])},
    optional={"jqExpression": st.sampled_from([".data.result[0].value[1] | tonumber", ".data[", "."]),
              "type": st.sampled_from(["Counter", "Gauge", "Histogram"]), "units": st.sampled_from(["", "ms"]),
              "sampleSize": st.sampled_from(["request-count", "clicks", "nope"])})
objective = st.fixed_dictionaries(
    {"metric": st.sampled_from(["mean-latency", "error-rate", "iter8-seldon/error-rate", "clicks", "p99"])},
    optional={"upperLimit": st.one_of(st.floats(0, 5000), st.just("0.01")), "lowerLimit": st.floats(0, 10),
              "rollbackOnFailure": st.booleans()})
experiment = optional(
    name=st.sampled_from(["quickstart-exp", "exp-2", ""]), target=st.sampled_from(["iris", ""]),
    testingPattern=st.sampled_from(["A/B", "A/B/n", "Canary", "Conformance", "AB"]),
    deploymentPattern=st.sampled_from(["Progressive", "FixedSplit", "BlueGreen"]),
    algorithm=st.sampled_from(["iter8-v2", "sequential"]), intervalSeconds=st.integers(-1, 600),
    iterationsPerLoop=st.integers(0, 50), maxLoops=st.integers(0, 3), maxCandidateWeight=st.integers(-5, 105),
    maxCandidateWeightIncrement=st.integers(0, 100), consecutiveErrorLimit=st.integers(0, 6),
    requestCount=st.sampled_from(["request-count", "iter8-seldon/request-count", "requests"]),
    rewards=st.lists(st.fixed_dictionaries({"metric": st.sampled_from(["user-engagement", "clicks", "revenue"])},
                                           optional={"preferredDirection": st.sampled_from(["High", "Low", "Up"])}),
                     max_size=2),
    objectives=st.lists(objective, max_size=3),
    sequential=optional(alpha=st.floats(0, 1.5), minSamples=st.integers(0, 100), explorationFloor=st.integers(0, 25),
                        exposure=st.sampled_from(["time", "requests", "weekly"])))


@st.composite
def stack_configs(draw: st.DrawFn) -> dict[str, Any]:
    """A stack's config as it would be written in Pulumi.<stack>.yaml, then broken in up to three places."""
    version_names = draw(st.lists(names, min_size=2, max_size=4, unique=True))
    versions = [draw(version(n)) for n in version_names]
    config: dict[str, Any] = {"baseline": versions[0], "candidates": versions[1:]}
    config["load"] = draw(optional(enabled=st.booleans(), predictionQps=st.floats(0.5, 50),
                                   gatewayUrl=st.sampled_from(["", "http://10.0.0.1", "https://gw.example:8443/",
                                                                "10.0.0.1:80", "http://u:p@gw"]),
                                   durationSeconds=st.integers(1, 7200)))
    config["load"]["rewardQps"] = [1] * len(versions)
    config.update(draw(optional(
        experiment=experiment, extraMetrics=st.lists(metric, max_size=2),
        prometheusUrl=st.sampled_from(["http://127.0.0.1:9090", "https://p.example/api/v1/query", "p:9090",
                                       "https://reader:s3cret@p.example"]),
        prometheusTimeoutSeconds=st.sampled_from([5, 0.5, 300, 301, 0]), metricsAsCrd=st.booleans(),
        waitForReady=st.booleans(), deploymentName=st.sampled_from(["iris"] * 5 + ["Iris"]),
        metricsNamespace=st.sampled_from(["iter8-seldon", "metrics"]), renderDirectory=st.sampled_from(["", "", "", "out"]),
        kubeconfig=st.sampled_from(["", "~/.kube/config"]), prometheusToken=st.sampled_from([""] * 5 + ["plain-token"]))))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):
        config = draw(mutations(config))
    return config


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            found += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += paths(v, (*prefix, i))
    return found


@st.composite
def mutations(draw: st.DrawFn, config: dict[str, Any]) -> dict[str, Any]:
    """One break: a wrong type, an unknown or missing key, a bad number or name, or a duplicated version."""
    config = copy.deepcopy(config)
    path = draw(st.sampled_from(paths(config)))
    *parent_path, last = path
    parent: Any = config
    for part in parent_path:
        parent = parent[part]
    kind = draw(st.sampled_from(["junk", "unknown key", "missing", "duplicate version", "twin version", "huge"]))
    if kind == "junk":
        parent[last] = draw(junk)
    elif kind == "unknown key" and isinstance(parent, dict):
        parent[draw(st.sampled_from(["extra", "Name", "upperlimit", "prometheusURL"]))] = draw(junk)
    elif kind == "missing":
        del parent[last]
    elif kind == "duplicate version" and isinstance(config.get("candidates"), list):
        config["candidates"] = [*config["candidates"], copy.deepcopy(config.get("baseline"))]
    elif kind == "twin version" and isinstance(config.get("candidates"), list) and isinstance(config.get("baseline"), dict):
        twin = copy.deepcopy(config["baseline"])  # `ab` and `a-b` would name one reward Job
        name = str(twin.get("name", "ab"))
        twin.update(name=name.replace("-", "") if "-" in name else f"{name[:1]}-{name[1:]}", namespace="ns-twin")
        config["candidates"] = [*config["candidates"], twin]
    elif kind == "huge":
        parent[last] = draw(st.sampled_from([10**12, -(10**12), 1e308, -0.0, 2**63]))
    load = config.get("load")
    if kind.endswith("version") and isinstance(load, dict) and isinstance(load.get("rewardQps"), list):
        load["rewardQps"] = [*load["rewardQps"], 1]  # one more version: one more reward load
    return config


TWINS = {"candidates": [{"name": "irisv1", "namespace": "ns-twin", "model": {
    "implementation": "SKLEARN_SERVER", "modelUri": "gs://m"}}], "load": {"gatewayUrl": "http://gw"}}
"""`iris-v1` and `irisv1` would name one reward Job: kept as an explicit example (random twins are rare)."""


def engine_strings(config: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def names_a_key(problem: str) -> bool:
    """`seldon-rollout:<a declared key, or an unknown one named as such><path>: <what>`."""
    match = PROBLEM.match(problem)
    return match is not None and (match.group(1) in KEYS or problem.endswith(": is not a known key"))


@settings(max_examples=CORPUS_SIZE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stack_configs())
def test_every_config_loads_or_names_its_keys(config: dict[str, Any]) -> None:
    try:
        loaded = load_stack_config(engine_strings(config))
    except ConfigError as err:
        event("refused")
        assert err.problems
        assert all(names_a_key(p) for p in err.problems), err.problems
        assert "s3cret" not in str(err) and "plain-token" not in str(err)
        return
    event("loaded")
    wire = loaded.experiment_spec().to_wire()
    check = ExperimentProvider().check({}, {"experiment": wire, "prometheus": {"url": loaded.prometheus_url}})
    assert check.failures == []
    assert json.loads(json.dumps(wire)) == wire and all(math.isfinite(x) for x in numbers(wire))


def numbers(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in numbers(v)]
    return [float(value)] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


class CorpusMocks(pulumi.runtime.Mocks):
    """The Experiment answers what the real provider's `create` answers (its preflight stubbed)."""

    def __init__(self, recorded: Recorded) -> None:
        self.recorded = recorded

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.recorded.resources.append(args)
        if args.typ == EXPERIMENT_TYPE:
            created = ExperimentProvider().create({k: v for k, v in args.inputs.items() if k != "__provider"})
            return str(created.id), {**args.inputs, **(created.outs or {})}
        if args.typ == "kubernetes:core/v1:Service" and args.resource_id:
            return args.resource_id, {"spec": {"clusterIP": "10.96.0.42"}}
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


@pytest.mark.timeout(900)
@settings(max_examples=PROGRAM_RUNS, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(stack_configs())
@example(TWINS)
def test_the_program_runs_or_reports_a_config_error(monkeypatch: pytest.MonkeyPatch, config: dict[str, Any]) -> None:
    recorded = Recorded()
    monkeypatch.setattr(PrometheusClient, "preflight", lambda _self: "2.x")  # `create` asks Prometheus first
    monkeypatch.setattr("rollout.provider.check_cadence", lambda *_: Cadence(None, "not checked"))
    pulumi.runtime.set_mocks(CorpusMocks(recorded), project=PROJECT, stack="corpus", preview=False)
    pulumi.runtime.set_all_config({f"{PROJECT}:{k}": v for k, v in engine_strings(config).items()}, secret_keys=[])
    monkeypatch.setattr(pulumi, "export", lambda name, value: None)

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> None:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

    try:
        program()
    except pulumi.RunError as err:
        event("program: config error")
        lines = str(err).splitlines()
        assert lines[0] == "invalid stack config:" and all(names_a_key(line.strip()) for line in lines[1:]), lines
        return
    event("program: ran")
    objects = Counter((r.typ, r.inputs["metadata"].get("namespace"), r.inputs["metadata"].get("name"))
                      for r in recorded.resources
                      if r.typ.startswith("kubernetes:") and not r.resource_id and r.inputs.get("metadata"))
    assert [o for o, n in objects.items() if n > 1] == [], "two Kubernetes objects with one name"
