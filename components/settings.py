"""The stack config, declared once as a typed model: every key, its type, bounds and default.

Pulumi.yaml declares the same keys for the engine (a test checks its defaults equal these). A stack
that sets an object key in part keeps every other field's default: `experiment: {name: x}` still
runs every 10 s for 10 iterations. `load_stack_config` reads the raw strings the engine hands the
program (components/stack_config.py) and reports every problem at once, each naming its key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from components.metrics.istio import ISTIO_METRICS
from components.metrics.kserve import KSERVE_METRICS
from components.metrics.latency import with_quantile_tests
from components.metrics.seldon import LIBRARY_METRICS
from rollout.core.control import Action
from rollout.core.schema import (
    AtLeastOne,
    Loc,
    MetricRef,
    Model,
    NonEmpty,
    Positive,
    duplicates,
    in_range,
    raise_problems,
    unknown_metrics,
    url_problem,
    with_problems,
)
from rollout.core.spec import ExperimentSettings, ExperimentSpec, Metric, Objective, Reward, cross_references
from rollout.core.templating import ELAPSED_TIME
from rollout.notify import Webhook

Implementation = Literal["SKLEARN_SERVER", "XGBOOST_SERVER", "TENSORFLOW_SERVER", "MLFLOW_SERVER",
                         "TRITON_SERVER", "HUGGINGFACE_SERVER", "TEMPO_SERVER"]
"""Seldon Core's prepackaged model servers."""
IMPLEMENTATIONS: tuple[str, ...] = get_args(Implementation)
ModelFormat = Literal["sklearn", "xgboost", "lightgbm", "tensorflow", "pytorch", "onnx", "triton", "huggingface",
                      "pmml", "paddle", "mlflow"]
"""The model formats of KServe's serving runtimes (`config/runtimes/kustomization.yaml` and each runtime's
`supportedModelFormats`)."""
FORMAT_OF_IMPLEMENTATION: dict[str, str] = {"SKLEARN_SERVER": "sklearn", "XGBOOST_SERVER": "xgboost",
                                            "TENSORFLOW_SERVER": "tensorflow", "MLFLOW_SERVER": "mlflow",
                                            "TRITON_SERVER": "triton", "HUGGINGFACE_SERVER": "huggingface"}
"""A Seldon prepackaged server's KServe format, so a stack that only switches `models.kind` keeps its models."""
ModelsKind = Literal["seldon", "kserve"]
RoutingKind = Literal["istio", "gateway-api"]
MetricsLibraryName = Literal["seldon", "istio", "kserve"]

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
METRIC_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
VERSION_VARIABLES = frozenset({"ns", "sid", "predictor"})
"""What each version's queries are filled with: its namespace, the deployment name and the predictor."""
VERSION_NAME_MAX = 48
"""A version's name goes into its reward Job's name, `fortio-<name>-rewards`, which must fit in 63 characters."""


def _dns_label(limit: int) -> Any:
    def check(value: str) -> str:
        if not DNS_LABEL.fullmatch(value) or len(value) > limit:
            raise PydanticCustomError("name", "must be a Kubernetes name: lowercase letters, digits and '-', starting "
                                              "and ending with a letter or digit, at most {limit} characters, got {v}",
                                      {"limit": limit, "v": repr(value)})
        return value
    return AfterValidator(check)


KubeName = Annotated[str, _dns_label(63)]


def _http_url(key: str, secret_keys: str | None = None) -> Any:
    """An http(s) URL with a host; never one with credentials in it (they would be stored in plain text)."""
    def check(value: str) -> str:
        if value == "" and secret_keys is None:
            return value  # load.gatewayUrl: empty = the ingress gateway's cluster IP
        problem = url_problem(value, f"{secret_keys or 'a Kubernetes Secret'}, set with `pulumi config set --secret`")
        if problem:
            raise PydanticCustomError("url", "{problem}", {"problem": problem})
        return value
    return AfterValidator(check)


@dataclass(frozen=True, config=ConfigDict(extra="forbid", alias_generator=to_camel, validate_by_name=True,
                                          validate_by_alias=True, serialize_by_alias=True))
