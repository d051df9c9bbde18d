"""The stack config schema against Pulumi.yaml and the three stack files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.metrics.seldon import LIBRARY_METRICS
from components.settings import StackConfig
from components.stack_config import (
    DEV_PASSPHRASE,
    SECRET_KEYS,
    SECRET_SETTINGS,
    ConfigError,
    load_stack_config,
    passphrase_problem,
)

ROOT = Path(__file__).resolve().parent.parent
STACKS = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))
DECLARED: dict[str, dict[str, Any]] = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
SCHEMA_DEFAULTS = StackConfig().model_dump(mode="json", by_alias=True, exclude_none=True)
PULUMI_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", dict: "object", list: "array"}


def stack_config(stack: str) -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {key.split(":", 1)[1]: value for key, value in raw.items()}


def as_engine_passes(config: dict[str, Any]) -> dict[str, str]:
    """The engine hands the program strings; objects and arrays as JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def test_the_three_environments_exist() -> None:
    assert STACKS == ["dev", "kind", "kserve", "prod"]


def test_pulumi_yaml_declares_every_key_of_the_schema_and_only_those() -> None:
    assert set(DECLARED) == set(SCHEMA_DEFAULTS) | set(SECRET_KEYS)


@pytest.mark.parametrize("key", sorted(SCHEMA_DEFAULTS))
def test_pulumi_yaml_defaults_are_the_schemas(key: str) -> None:
    declared = DECLARED[key]
    assert declared["default"] == SCHEMA_DEFAULTS[key], f"{key}: Pulumi.yaml and components/settings.py disagree"
    if key in SECRET_SETTINGS:  # a secret key has no `type` (the engine would require it in every stack)
        assert declared.get("secret") is True and "type" not in declared
        return
    assert declared["type"] == PULUMI_TYPES[type(SCHEMA_DEFAULTS[key])] or (
        declared["type"] == "integer" and isinstance(SCHEMA_DEFAULTS[key], float)
        and float(SCHEMA_DEFAULTS[key]).is_integer())
    assert declared.get("description")


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_credentials_are_declared_secret(key: str) -> None:
    # The engine requires every *typed* secret key to be set (a typed default fails "must be encrypted"),
    # so the optional credentials are declared secret without a type; the program refuses a plain one.
    assert DECLARED[key]["secret"] is True
    assert DECLARED[key]["default"] == ""
    assert "type" not in DECLARED[key]


@pytest.mark.parametrize("stack", STACKS)
def test_stack_config_is_valid(stack: str) -> None:
    settings = load_stack_config(as_engine_passes(stack_config(stack)))
    assert settings.experiment_spec().version_names == ("iris-v1", "iris-v2")


def test_a_partial_experiment_keeps_every_other_default() -> None:
    settings = load_stack_config({"experiment": json.dumps({"name": "short"})})
    assert settings.experiment.name == "short"
    assert settings.experiment.model_dump(exclude={"name"}) == StackConfig().experiment.model_dump(exclude={"name"})
    spec = settings.experiment_spec()
    assert (spec.interval_seconds, spec.iterations_per_loop, spec.request_count) == (10, 10, "request-count")
    assert [o.condition() for o in spec.objectives] == [
        "mean-latency <= 2000", "95th-percentile-tail-latency <= 5000", "error-rate <= 0.01"]


def test_a_partial_nested_object_keeps_its_defaults() -> None:
    settings = load_stack_config({"experiment": json.dumps({"sequential": {"alpha": 0.01}}),
                                  "load": json.dumps({"enabled": False})})
    assert settings.experiment.sequential.alpha == 0.01
    assert (settings.experiment.sequential.min_samples, settings.experiment.sequential.exposure) == (30, "time")
    assert settings.load.reward_qps == (0.7, 1.0) and settings.load.duration_seconds == 6000


def test_string_keys_are_taken_as_written_and_others_as_json() -> None:
    settings = load_stack_config({"deploymentName": "123", "prometheusTimeoutSeconds": "10", "waitForReady": "true",
                                  "host": "true"})
    assert (settings.deployment_name, settings.prometheus_timeout_seconds) == ("123", 10.0)
    assert settings.wait_for_ready is True and settings.host == "true"


