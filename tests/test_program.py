"""The Pulumi program under `pulumi.runtime.set_mocks`: resources, wiring, outputs, secrets."""

from __future__ import annotations

import base64
import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime import rpc

from components.metrics.seldon import LIBRARY_METRICS
from rollout.metrics.prometheus import PrometheusClient
from rollout.metrics.scrape import Cadence
from rollout.notifier import Notifier
from rollout.provider import RECORD_KEYS, ExperimentProvider

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENT_TYPE = "pulumi-python:dynamic/rollout:Experiment"
NOTIFIER_TYPE = "pulumi-python:dynamic/rollout:Notifier"
TOKEN = "s3cr3t-prometheus-token"


@dataclass
class Recorded:
    resources: list[pulumi.runtime.MockResourceArgs] = field(default_factory=list)
    exports: dict[str, Any] = field(default_factory=dict)

    def of(self, typ: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name: str) -> dict[str, Any]:
        found = [r for r in self.resources if r.typ == typ and r.name == name]
        assert len(found) == 1, [(r.typ, r.name) for r in self.resources]
        return found[0].inputs


class Mocks(pulumi.runtime.Mocks):
    def __init__(self, recorded: Recorded, experiment_state: dict[str, Any]) -> None:
        self.recorded = recorded
        self.experiment_state = experiment_state

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.recorded.resources.append(args)
        if args.typ == EXPERIMENT_TYPE:
            return "quickstart-exp", {**args.inputs, **self.experiment_state}
        if args.typ == "kubernetes:core/v1:Service" and args.resource_id:
            return args.resource_id, {"spec": {"clusterIP": "10.96.0.42"}}
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


RUNNING = {"stage": "Running", "iteration": 3, "weights": {"iris-v1": 70, "iris-v2": 30},
           "winner": "iris-v2", "promoted": None}
COMPLETED = {"stage": "Completed", "iteration": 10, "weights": {"iris-v1": 0, "iris-v2": 100},
             "winner": "iris-v2", "promoted": "iris-v2"}


def run_program(monkeypatch: pytest.MonkeyPatch, state: dict[str, Any],
                config: dict[str, Any] | None = None,
                secret_keys: tuple[str, ...] = ("prometheusToken", "prometheusPassword")) -> Recorded:
    recorded = Recorded()
    pulumi.runtime.set_mocks(Mocks(recorded, state), project="seldon-rollout", stack="dev", preview=False)
    values = {"load": {"enabled": True, "gatewayUrl": "http://10.0.0.1", "predictionQps": 5,
                       "rewardQps": [0.7, 1], "durationSeconds": 6000},
              "prometheusUrl": "http://127.0.0.1:9090", **(config or {})}
    pulumi.runtime.set_all_config({f"seldon-rollout:{k}": v if isinstance(v, str) else json.dumps(v)
                                   for k, v in values.items()},
                                  secret_keys=[f"seldon-rollout:{k}" for k in secret_keys])
    monkeypatch.setattr(pulumi, "export", lambda name, value: recorded.exports.__setitem__(name, value))

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> None:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

    program()
    return recorded


def resolve(value: Any) -> Any:
    """The value of an Output whose inputs are all known (mocks resolve everything)."""
    box: list[Any] = []

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def read() -> Any:
        return pulumi.Output.from_input(value).apply(box.append)

    read()
    return box[0]