class ModelSpec:
    """The model a version serves: a Seldon prepackaged server and where its artifact is (`models.kind: seldon`),
    or a KServe model format and its storageUri (`models.kind: kserve`; a Seldon server and its modelUri stand
    for them when they are not set)."""

    implementation: Implementation | None = None
    model_uri: NonEmpty | None = None
    model_format: ModelFormat | None = None
    storage_uri: NonEmpty | None = None

    @property
    def kserve_format(self) -> str | None:
        return self.model_format or FORMAT_OF_IMPLEMENTATION.get(self.implementation or "")

    @property
    def kserve_storage_uri(self) -> str | None:
        return self.storage_uri or self.model_uri

    def problems(self, kind: str) -> list[tuple[Loc, str]]:
        """What `models.kind` needs of this model and it lacks, each at its field."""
        if kind == "seldon":
            return [((field,), "is required with models.kind seldon (a SeldonDeployment's graph)")
                    for field, value in (("implementation", self.implementation), ("modelUri", self.model_uri))
                    if value is None]
        problems: list[tuple[Loc, str]] = []
        if self.kserve_format is None:
            problems.append((("modelFormat",), "is required with models.kind kserve" + (
                f" ({self.implementation} has no KServe format)" if self.implementation else "")))
        if self.kserve_storage_uri is None:
            problems.append((("storageUri",), "is required with models.kind kserve"))
        return problems


class VersionConfig(Model):
    """One model version: its name (the `version` header), its namespace and its model."""

    name: Annotated[str, _dns_label(VERSION_NAME_MAX)]
    namespace: KubeName
    model: ModelSpec


def _reward_path(value: str) -> str:
    if not value:
        return value
    problem = None
    unknown = sorted(set(re.findall(r"{([^}]*)}", value)) - {"namespace", "deployment"})
    if not value.startswith("/"):
        problem = f"must start with / (a path under load.gatewayUrl), got {value!r}"
    elif unknown:
        problem = f"may name only {{namespace}} and {{deployment}}, got {', '.join(f'{{{u}}}' for u in unknown)}"
    if problem:
        raise PydanticCustomError("rule", "{message}", {"message": problem})
    return value


class LoadSettings(Model):
    """The seed's fortio load Jobs."""

    enabled: StrictBool = True
    gateway_url: Annotated[str, _http_url("load.gatewayUrl")] = ""
    """Empty: read the cluster IP of istio-system/istio-ingressgateway."""
    prediction_qps: Positive = 5.0
    reward_qps: tuple[Positive, ...] = (0.7, 1.0)
    """Feedback load per version, in version order."""
    reward_path: Annotated[str, AfterValidator(_reward_path)] = ""
    """Where each version's reward load posts `{"reward": 1}`, under the gateway URL, `{namespace}` and
    `{deployment}` filled in. Empty: Seldon's feedback route `/seldon/{namespace}/{deployment}/api/v1.0/feedback`
    with models.kind seldon, and no reward load with kserve (KServe has no feedback API: point it at your
    application's own endpoint, as Pulumi.kserve.yaml does)."""
    duration_seconds: AtLeastOne = 6000


class ModelsConfig(Model):
    """What serves each version: a SeldonDeployment or a KServe InferenceService."""

    kind: ModelsKind = "seldon"


class RoutingConfig(Model):
    """What splits the traffic: an Istio VirtualService or a Gateway API HTTPRoute (+ ReferenceGrants)."""

    kind: RoutingKind = "istio"


class MetricsConfig(Model):
    """Which metric library the experiment reads."""

    library: MetricsLibraryName = "seldon"


class ExperimentConfig(ExperimentSettings):
    """The stack's `experiment`: the seed's experiment unless a field is set."""

    name: NonEmpty = "quickstart-exp"
    target: str = "iris"
    request_count: MetricRef | None = "request-count"
    rewards: tuple[Reward, ...] = (Reward(metric="user-engagement"),)
    objectives: tuple[Objective, ...] = (
        Objective(metric="mean-latency", upper_limit=2000),
        Objective(metric="95th-percentile-tail-latency", upper_limit=5000),
        Objective(metric="error-rate", upper_limit=0.01),
    )


class ControlConfig(Model):
    """An operator's control (rollout/core/control.py); no action = none."""

    action: Action | None = None
    version: str | None = None
    """The version to promote (promote only)."""
    reason: str | None = None

    @model_validator(mode="after")
    def _version(self) -> ControlConfig:
        if self.action == "promote" and not self.version:
            raise_problems("ControlConfig", [(("version",), "is required to promote (the version's name)")], self)
        if self.action != "promote" and self.version:
            raise_problems("ControlConfig", [(("version",), f"is only for promote, not {self.action}")], self)
        return self

    def to_input(self) -> dict[str, Any] | None:
        return None if self.action is None else {"action": self.action, "version": self.version,
                                                 "reason": self.reason or ""}


