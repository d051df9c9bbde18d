"""The seed's story, declaratively: models, routing, metrics, load, experiment, outputs.

Each `pulumi up` is at most one iteration of the experiment: the Experiment resource reads
Prometheus, and its weights and promoted version flow into the VirtualService and the baseline.
"""

from __future__ import annotations

import os

import pulumi
import pulumi_kubernetes as k8s

from components.load import SELDON_FEEDBACK, LoadGenerator, LoadJob, reward_jobs, seed_load_jobs
from components.metrics.objects import MetricsLibrary
from components.routing.gateway_api import Backend, GatewayRouting
from components.routing.istio import SERVING_PORT, Route, Routing
from components.serving.kserve import PREDICTOR_PORT, InferenceServiceDeployment, predictor_service
from components.serving.seldon import ModelDeployment, version_aliases
from components.settings import ModelSpec, StackConfig
from components.stack_config import (
    ConfigError,
    load_stack_config,
    passphrase_problem,
    program_config,
    read_stack_file,
)
from rollout.notifier import TOLD_KEYS, Notifier
from rollout.provider import RECORD_KEYS, Experiment

# The published passphrase serves the dev stack only (also for the Automation API, which runs the CLI).
problem = passphrase_problem(pulumi.get_stack(), os.environ, read_stack_file(pulumi.get_stack()))
if problem:
    raise pulumi.RunError(problem)

config = pulumi.Config()
try:
    settings: StackConfig = load_stack_config(*program_config())
except ConfigError as err:
    raise pulumi.RunError(str(err)) from None

metrics = settings.metrics()
versions = settings.versions
baseline = settings.baseline
experiment_spec = settings.experiment_spec().to_wire()

provider = k8s.Provider(
    "k8s",
    # "" rather than None in render mode: the SDK would copy $KUBECONFIG into the provider, and
    # provider 4.25 rejects a kubeconfig beside renderYamlToDirectory (fixed in 4.32).
    kubeconfig=settings.kubeconfig_path or ("" if settings.render_directory else None),
    context=settings.kube_context or None,
    render_yaml_to_directory=settings.render_directory or None,
)
k8s_opts = pulumi.ResourceOptions(provider=provider)

# The experiment: it decides the weights and, at the end, the version to promote.
token = config.get_secret("prometheusToken")
password = config.get_secret("prometheusPassword")
username = settings.prometheus_username
auth = pulumi.Output.all(token, password).apply(
    lambda secrets: {"token": secrets[0] or "", "username": username, "password": secrets[1] or ""})
experiment = Experiment(
    "experiment",
    experiment=experiment_spec,
    prometheus=settings.prometheus_input(),
    prometheus_auth=auth,
    # An operator's pause/resume/abort/promote, applied once at the next `up` (rollout/core/control.py).
    control=settings.control.to_input(),
)

# Models: the baseline serves the promoted version's model once the experiment is over.
models = {v.name: v.model for v in versions}


def baseline_model(promoted: str | None) -> ModelSpec:
    return models.get(promoted or baseline.name, baseline.model)


# Each version's resources are named after the version, so adding or removing one leaves the others be;
# the aliases keep the names earlier releases gave them by position (baseline, candidate, candidate-N).
# models.kind picks SeldonDeployments (the seed's) or KServe InferenceServices, both named deploymentName.
deployments: list[pulumi.Resource] = [
    ModelDeployment(
        v.name, namespace=v.namespace, deployment_name=settings.deployment_name, predictor=settings.predictor,
        model=experiment.promoted.apply(baseline_model) if i == 0 else v.model,
        wait_for_ready=settings.wait_for_ready,
        opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(aliases=version_aliases(i))))
    if settings.models.kind == "seldon" else
    InferenceServiceDeployment(
        v.name, namespace=v.namespace, isvc_name=settings.deployment_name,
        model=experiment.promoted.apply(baseline_model) if i == 0 else v.model,
        wait_for_ready=settings.wait_for_ready, opts=k8s_opts)
    for i, v in enumerate(versions)
]