@pytest.mark.parametrize(("config", "says"), [
    ({"prometheusUrl": "https://user:pa55@prometheus:9091"}, "prometheusUrl: must not carry credentials"),
    ({"prometheusUrl": "https://@prometheus:9091"}, "prometheusUrl: must not carry credentials"),
    ({"prometheusUrl": "ftp://prometheus"}, "prometheusUrl: must start with http:// or https://"),
    ({"prometheusTimeoutSeconds": "0"}, "prometheusTimeoutSeconds: must be above 0, got 0"),
    ({"prometheusTimeoutSeconds": "301"}, "prometheusTimeoutSeconds: must be at most 300, got 301"),
    ({"load": json.dumps({"gatewayUrl": "istio-ingressgateway"})}, "load.gatewayUrl: must start with http:// or https://"),
    ({"load": json.dumps({"gatewayUrl": "http://u:p@gw"})}, "load.gatewayUrl: must not carry credentials"),
    ({"load": json.dumps({"durationSeconds": 0})}, "load.durationSeconds: must be at least 1, got 0"),
    ({"load": json.dumps({"predictionQps": True})}, "load.predictionQps: must be a number, got True"),
    ({"candidates": "[]"}, "candidates: needs at least one candidate"),
    ({"candidates": json.dumps([{"name": "iris-v1", "namespace": "ns-c",
                                 "model": {"implementation": "XGBOOST_SERVER", "modelUri": "gs://m"}}])},
     "candidates[0].name: duplicate name 'iris-v1'"),
    ({"candidates": json.dumps([{"name": "Iris_V2", "namespace": "ns-c",
                                 "model": {"implementation": "XGBOOST_SERVER", "modelUri": "gs://m"}}])},
     "candidates[0].name: must be a Kubernetes name"),
    ({"baseline": json.dumps({"name": "iris-v1", "namespace": "ns-b", "model": {"implementation": "PYTORCH",
                                                                                 "modelUri": "gs://m"}})},
     "baseline.model.implementation: must be one of SKLEARN_SERVER"),
    ({"renderDirectory": "out", "kubeconfig": "~/.kube/config"}, "renderDirectory: cannot be combined with kubeconfig"),
    ({"experiment": json.dumps({"testingPattern": "Canary", "rewards": [], "objectives": []}),
      "candidates": json.dumps([{"name": n, "namespace": f"ns-{n}", "model": {"implementation": "XGBOOST_SERVER",
                                                                               "modelUri": "gs://m"}}
                                for n in ("a", "b")]),
      "load": json.dumps({"rewardQps": [1, 1, 1]})},
     "experiment.testingPattern: testingPattern Canary needs a baseline and exactly one candidate, got 3 versions"),
    ({"experiment": json.dumps({"requestCount": "requests-total"})}, "experiment.requestCount: unknown metric"),
    ({"experiment": json.dumps({"algorithm": "sequential", "requestCount": None, "sequential": {"exposure": "requests"}})},
     "experiment.requestCount: sequential.exposure 'requests' needs requestCount"),
    ({"extraMetrics": json.dumps([{"name": "x", "query": "up", "sampleSize": "nope"}])},
     "extraMetrics[0].sampleSize: unknown metric 'nope'"),
    ({"extraMetrics": json.dumps([{"name": "Latency_P99", "query": "up"}])}, "extraMetrics[0].name: must be a Kubernetes name"),
    ({"candidates": json.dumps([{"name": "iris-v2", "namespace": "ns-c", "model": {"implementation": "XGBOOST_SERVER",
                                                                                   "modelUri": "gs://m"}},
                                {"name": "irisv2", "namespace": "ns-d", "model": {"implementation": "XGBOOST_SERVER",
                                                                                  "modelUri": "gs://m"}}]),
      "load": json.dumps({"rewardQps": [1, 1, 1]})},
     "candidates[1].name: duplicate load Job 'fortio-irisv2-rewards'"),
    ({"extraMetrics": json.dumps([{"name": "x", "query": "up", "jqexpression": "."}])},
     "extraMetrics[0].jqexpression: is not a known key"),
])
def test_each_mistake_names_its_key(config: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_stack_config(config)
    assert any(p.startswith("seldon-rollout:") and says in p for p in err.value.problems), err.value.problems
    assert "pa55" not in str(err.value) and "u:p@" not in str(err.value)


def test_an_extra_metric_can_be_a_reward() -> None:
    clicks = {"name": "clicks", "query": "sum(increase(clicks{ns='$ns'}[${elapsedTime}s]))", "type": "Counter"}
    settings = load_stack_config({"extraMetrics": json.dumps([clicks]),
                                  "experiment": json.dumps({"rewards": [{"metric": "iter8-seldon/clicks"}]})})
    spec = settings.experiment_spec()
    assert spec.rewards[0].metric == "clicks" and spec.metric("clicks").type == "Counter"
    assert len(spec.metrics) == len(LIBRARY_METRICS) + 1


def test_prod_is_stricter_than_the_seed_and_sends_no_load() -> None:
    prod = load_stack_config(as_engine_passes(stack_config("prod")))
    seed = StackConfig()
    assert not prod.load.enabled
    assert prod.prometheus_url.startswith("https://") and prod.prometheus_verify_tls
    assert prod.experiment.interval_seconds > seed.experiment.interval_seconds
    limits = {o.metric: o.upper_limit for o in prod.experiment.objectives}
    seed_limits = {o.metric: o.upper_limit for o in seed.experiment.objectives}
    assert all(limits[m] < seed_limits[m] for m in seed_limits)  # type: ignore[operator]


def test_kind_uses_the_seeds_prometheus_and_experiment() -> None:
    kind = stack_config("kind")
    assert kind["prometheusUrl"] == "http://seldon-core-analytics-prometheus-seldon.seldon-system"
    # The seed's experiment (the project default), looking every 30 s: Seldon Core Analytics scrapes every 15 s.
    assert kind["experiment"] == {"intervalSeconds": 30}
    settings = load_stack_config(as_engine_passes(kind))
    seed = StackConfig().experiment
    assert settings.metrics_as_crd and settings.experiment.model_copy(update={"interval_seconds": 10}) == seed


def test_the_published_passphrase_is_the_one_scripts_pulumi_env_sets() -> None:
    env = (ROOT / "scripts" / "pulumi-env").read_text()
    assert f"SELDON_ROLLOUT_DEV_PASSPHRASE={DEV_PASSPHRASE}\n" in env


@pytest.mark.parametrize("stack", ["prod", "kind", "organization/seldon-rollout/prod", "my-stack"])
def test_any_stack_but_dev_is_refused_under_the_published_passphrase(stack: str) -> None:
    problem = passphrase_problem(stack, {"PULUMI_CONFIG_PASSPHRASE": DEV_PASSPHRASE}, "config: {}\n")
    assert problem is not None and "Secrets for real stacks" in problem and "--secrets-provider" in problem
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" in problem
    # a passphrase file beside the published passphrase: the engine would still use the passphrase
    assert passphrase_problem(stack, {"PULUMI_CONFIG_PASSPHRASE": DEV_PASSPHRASE,
                                      "PULUMI_CONFIG_PASSPHRASE_FILE": "/x"}, None) is not None


def test_dev_a_passphrase_of_ones_own_and_a_kms_provider_are_accepted() -> None:
    assert passphrase_problem("dev", {"PULUMI_CONFIG_PASSPHRASE": DEV_PASSPHRASE}, None) is None
    assert passphrase_problem("prod", {"PULUMI_CONFIG_PASSPHRASE": "mine, long and random"}, None) is None
    assert passphrase_problem("prod", {"PULUMI_CONFIG_PASSPHRASE_FILE": "/home/me/.prod-passphrase"}, None) is None
    kms = "secretsprovider: awskms://alias/seldon-rollout?region=eu-west-1\nconfig: {}\n"
    assert passphrase_problem("prod", {"PULUMI_CONFIG_PASSPHRASE": DEV_PASSPHRASE}, kms) is None
    assert passphrase_problem("prod", {"PULUMI_CONFIG_PASSPHRASE": DEV_PASSPHRASE},
                              "secretsprovider: passphrase\n") is not None


@pytest.mark.parametrize("stack", ["prod", "kind"])
def test_the_real_stack_files_say_how_to_choose_a_secrets_provider(stack: str) -> None:
    text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
    assert "Secrets for real stacks" in text and "--secrets-provider" in text
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" in text