class StackConfig(Model):
    """Every key of the `seldon-rollout` config namespace but the secrets. Field order matters: a check that
    joins keys sits on the later one, and runs when the earlier ones are valid."""

    kubeconfig: str = ""
    """Path (`~` and `$VARS` expanded) or contents of a kubeconfig; empty = the ambient one."""
    kube_context: str = ""
    render_directory: str = ""
    """When set, manifests are written here instead of applied to a cluster."""
    models: ModelsConfig = ModelsConfig()
    routing: RoutingConfig = RoutingConfig()
    metrics_choice: MetricsConfig = Field(default=MetricsConfig(), alias="metrics")
    """`metrics.library` (the field is not named `metrics`: `metrics()` lists the experiment's metrics)."""
    deployment_name: KubeName = "iris"
    """Name of every version's SeldonDeployment (Seldon's `$sid`)."""
    predictor: KubeName = "default"
    baseline: VersionConfig = VersionConfig(
        name="iris-v1", namespace="ns-baseline",
        model=ModelSpec("SKLEARN_SERVER", "gs://seldon-models/v1.12.0-dev/sklearn/iris"))
    candidates: tuple[VersionConfig, ...] = (VersionConfig(
        name="iris-v2", namespace="ns-candidate",
        model=ModelSpec("XGBOOST_SERVER", "gs://seldon-models/xgboost/iris")),)
    wait_for_ready: StrictBool = False
    routing_namespace: KubeName = "default"
    gateway: NonEmpty = "istio-system/seldon-gateway"
    host: NonEmpty = "iris.example.com"
    metrics_namespace: KubeName = "iter8-seldon"
    metrics_as_crd: StrictBool = False
    extra_metrics: tuple[Metric, ...] = ()
    """Your own metrics; one with a seed metric's name replaces it."""
    load: LoadSettings = LoadSettings()
    prometheus_url: Annotated[str, _http_url("prometheusUrl", "prometheusUsername and prometheusPassword "
                                                              "(or prometheusToken)")] = (
        "http://seldon-core-analytics-prometheus-seldon.seldon-system")
    prometheus_timeout_seconds: Annotated[Positive, AfterValidator(in_range(None, 300))] = 5.0
    prometheus_verify_tls: StrictBool = True
    prometheus_ca_bundle: str = ""
    prometheus_username: str = ""
    experiment: ExperimentConfig = ExperimentConfig()
    control: ControlConfig = ControlConfig()
    notifications: tuple[Webhook, ...] = ()

    @field_validator("control")
    @classmethod
    def _control_version(cls, control: ControlConfig, info: ValidationInfo) -> ControlConfig:
        baseline, candidates = info.data.get("baseline"), info.data.get("candidates")
        if control.version and baseline and candidates is not None:
            names = [v.name for v in (baseline, *candidates)]
            if control.version not in names:
                raise_problems("control", [(("version",), f"{control.version!r} is not a version "
                                                          f"(one of {', '.join(names)})")], control)
        return control

    @model_validator(mode="after")
    def _models(self) -> StackConfig:
        """The three choices fit together (a library reads what its model server exports: Seldon's executor,
        KServe's model server), and each version's model has what `models.kind` needs."""
        kind, library_name = self.models.kind, self.metrics_choice.library
        problems: list[tuple[Loc, str]] = []
        if library_name in ("seldon", "kserve") and library_name != kind:
            problems.append((("metrics", "library"), f"{library_name} reads the metrics of {library_name}'s model "
                                                     f"server, but models.kind is {kind}: with models.kind {kind} "
                                                     f"use metrics.library {kind} or istio"))
        problems += [(("baseline" if i == 0 else "candidates", *(() if i == 0 else (i - 1,)), "model", *loc), text)
                    for i, v in enumerate(self.versions) for loc, text in v.model.problems(self.models.kind)]
        if problems:
            raise_problems("StackConfig", problems, self)
        return self

    @field_validator("render_directory")
    @classmethod
    def _render_or_apply(cls, render_directory: str, info: ValidationInfo) -> str:
        if render_directory and info.data.get("kubeconfig"):
            raise PydanticCustomError("conflict", "cannot be combined with kubeconfig (pick one)")
        return render_directory

    @field_validator("candidates")
    @classmethod
    def _candidates(cls, candidates: tuple[VersionConfig, ...], info: ValidationInfo) -> tuple[VersionConfig, ...]:
        """Each version gets its own Namespace, SeldonDeployment and reward Job: their names must differ."""
        if not candidates:
            raise PydanticCustomError("empty", "needs at least one candidate")
        baseline = info.data.get("baseline")
        problems: dict[Loc, str] = {}
        for what, of in (("name", lambda v: v.name), ("namespace", lambda v: v.namespace),
                         ("load Job", lambda v: f"fortio-{v.name.replace('-', '')}-rewards")):
            taken: list[str] = [of(baseline)] if baseline else []
            for i, candidate in enumerate(candidates):
                value, loc = of(candidate), (i, "namespace" if what == "namespace" else "name")
                if value in taken and loc not in problems:
                    problems[loc] = f"duplicate {what} {value!r}"
                taken.append(value)
        raise_problems("candidates", list(problems.items()), candidates)
        return candidates

    @model_validator(mode="after")
    def _own_namespace(self) -> StackConfig:
        """The metrics' Namespace is a resource of its own (checked here, for the default is not validated)."""
        taken = [v.name for v in self.versions if v.namespace == self.metrics_namespace]
        if taken:
            raise_problems("StackConfig", [(("metricsNamespace",), f"is also the namespace of version {taken[0]} "
                                                                    f"(each gets its own Namespace)")], self)
        return self

    @field_validator("extra_metrics")
    @classmethod
    def _extra_metrics(cls, extra: tuple[Metric, ...], info: ValidationInfo) -> tuple[Metric, ...]:
        known = {m.name for m in library(extra, choice_of(info.data))}
        problems = duplicates([m.name for m in extra])
        problems += [((i, "name"), "must be a Kubernetes name (lowercase letters, digits, '-' and '.'): it names "
                                   "a ConfigMap key or an Iter8 Metric") for i, m in enumerate(extra)
                     if not METRIC_NAME.fullmatch(m.name) or len(m.name) > 253]
        problems += unknown_metrics([((i, "sampleSize"), m.sample_size) for i, m in enumerate(extra)], known)
        for i, metric in enumerate(extra):
            unknown = metric.variables() - VERSION_VARIABLES
            if unknown:
                problems.append(((i, "query"), f"uses {', '.join(sorted(unknown))}; a version defines only "
                                               f"{', '.join(sorted(VERSION_VARIABLES | {ELAPSED_TIME}))}"))
        raise_problems("extraMetrics", problems, extra)
        return extra

    @field_validator("load")
    @classmethod
    def _load(cls, load: LoadSettings, info: ValidationInfo) -> LoadSettings:
        baseline, candidates = info.data.get("baseline"), info.data.get("candidates")
        if load.enabled and baseline and candidates and len(load.reward_qps) != 1 + len(candidates):
            raise_problems("load", [(("rewardQps",), f"needs one positive number per version "
                                                     f"({1 + len(candidates)}), got {len(load.reward_qps)}")], load)
        return load

    @field_validator("experiment")
    @classmethod
    def _experiment(cls, experiment: ExperimentConfig, info: ValidationInfo) -> ExperimentConfig:
        """The experiment's references and patterns, checked by the engine's own model; problems located in
        versions or metrics are reported by their own keys (baseline, candidates, extraMetrics)."""
        needed = ("baseline", "candidates", "extra_metrics", "deployment_name", "predictor", "metrics_choice")
        if any(key not in info.data for key in needed):
            return experiment
        try:
            spec_of(experiment, info.data)
        except ValidationError as err:
            problems: list[tuple[Loc, str]] = []
            for error in err.errors():
                loc = error["loc"]
                if loc[:1] == ("versions",) and len(loc) == 1:  # how many versions the pattern allows
                    problems.append((("testingPattern",), error["msg"]))
                elif loc[:1] not in (("versions",), ("metrics",)):
                    problems.append((loc, library_hint(experiment, loc, error["msg"], choice_of(info.data))))
            raise_problems("experiment", problems, experiment)
        return experiment

    @model_validator(mode="wrap")
    @classmethod
    def _experiment_references(cls, data: Any, handler: ModelWrapValidatorHandler[StackConfig]) -> StackConfig:
        """The metrics the experiment names (`cross_references`, against the library and extraMetrics), also when
        another of its fields is invalid: `_experiment` checks them only on a valid experiment."""
        try:
            return handler(data)
        except ValidationError as err:
            experiment = data.get("experiment") if isinstance(data, Mapping) else None
            if not isinstance(experiment, Mapping) or all(e["loc"][:1] != ("experiment",) for e in err.errors()):
                raise
            extra = data.get("extraMetrics")
            extra_names = [m.get("name") for m in extra if isinstance(m, Mapping)] if isinstance(extra, list) else []
            raw_choice = data.get("metrics")
            name = raw_choice.get("library") if isinstance(raw_choice, Mapping) else None
            names = {m.name for m in library((), name if name in LIBRARIES else "seldon")}
            names |= {n for n in extra_names if isinstance(n, str)}
            defaults = ExperimentConfig().model_dump(by_alias=True, include={"request_count"})
            found = cross_references({**defaults, **experiment, "metrics": [{"name": n} for n in sorted(names)]})
            raise with_problems(err, [(("experiment", *loc), text) for loc, text in found]) from None

    @property
    def versions(self) -> tuple[VersionConfig, ...]:
        """Baseline first."""
        return (self.baseline, *self.candidates)

    @property
    def kubeconfig_path(self) -> str:
        return os.path.expandvars(os.path.expanduser(self.kubeconfig))

    def prometheus_input(self) -> dict[str, Any]:
        """The Experiment's `prometheus` input (credentials go separately, as a secret)."""
        return {"url": self.prometheus_url, "timeoutSeconds": self.prometheus_timeout_seconds,
                "verifyTls": self.prometheus_verify_tls, "caBundle": self.prometheus_ca_bundle}

    def metrics(self) -> tuple[Metric, ...]:
        """The experiment's metrics: the library's, the user's own, and the slow counts of quantile tests."""
        return self.experiment_spec().metrics

    def experiment_spec(self) -> ExperimentSpec:
        """The engine's spec: this experiment, with the versions and the metric library filled in."""
        return spec_of(self.experiment, dict(self))


