"""Stack config, read once into frozen settings.

Defaults live in one place, Pulumi.yaml; `load_settings` fills anything a stack leaves unset from
there, so the program, the engine and the unit tests agree. Every problem is reported at once,
naming the config key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rollout.prometheus import PrometheusSettings

PROJECT = "seldon-rollout"
PROJECT_FILE = Path(__file__).resolve().parent.parent / "Pulumi.yaml"


class ConfigError(ValueError):
    """Stack config is invalid; `problems` names each key and what is wrong."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid stack config:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class ModelSpec:
    implementation: str
    model_uri: str


@dataclass(frozen=True)
class VersionSettings:
    name: str
    """Version name used by the experiment and the `version` response header (`iris-v1`)."""
    namespace: str
    model: ModelSpec


@dataclass(frozen=True)
class LoadSettings:
    enabled: bool
    gateway_url: str
    """Empty: read the cluster IP of istio-system/istio-ingressgateway."""
    prediction_qps: float
    reward_qps: tuple[float, ...]
    """Feedback load per version, in version order."""
    duration_seconds: int


@dataclass(frozen=True)
class Settings:
    kubeconfig: str
    """Path (`~` and `$VARS` expanded) or contents of a kubeconfig; empty = the ambient one."""
    kube_context: str
    render_directory: str
    """When set, manifests are written here instead of applied to a cluster."""
    deployment_name: str
    predictor: str
    versions: tuple[VersionSettings, ...]
    """Baseline first."""
    wait_for_ready: bool
    routing_namespace: str
    gateway: str
    host: str
    metrics_namespace: str
    metrics_as_crd: bool
    extra_metrics: tuple[dict[str, Any], ...]
    load: LoadSettings
    experiment: dict[str, Any]
    prometheus: PrometheusSettings


def project_defaults(path: Path = PROJECT_FILE) -> dict[str, Any]:
    """`default` of every key declared in Pulumi.yaml's config block."""
    declared = (yaml.safe_load(path.read_text()) or {}).get("config", {})
    return {key: spec.get("default") for key, spec in declared.items() if isinstance(spec, dict)}


def _model(raw: Any, key: str, problems: list[str]) -> ModelSpec:
    if not isinstance(raw, Mapping):
        problems.append(f"{key}: must be an object with implementation and modelUri")
        return ModelSpec("", "")
    impl, uri = raw.get("implementation"), raw.get("modelUri")
    for field, value in (("implementation", impl), ("modelUri", uri)):
        if not isinstance(value, str) or not value:
            problems.append(f"{key}.{field}: must be a non-empty string, got {value!r}")
    return ModelSpec(str(impl or ""), str(uri or ""))


def _version(raw: Any, key: str, problems: list[str]) -> VersionSettings:
    if not isinstance(raw, Mapping):
        problems.append(f"{key}: must be an object with name, namespace and model")
        return VersionSettings("", "", ModelSpec("", ""))
    name, namespace = raw.get("name"), raw.get("namespace")
    for field, value in (("name", name), ("namespace", namespace)):
        if not isinstance(value, str) or not value:
            problems.append(f"{key}.{field}: must be a non-empty string, got {value!r}")
    return VersionSettings(str(name or ""), str(namespace or ""), _model(raw.get("model"), f"{key}.model", problems))