# Routing: the experiment's weights are the only source of the VirtualService's weights.
# routing.kind picks the VirtualService (the seed's) or a Gateway API HTTPRoute (+ ReferenceGrants).
routing: Routing | GatewayRouting
if settings.routing.kind == "istio":
    # Seldon's predictor Service is the Route's default; KServe's is `<name>-predictor`, port 80.
    service, port = ((predictor_service(settings.deployment_name), PREDICTOR_PORT) if settings.models.kind == "kserve"
                     else (None, SERVING_PORT))
    routing = Routing(
        "routing",
        routes=[Route(v.name, v.namespace, settings.deployment_name, settings.predictor, service, port)
                for v in versions],
        weights=experiment.weights, promoted=experiment.promoted,
        namespace=settings.routing_namespace, gateway=settings.gateway, host=settings.host,
        opts=pulumi.ResourceOptions(provider=provider, depends_on=deployments),
    )
else:
    routing = GatewayRouting(
        "routing",
        backends=[Backend(v.name, v.namespace, predictor_service(settings.deployment_name), PREDICTOR_PORT)
                  if settings.models.kind == "kserve" else
                  Backend(v.name, v.namespace, f"{settings.deployment_name}-{settings.predictor}", SERVING_PORT)
                  for v in versions],
        weights=experiment.weights, promoted=experiment.promoted,
        namespace=settings.routing_namespace, gateway=settings.gateway, host=settings.host,
        opts=pulumi.ResourceOptions(provider=provider, depends_on=deployments),
    )

# Metrics, stored in the cluster for people and tools to read.
MetricsLibrary("metrics", metrics=metrics, namespace=settings.metrics_namespace,
               as_crd=settings.metrics_as_crd, prometheus_url=settings.prometheus_url, opts=k8s_opts)

# Load, as the seed's fortio Jobs.
if settings.load.enabled:
    gateway_url: pulumi.Input[str] = settings.load.gateway_url
    if not settings.load.gateway_url:
        gateway = k8s.core.v1.Service.get("istio-ingressgateway", "istio-system/istio-ingressgateway",
                                          opts=k8s_opts)
        gateway_url = gateway.spec.apply(lambda s: f"http://{s.cluster_ip}")
    if settings.models.kind == "seldon":
        jobs = seed_load_jobs(settings.host, [(v.namespace, v.name) for v in versions], settings.deployment_name,
                              settings.load.prediction_qps, list(settings.load.reward_qps),
                              settings.load.duration_seconds, settings.load.reward_path or SELDON_FEEDBACK)
    else:  # KServe's v1 protocol, by the InferenceService's name; rewards only where load.rewardPath says
        jobs = [LoadJob("fortio-requests", f"/v1/models/{settings.deployment_name}:predict",
                        settings.load.prediction_qps, {"instances": [[6.8, 2.8, 4.8, 1.4]]},
                        settings.load.duration_seconds, settings.host)]
        if settings.load.reward_path:
            jobs += reward_jobs([(v.namespace, v.name) for v in versions], settings.deployment_name,
                                list(settings.load.reward_qps), settings.load.duration_seconds,
                                settings.load.reward_path)
    # After the routing: fortio aborts when its warm-up requests fail (404 before the VirtualService).
    LoadGenerator("load", jobs=jobs, gateway_url=gateway_url, namespace=settings.routing_namespace,
                  opts=pulumi.ResourceOptions(provider=provider, depends_on=[routing]))

# Notifications: each decision told once to the webhooks (secret URLs), after the routing and the models
# were given it (rollout/notifier.py).
if settings.notifications:
    notifier = Notifier("notifications", record=pulumi.Output.all(**{k: getattr(experiment, k) for k in TOLD_KEYS}),
                        applied={"weights": routing.weights},
                        webhooks=[{"url": h.url, "format": h.format} for h in settings.notifications],
                        opts=pulumi.ResourceOptions(depends_on=[routing, *deployments]))
    pulumi.export("notifications", notifier.deliveries)

pulumi.export("stage", experiment.stage)
pulumi.export("iteration", experiment.iteration)
pulumi.export("weights", experiment.weights)
pulumi.export("winner", experiment.winner)
pulumi.export("promoted", experiment.promoted)
pulumi.export("experiment", pulumi.Output.all(**{k: getattr(experiment, k) for k in RECORD_KEYS}))