LIBRARIES: dict[str, tuple[dict[str, Any], ...]] = {"seldon": LIBRARY_METRICS, "istio": ISTIO_METRICS,
                                                    "kserve": KSERVE_METRICS}
"""`metrics.library`'s metrics (components/metrics/seldon.py, istio.py, kserve.py)."""


def library_hint(experiment: ExperimentConfig, loc: tuple[Any, ...], message: str, chosen: str) -> str:
    """`message`, with what to do when it is an unknown metric that another metric library has (the seed's
    reward, from Seldon's feedback API, under metrics.library istio or kserve)."""
    if not message.startswith("unknown metric") or loc[-1:] != ("metric",) or len(loc) != 3:
        return message
    items = experiment.rewards if loc[0] == "rewards" else experiment.objectives if loc[0] == "objectives" else ()
    index = loc[1]
    if not isinstance(index, int) or not 0 <= index < len(items):
        return message
    name = items[index].metric
    elsewhere = [lib for lib, metrics in LIBRARIES.items() if lib != chosen and any(m["name"] == name for m in metrics)]
    if not elsewhere:
        return message
    what = f"{message}: {name!r} is in metrics.library {' and '.join(elsewhere)}, not in {chosen}"
    if loc[0] == "rewards":
        return (f"{what}, whose metrics carry no business outcome (no feedback API): add your reward to "
                "extraMetrics (a query on your application's own counter, kind events or values), or run a Canary "
                "(experiment.testingPattern: Canary, rewards: []), as Pulumi.kserve.yaml does")
    return f"{what}: pick one of the known metrics, or define {name!r} in extraMetrics"


