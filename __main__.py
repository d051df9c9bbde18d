"""The seed's story, declaratively: models, routing, metrics, load, experiment, outputs.

Each `pulumi up` is at most one iteration of the experiment: the Experiment resource reads
Prometheus, and its weights and promoted version flow into the VirtualService and the baseline.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime.config import get_config, is_config_secret

from components.load import LoadGenerator, seed_load_jobs
from components.metric_library import metric_library
from components.metrics import MetricsLibrary
from components.models import ModelDeployment
from components.routing import Route, Routing
from components.settings import ConfigError, ModelSpec, Settings, load_settings
from rollout.provider import RECORD_KEYS, Experiment
from rollout.validation import validate

config = pulumi.Config()
try:
    settings: Settings = load_settings(config.get)
except ConfigError as err:
    raise pulumi.RunError(str(err)) from None
# Credentials are taken only as secrets: one typed in without `--secret` is refused, not used.
# (Pulumi.yaml cannot declare them `secret: true`: with a default an unset key fails, without one it is required.)
plaintext = [config.full_key(key) for key in ("prometheusToken", "prometheusPassword")
             if get_config(config.full_key(key)) and not is_config_secret(config.full_key(key))]
if plaintext:
    raise pulumi.RunError("\n".join(f"{key}: stored in plaintext; set it with `pulumi config set --secret "
                                     f"{key.split(':')[1]} <value>`" for key in plaintext))

metrics = metric_library(list(settings.extra_metrics))
versions = settings.versions
baseline = versions[0]
experiment_spec = {
    **settings.experiment,
    "metrics": metrics,
    "versions": [{"name": v.name, "variables": {"ns": v.namespace, "sid": settings.deployment_name,
                                                 "predictor": settings.predictor}} for v in versions],
}
problems = validate(experiment_spec)
if problems:
    raise pulumi.RunError("invalid seldon-rollout:experiment:\n  "
                          + "\n  ".join(f"experiment.{p}" for p in problems))

provider = k8s.Provider(
    "k8s",
    # "" rather than None in render mode: the SDK would copy $KUBECONFIG into the provider, and
    # provider 4.25 rejects a kubeconfig beside renderYamlToDirectory (fixed in 4.32).
    kubeconfig=settings.kubeconfig or ("" if settings.render_directory else None),
    context=settings.kube_context or None,
    render_yaml_to_directory=settings.render_directory or None,
)
k8s_opts = pulumi.ResourceOptions(provider=provider)

# The experiment: it decides the weights and, at the end, the version to promote.
token = config.get_secret("prometheusToken")
password = config.get_secret("prometheusPassword")
username = config.get("prometheusUsername") or ""
auth = pulumi.Output.all(token, password).apply(
    lambda secrets: {"token": secrets[0] or "", "username": username, "password": secrets[1] or ""})
experiment = Experiment(
    "experiment",
    experiment=experiment_spec,
    prometheus={"url": settings.prometheus.url, "timeoutSeconds": settings.prometheus.timeout_seconds,
                "verifyTls": settings.prometheus.verify_tls, "caBundle": settings.prometheus.ca_bundle or ""},
    prometheus_auth=auth,
)

# Models: the baseline serves the promoted version's model once the experiment is over.
models = {v.name: v.model for v in versions}


def baseline_model(promoted: str | None) -> ModelSpec:
    return models.get(promoted or baseline.name, baseline.model)


deployments = [
    ModelDeployment(
        "baseline" if i == 0 else f"candidate-{i}" if len(versions) > 2 else "candidate",
        namespace=v.namespace, deployment_name=settings.deployment_name, predictor=settings.predictor,
        model=experiment.promoted.apply(baseline_model) if i == 0 else v.model,
        wait_for_ready=settings.wait_for_ready, opts=k8s_opts)
    for i, v in enumerate(versions)
]

# Routing: the experiment's weights are the only source of the VirtualService's weights.
routing = Routing(
    "routing",
    routes=[Route(v.name, v.namespace, settings.deployment_name, settings.predictor) for v in versions],
    weights=experiment.weights, promoted=experiment.promoted,
    namespace=settings.routing_namespace, gateway=settings.gateway, host=settings.host,
    opts=pulumi.ResourceOptions(provider=provider, depends_on=deployments),
)

# Metrics, stored in the cluster for people and tools to read.
MetricsLibrary("metrics", metrics=metrics, namespace=settings.metrics_namespace,
               as_crd=settings.metrics_as_crd, prometheus_url=settings.prometheus.url, opts=k8s_opts)

# Load, as the seed's fortio Jobs.
if settings.load.enabled:
    gateway_url: pulumi.Input[str] = settings.load.gateway_url
    if not settings.load.gateway_url:
        gateway = k8s.core.v1.Service.get("istio-ingressgateway", "istio-system/istio-ingressgateway",
                                          opts=k8s_opts)
        gateway_url = gateway.spec.apply(lambda s: f"http://{s.cluster_ip}")
    jobs = seed_load_jobs(settings.host, [(v.namespace, v.name) for v in versions], settings.deployment_name,
                          settings.load.prediction_qps, list(settings.load.reward_qps),
                          settings.load.duration_seconds)
    # After the routing: fortio aborts when its warm-up requests fail (404 before the VirtualService).
    LoadGenerator("load", jobs=jobs, gateway_url=gateway_url, namespace=settings.routing_namespace,
                  opts=pulumi.ResourceOptions(provider=provider, depends_on=[routing]))

pulumi.export("stage", experiment.stage)
pulumi.export("iteration", experiment.iteration)
pulumi.export("weights", experiment.weights)
pulumi.export("winner", experiment.winner)
pulumi.export("promoted", experiment.promoted)
pulumi.export("experiment", pulumi.Output.all(
    **{k: getattr(experiment, k) for k in RECORD_KEYS}))