def test_every_resource_of_the_seed_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = run_program(monkeypatch, RUNNING)
    namespaces = sorted(r.inputs["metadata"]["name"] for r in rec.of("kubernetes:core/v1:Namespace"))
    assert namespaces == ["iter8-seldon", "ns-baseline", "ns-candidate"]
    sdeps = rec.of("kubernetes:machinelearning.seldon.io/v1:SeldonDeployment")
    assert sorted((s.inputs["metadata"]["namespace"], s.inputs["metadata"]["name"]) for s in sdeps) == [
        ("ns-baseline", "iris"), ("ns-candidate", "iris")]
    candidate = rec.one("kubernetes:machinelearning.seldon.io/v1:SeldonDeployment", "iris-v2-sdep")
    assert candidate["spec"]["predictors"][0]["graph"] == {
        "name": "classifier", "implementation": "XGBOOST_SERVER", "modelUri": "gs://seldon-models/xgboost/iris"}
    assert len(rec.of("kubernetes:networking.istio.io/v1alpha3:VirtualService")) == 1
    configmap = rec.one("kubernetes:core/v1:ConfigMap", "metrics-configmap")
    assert sorted(configmap["data"]) == ["95th-percentile-tail-latency", "error-count", "error-rate",
                                         "feedback-reward", "mean-latency", "request-count", "user-engagement"]
    assert len(rec.of(EXPERIMENT_TYPE)) == 1