def choice_of(fields: Mapping[str, Any]) -> str:
    choice = fields.get("metrics_choice")
    return choice.library if isinstance(choice, MetricsConfig) else "seldon"


def library(extra: tuple[Metric, ...], name: str = "seldon") -> tuple[Metric, ...]:
    """The chosen library's metrics plus the user's own (a library name is replaced)."""
    names = {m.name for m in extra}
    plain = [dict(m) for m in LIBRARIES[name] if m["name"] not in names]
    plain += [m.model_dump(by_alias=True, exclude_none=True) for m in extra]
    return tuple(Metric.model_validate(m) for m in plain)


def spec_of(experiment: ExperimentConfig, fields: Mapping[str, Any]) -> ExperimentSpec:
    versions = (fields["baseline"], *fields["candidates"])
    variables = {"sid": fields["deployment_name"], "predictor": fields["predictor"]}
    return ExperimentSpec.model_validate(with_quantile_tests({  # a library quantile's test, under sequential
        **experiment.model_dump(by_alias=True, exclude_none=True),
        "versions": [{"name": v.name, "variables": {"ns": v.namespace, **variables}} for v in versions],
        "metrics": [m.model_dump(by_alias=True, exclude_none=True)
                    for m in library(fields["extra_metrics"], choice_of(fields))],
    }))