def load_settings(get: Callable[[str], str | None], defaults: Mapping[str, Any] | None = None) -> Settings:
    """Build Settings from a config getter (`key -> raw string or None`), falling back to Pulumi.yaml.

    Stack config arrives as strings (objects as JSON); defaults from Pulumi.yaml are already typed.
    """
    defaults = project_defaults() if defaults is None else defaults
    problems: list[str] = []

    def value(key: str, as_text: bool = False) -> Any:
        got = get(key)
        if got is None:
            return defaults.get(key)
        if as_text:
            return got
        try:
            return json.loads(got)
        except ValueError:
            return got  # reported by the type check that follows

    def typed(key: str, kind: type | tuple[type, ...]) -> Any:
        raw = value(key, as_text=kind is str)
        if isinstance(raw, bool) and kind in (int, float, (int, float)):
            raw = None
        if not isinstance(raw, kind):
            problems.append(f"{PROJECT}:{key}: expected {getattr(kind, '__name__', 'number')}, got {raw!r}")
            return kind[0]() if isinstance(kind, tuple) else kind()
        return raw

    versions = [_version(value("baseline"), f"{PROJECT}:baseline", problems)]
    candidates = value("candidates")
    if not isinstance(candidates, list) or not candidates:
        problems.append(f"{PROJECT}:candidates: must be a non-empty list of versions")
        candidates = []
    versions += [_version(c, f"{PROJECT}:candidates[{i}]", problems) for i, c in enumerate(candidates)]

    load = typed("load", dict)
    reward_qps = load.get("rewardQps", [])
    if not isinstance(reward_qps, list) or len(reward_qps) != len(versions) or not all(
            isinstance(q, (int, float)) and not isinstance(q, bool) and q > 0 for q in reward_qps):
        problems.append(f"{PROJECT}:load.rewardQps: needs one positive number per version "
                        f"({len(versions)}), got {reward_qps!r}")
        reward_qps = [1.0] * len(versions)
    prediction_qps = load.get("predictionQps", 5)
    if isinstance(prediction_qps, bool) or not isinstance(prediction_qps, (int, float)) or prediction_qps <= 0:
        problems.append(f"{PROJECT}:load.predictionQps: must be a positive number, got {prediction_qps!r}")
        prediction_qps = 5
    duration = load.get("durationSeconds", 6000)
    if isinstance(duration, bool) or not isinstance(duration, int) or duration < 1:
        problems.append(f"{PROJECT}:load.durationSeconds: must be a whole number >= 1, got {duration!r}")
        duration = 6000

    extra = typed("extraMetrics", list)
    if not all(isinstance(m, dict) for m in extra):
        problems.append(f"{PROJECT}:extraMetrics: every entry must be an object (an Iter8-style metric)")
        extra = []
    timeout = typed("prometheusTimeoutSeconds", (int, float))
    if timeout <= 0:
        problems.append(f"{PROJECT}:prometheusTimeoutSeconds: must be positive, got {timeout!r}")
    prometheus_url = typed("prometheusUrl", str)
    if not prometheus_url.startswith(("http://", "https://")):
        problems.append(f"{PROJECT}:prometheusUrl: must start with http:// or https://, got {prometheus_url!r}")

    settings = Settings(
        kubeconfig=os.path.expandvars(os.path.expanduser(typed("kubeconfig", str))),
        kube_context=typed("kubeContext", str),
        render_directory=typed("renderDirectory", str),
        deployment_name=typed("deploymentName", str),
        predictor=typed("predictor", str),
        versions=tuple(versions),
        wait_for_ready=typed("waitForReady", bool),
        routing_namespace=typed("routingNamespace", str),
        gateway=typed("gateway", str),
        host=typed("host", str),
        metrics_namespace=typed("metricsNamespace", str),
        metrics_as_crd=typed("metricsAsCrd", bool),
        extra_metrics=tuple(extra),
        load=LoadSettings(enabled=bool(load.get("enabled", True)), gateway_url=str(load.get("gatewayUrl", "") or ""),
                          prediction_qps=float(prediction_qps), reward_qps=tuple(float(q) for q in reward_qps),
                          duration_seconds=int(duration)),
        experiment=typed("experiment", dict),
        prometheus=PrometheusSettings(url=prometheus_url, timeout_seconds=float(timeout or 5),
                                      verify_tls=typed("prometheusVerifyTls", bool),
                                      ca_bundle=typed("prometheusCaBundle", str) or None),
    )
    names = [v.name for v in settings.versions]
    if len(set(names)) != len(names):
        problems.append(f"{PROJECT}:candidates: version names must be unique, got {names}")
    if settings.render_directory and settings.kubeconfig:
        problems.append(f"{PROJECT}:renderDirectory: cannot be combined with kubeconfig (pick one)")
    if problems:
        raise ConfigError(problems)
    return settings