def test_weights_flow_from_the_experiment_into_the_virtual_service(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = run_program(monkeypatch, RUNNING)
    vs = rec.one("kubernetes:networking.istio.io/v1alpha3:VirtualService", "routing-rule")
    assert vs["metadata"] == {"name": "routing-rule", "namespace": "default"}
    spec = vs["spec"]
    assert spec["gateways"] == ["istio-system/seldon-gateway"]
    assert spec["hosts"] == ["iris.example.com"]
    routes = spec["http"][0]["route"]
    assert [(r["destination"]["host"], r["destination"]["port"]["number"], r["weight"],
             r["headers"]["response"]["set"]["version"]) for r in routes] == [
        ("iris-default.ns-baseline.svc.cluster.local", 8000, 70, "iris-v1"),
        ("iris-default.ns-candidate.svc.cluster.local", 8000, 30, "iris-v2"),
    ]
    baseline = rec.one("kubernetes:machinelearning.seldon.io/v1:SeldonDeployment", "iris-v1-sdep")
    assert baseline["spec"]["predictors"][0]["graph"]["implementation"] == "SKLEARN_SERVER"


def test_promotion_rewrites_the_baseline_and_routes_everything_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = run_program(monkeypatch, COMPLETED)
    baseline = rec.one("kubernetes:machinelearning.seldon.io/v1:SeldonDeployment", "iris-v1-sdep")
    assert baseline["metadata"]["namespace"] == "ns-baseline"
    assert baseline["spec"]["predictors"][0]["graph"] == {
        "name": "classifier", "implementation": "XGBOOST_SERVER", "modelUri": "gs://seldon-models/xgboost/iris"}
    routes = rec.one("kubernetes:networking.istio.io/v1alpha3:VirtualService", "routing-rule")["spec"]["http"][0]["route"]
    assert routes == [{"destination": {"host": "iris-default.ns-baseline.svc.cluster.local", "port": {"number": 8000}},
                       "headers": {"response": {"set": {"version": "iris-v2"}}}, "weight": 100}]


def test_load_jobs_skip_the_await_and_follow_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = run_program(monkeypatch, RUNNING)
    jobs = {r.name: r.inputs for r in rec.of("kubernetes:batch/v1:Job")}
    assert sorted(jobs) == ["fortio-irisv1-rewards", "fortio-irisv2-rewards", "fortio-requests"]
    for job in jobs.values():
        assert job["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
        assert job["metadata"]["namespace"] == "default"
    fortio = jobs["fortio-requests"]["spec"]["template"]["spec"]["containers"][0]
    assert fortio["env"] == [{"name": "URL", "value": "http://10.0.0.1/api/v1.0/predictions"}]
    command = fortio["command"]
    assert command[command.index("-qps") + 1] == "5"
    assert "Host: iris.example.com" in command
    reward = jobs["fortio-irisv1-rewards"]["spec"]["template"]["spec"]["containers"][0]
    assert reward["env"][0]["value"] == "http://10.0.0.1/seldon/ns-baseline/iris/api/v1.0/feedback"
    assert reward["command"][reward["command"].index("-qps") + 1] == "0.7"


def test_gateway_url_comes_from_the_ingress_gateway_service_when_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    load = {"enabled": True, "gatewayUrl": "", "predictionQps": 5, "rewardQps": [0.7, 1], "durationSeconds": 60}
    rec = run_program(monkeypatch, RUNNING, {"load": load})
    job = rec.one("kubernetes:batch/v1:Job", "fortio-requests")
    assert job["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == "http://10.96.0.42/api/v1.0/predictions"


def test_no_load_jobs_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    load = {"enabled": False, "gatewayUrl": "", "predictionQps": 5, "rewardQps": [0.7, 1], "durationSeconds": 60}
    rec = run_program(monkeypatch, RUNNING, {"load": load})
    assert rec.of("kubernetes:batch/v1:Job") == []


def is_secret(value: Any) -> bool:
    box: list[bool] = []

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def read() -> Any:
        output = pulumi.Output.from_input(value)
        return pulumi.Output.all(output, output.is_secret()).apply(lambda both: box.append(both[1]))

    read()
    return box[0]


def test_stack_outputs_are_the_record_and_nothing_the_provider_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    # The mocked Experiment echoes all its inputs as outputs, the secret prometheusAuth included: the
    # exported record must still hold exactly the record's keys, and not be secret.
    rec = run_program(monkeypatch, COMPLETED, {"prometheusToken": TOKEN})
    assert sorted(rec.exports) == ["experiment", "iteration", "promoted", "stage", "weights", "winner"]
    assert resolve(rec.exports["stage"]) == "Completed"
    assert resolve(rec.exports["weights"]) == {"iris-v1": 0, "iris-v2": 100}
    assert resolve(rec.exports["promoted"]) == "iris-v2"
    assert is_secret(pulumi.Output.secret("x")) and not is_secret("x")  # the helper itself tells them apart
    record = resolve(rec.exports["experiment"])
    assert sorted(record) == sorted(RECORD_KEYS)
    assert record["iteration"] == 10
    assert not is_secret(rec.exports["experiment"])
    assert TOKEN not in json.dumps(record, default=str)


def test_experiment_gets_the_seed_spec_and_the_token_only_as_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = run_program(monkeypatch, RUNNING, {"prometheusToken": TOKEN})
    inputs = rec.one(EXPERIMENT_TYPE, "experiment")
    spec = inputs["experiment"]
    assert [v["name"] for v in spec["versions"]] == ["iris-v1", "iris-v2"]
    assert spec["versions"][1]["variables"] == {"ns": "ns-candidate", "sid": "iris", "predictor": "default"}
    assert (spec["intervalSeconds"], spec["iterationsPerLoop"]) == (10, 10)
    assert inputs["prometheus"]["url"] == "http://127.0.0.1:9090"
    # The token reaches the provider only inside prometheusAuth, which arrives wrapped as a secret.
    auth = inputs["prometheusAuth"]
    assert auth[rpc._special_sig_key] == rpc._special_secret_sig
    assert auth["value"]["token"] == TOKEN
    everything_else = json.dumps({k: v for k, v in inputs.items() if k not in ("prometheusAuth", "__provider")})
    assert TOKEN not in everything_else
    # What the real provider makes of these inputs (its `create`, Prometheus's answer stubbed) holds no token.
    monkeypatch.setattr(PrometheusClient, "preflight", lambda _self: "2.x")
    monkeypatch.setattr("rollout.provider.check_cadence", lambda *_: Cadence(None, "not checked"))
    plain = {k: v for k, v in inputs.items() if k != "__provider"}
    plain["prometheusAuth"] = auth["value"]
    created = ExperimentProvider().create(plain)
    assert TOKEN not in json.dumps(created.outs, default=str)
    assert created.outs is not None and created.outs["spec"] == spec
    # The serialized provider captured nothing secret, so it is stored as a plain (small) value.
    blob = inputs["__provider"]
    assert isinstance(blob, str)
    assert TOKEN.encode() not in base64.b64decode(blob)
    assert len(blob) < 4000


@pytest.mark.parametrize(("config", "says"), [
    ({"experiment": {"name": "x", "intervalSeconds": 0, "rewards": [{"metric": "nope"}]}},
     "experiment.intervalSeconds: must be at least 1"),
    ({"candidates": [{"name": "iris-v2", "namespace": "ns-candidate", "model": {"implementation": "XGBOOST_SERVER"}}]},
     "seldon-rollout:candidates[0].model.modelUri: is required"),
    ({"prometheusUrl": "prometheus:9090"}, "seldon-rollout:prometheusUrl: must start with http:// or https://"),
    ({"load": {"enabled": True, "rewardQps": [1]}}, "seldon-rollout:load.rewardQps: needs one positive number per version"),
    ({"baseline": {"name": "iris-v1", "namespace": "ns-baseline", "model": {"implementation": "SKLEARN", "modelUri": "gs://m"}}},
     "seldon-rollout:baseline.model.implementation: must be one of SKLEARN_SERVER, XGBOOST_SERVER"),
    ({"load": {"gatewayUrl": "10.0.0.1:80"}}, "seldon-rollout:load.gatewayUrl: must start with http:// or https://"),
    ({"experiment": {"objectives": [{"metric": "mean-latency", "upperLimit": "fast"}]}},
     "seldon-rollout:experiment.objectives[0].upperLimit: must be a number, got 'fast'"),
    ({"extraMetrics": [{"name": "p99", "query": "q{pod='$pod'}"}]}, "seldon-rollout:extraMetrics[0].query: uses pod"),
    ({"waitForReady": "sometimes"}, "seldon-rollout:waitForReady: must be true or false, got 'sometimes'"),
    ({"prometheusURL": "http://x"}, "seldon-rollout:prometheusURL: is not a known key"),
])
def test_bad_config_is_a_clear_error_not_a_traceback(monkeypatch: pytest.MonkeyPatch, config: dict[str, Any],
                                                     says: str) -> None:
    with pytest.raises(pulumi.RunError) as err:
        run_program(monkeypatch, RUNNING, config)
    assert says in str(err.value)


def test_a_partial_experiment_keeps_every_other_default(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = run_program(monkeypatch, RUNNING, {"experiment": {"name": "only-the-name"}})
    spec = rec.one(EXPERIMENT_TYPE, "experiment")["experiment"]
    assert spec["name"] == "only-the-name"
    assert (spec["intervalSeconds"], spec["iterationsPerLoop"], spec["requestCount"]) == (10, 10, "request-count")
    assert spec["rewards"] == [{"metric": "user-engagement", "preferredDirection": "High"}]
    assert [(o["metric"], o["upperLimit"]) for o in spec["objectives"]] == [
        ("mean-latency", 2000), ("95th-percentile-tail-latency", 5000), ("error-rate", 0.01)]
    load = rec.one("kubernetes:batch/v1:Job", "fortio-requests")["spec"]["template"]["spec"]["containers"][0]
    assert load["command"][load["command"].index("-qps") + 1] == "5"


def test_a_partial_load_keeps_its_other_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = run_program(monkeypatch, RUNNING, {"load": {"gatewayUrl": "http://10.0.0.9"}})
    jobs = {r.name: r.inputs for r in rec.of("kubernetes:batch/v1:Job")}
    assert sorted(jobs) == ["fortio-irisv1-rewards", "fortio-irisv2-rewards", "fortio-requests"]
    reward = jobs["fortio-irisv2-rewards"]["spec"]["template"]["spec"]["containers"][0]
    assert reward["command"][reward["command"].index("-qps") + 1] == "1"
    assert reward["command"][reward["command"].index("-t") + 1] == "6000s"


def test_credentials_in_the_prometheus_url_are_refused_without_echoing_them(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(pulumi.RunError) as err:
        run_program(monkeypatch, RUNNING, {"prometheusUrl": "https://admin:hunter2-pw@prometheus.example:9091"})
    text = str(err.value)
    assert "seldon-rollout:prometheusUrl: must not carry credentials" in text
    assert "prometheusToken" in text and "--secret" in text
    assert "hunter2-pw" not in text and "admin" not in text


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(pulumi.RunError) as err:
        run_program(monkeypatch, RUNNING, {
            "experiment": {"intervalSeconds": 0, "rewards": [{"metric": "clicks"}]},
            "prometheusTimeoutSeconds": "-1", "metricsNamespace": "Not_A_Name"})
    lines = str(err.value).splitlines()[1:]
    assert [line.split(":")[1] for line in lines] == [
        "metricsNamespace", "prometheusTimeoutSeconds", "experiment.intervalSeconds", "experiment.rewards[0].metric"]
    assert "Traceback" not in str(err.value)


def test_versions_are_named_by_their_own_name_whatever_their_number(monkeypatch: pytest.MonkeyPatch) -> None:
    third = {"name": "iris-v3", "namespace": "ns-candidate-2",
             "model": {"implementation": "XGBOOST_SERVER", "modelUri": "gs://seldon-models/xgboost/iris"}}
    candidates = [{"name": "iris-v2", "namespace": "ns-candidate",
                   "model": {"implementation": "XGBOOST_SERVER", "modelUri": "gs://seldon-models/xgboost/iris"}}, third]
    rec = run_program(monkeypatch, RUNNING, {"candidates": candidates, "load": {"rewardQps": [0.7, 1, 1]}})
    names = sorted(r.name for r in rec.of("seldon-rollout:models:ModelDeployment"))
    assert names == ["iris-v1", "iris-v2", "iris-v3"]
    sdeps = {r.name: r.inputs["metadata"]["namespace"]
             for r in rec.of("kubernetes:machinelearning.seldon.io/v1:SeldonDeployment")}
    assert sdeps == {"iris-v1-sdep": "ns-baseline", "iris-v2-sdep": "ns-candidate", "iris-v3-sdep": "ns-candidate-2"}


def test_metrics_as_iter8_resources_query_the_url_the_engine_queries(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = run_program(monkeypatch, RUNNING, {"metricsAsCrd": True,
                                             "prometheusUrl": "http://prometheus.example:9090/api/v1/query"})
    metrics = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in rec.of("kubernetes:iter8.tools/v2alpha2:Metric")}
    assert len(metrics) == len(LIBRARY_METRICS)
    assert {m["urlTemplate"] for m in metrics.values()} == {"http://prometheus.example:9090/api/v1/query"}
    assert metrics["mean-latency"]["sampleSize"] == "request-count"
    assert metrics["mean-latency"]["units"] == "milliseconds"


@pytest.mark.parametrize("key", ["prometheusToken", "prometheusPassword"])
def test_a_credential_stored_in_plain_text_is_refused(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    with pytest.raises(pulumi.RunError) as err:
        run_program(monkeypatch, RUNNING, {key: TOKEN, "prometheusUsername": "reader"}, secret_keys=())
    assert f"seldon-rollout:{key}: stored in plaintext; set it with" in str(err.value)
    assert f"pulumi config set --secret {key}" in str(err.value)
    assert TOKEN not in str(err.value)


def test_control_reaches_the_experiment_and_the_webhook_urls_the_notifier_only_as_a_secret(
        monkeypatch: pytest.MonkeyPatch) -> None:
    hook = "https://hooks.example.com/services/T0/B0/s3cr3t-hook"
    waits_for: list[str] = []
    real_init = Notifier.__init__

    def init(self: Notifier, name: str, **kwargs: Any) -> None:
        waits_for.extend(r._name for r in kwargs["opts"].depends_on)
        real_init(self, name, **kwargs)

    monkeypatch.setattr(Notifier, "__init__", init)
    rec = run_program(monkeypatch, RUNNING,
                      config={"control": {"action": "promote", "version": "iris-v2", "reason": "approved"},
                              "notifications": [{"url": hook, "format": "slack"}]},
                      secret_keys=("prometheusToken", "prometheusPassword", "notifications"))
    inputs = rec.one(EXPERIMENT_TYPE, "experiment")
    assert inputs["control"] == {"action": "promote", "version": "iris-v2", "reason": "approved"}
    assert hook not in json.dumps(inputs)
    notifier = rec.one(NOTIFIER_TYPE, "notifications")
    webhooks = notifier["webhooks"]  # wrapped as a secret: encrypted in the state
    assert webhooks[rpc._special_sig_key] == rpc._special_secret_sig
    assert webhooks["value"] == [{"url": hook, "format": "slack"}]
    assert hook not in json.dumps({k: v for k, v in notifier.items() if k not in ("webhooks", "__provider")})
    # It is told after the routing and every model: the decision was given to the cluster first.
    assert sorted(waits_for) == ["iris-v1", "iris-v2", "routing"]
    assert notifier["record"]["stage"] == "Running" and "evidence" not in notifier["record"]


def test_without_notifications_there_is_no_notifier(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = run_program(monkeypatch, RUNNING)
    assert rec.of(NOTIFIER_TYPE) == [] and "notifications" not in rec.exports


def test_notifications_in_plain_text_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(Exception, match=r"seldon-rollout:notifications: stored in plaintext") as err:
        run_program(monkeypatch, RUNNING, config={"notifications": [{"url": "https://hooks.example.com/x"}]})
    assert "hooks.example.com" not in str(err.value)


HOOK = "https://hooks.example.com/services/T0/B0/s3cr3t-hook-canary"
SECRET_ITEMS = [
    ([HOOK], "notifications[0]", "must be an object (a mapping)"),       # --path 'notifications[0]' <url>
    (HOOK, "notifications", "must be a list"),                           # --secret notifications <url>
    ([{"url": HOOK, "format": HOOK}], "notifications[0].format", "must be one of generic, slack"),
    ([{"url": HOOK, "urll": HOOK}], "notifications[0].urll", "is not a known key"),
    ([{"url": HOOK.replace("hooks.", "hooks..")}], "notifications[0].url", "is not a URL the HTTP client can use"),
    ([{"url": HOOK.replace("https", "gopher")}], "notifications[0].url", "must be an http:// or https:// URL"),
    ([{"url": 42}], "notifications[0].url", "must be a string"),
    ([{"format": "slack"}], "notifications[0].url", "is required"),
    ({"url": HOOK}, "notifications", "must be a list"),
]


@pytest.mark.parametrize(("value", "key", "says"), SECRET_ITEMS)
def test_a_config_error_under_a_secret_key_names_the_key_never_the_value(
        monkeypatch: pytest.MonkeyPatch, value: Any, key: str, says: str) -> None:
    with pytest.raises(pulumi.RunError) as err:
        run_program(monkeypatch, RUNNING, config={"notifications": value},
                    secret_keys=("prometheusToken", "prometheusPassword", "notifications"))
    text = str(err.value)
    assert f"seldon-rollout:{key}: {says}" in text
    for piece in ("s3cr3t", "hooks.", "example.com", "services/T0", HOOK[:12]):
        assert piece not in text, text


@pytest.mark.parametrize(("url", "says"), [
    ("https://prometheus.example:9091?access_token=s3cr3t-q", "must not have a query string"),
    ("https://prometheus.example:9091/api/v1/query?access_token=s3cr3t-q", "must not have a query string"),
    ("https://prometheus.example:9091/#s3cr3t-q", "must not have a fragment"),
    ("https://reader:s3cr3t-q@prometheus.example:9091", "must not carry credentials"),
    ("https://s3cr3t-q@prometheus.example:9091", "must not carry credentials"),
])
def test_a_prometheus_url_with_a_query_a_fragment_or_userinfo_is_refused_naming_the_key(
        monkeypatch: pytest.MonkeyPatch, url: str, says: str) -> None:
    with pytest.raises(pulumi.RunError) as err:
        run_program(monkeypatch, RUNNING, {"prometheusUrl": url})
    assert f"seldon-rollout:prometheusUrl: {says}" in str(err.value)
    assert "s3cr3t" not in str(err.value)
