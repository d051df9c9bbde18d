"""A model version on KServe: its Namespace and a `serving.kserve.io/v1beta1` InferenceService in Standard
(raw) deployment mode, one predictor serving one model format from its storageUri.

KServe's controller serves it behind the Service `<isvc>-predictor` in the isvc's namespace, port 80
(`pkg/constants/constants.go`, `PredictorServiceName(name) = name + "-" + string(Predictor)`, used by
`pkg/controller/v1beta1/inferenceservice/components/predictor.go`; KServe v0.20.0), which the HTTPRoute
names. The mode is the `serving.kserve.io/deploymentMode` annotation (`pkg/constants/constants.go`,
`DeploymentMode`; `Standard` is the current name of `RawDeployment`): a Deployment and a Service, no Knative.
"""

from __future__ import annotations

from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

from components.settings import ModelSpec

KSERVE_API_VERSION = "serving.kserve.io/v1beta1"
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
STANDARD_MODE = "Standard"
PREDICTOR_PORT = 80
"""The predictor Service's port in Standard mode (the container listens on 8080)."""


def predictor_service(isvc: str) -> str:
    """KServe's `PredictorServiceName`: the predictor's Service of InferenceService `isvc`.

    >>> predictor_service("iris")
    'iris-predictor'
    """
    return f"{isvc}-predictor"


def inference_service_spec(model: ModelSpec) -> dict[str, Any]:
    """The InferenceService spec of one predictor serving `model` (its KServe format and storageUri).

    >>> inference_service_spec(ModelSpec(model_format="xgboost", storage_uri="gs://m/iris"))
    {'predictor': {'model': {'modelFormat': {'name': 'xgboost'}, 'storageUri': 'gs://m/iris'}}}
    """
    model_format, storage_uri = model.kserve_format, model.kserve_storage_uri
    if not model_format or not storage_uri:
        raise ValueError(f"a KServe model needs a modelFormat and a storageUri, got {model}")
    return {"predictor": {"model": {"modelFormat": {"name": model_format}, "storageUri": storage_uri}}}


class InferenceServiceDeployment(pulumi.ComponentResource):
    """A Namespace and, in it, an InferenceService serving `model` (which may change on promotion)."""

    namespace: pulumi.Output[str]
    deployment: pulumi.Output[str]
    model_uri: pulumi.Output[str]

    def __init__(self, name: str, *, namespace: str, isvc_name: str, model: pulumi.Input[ModelSpec],
                 wait_for_ready: bool, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("seldon-rollout:models:InferenceServiceDeployment", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": namespace}, opts=child)
        annotations = {DEPLOYMENT_MODE_ANNOTATION: STANDARD_MODE}
        if wait_for_ready:  # KServe's Ready condition (`pkg/apis/serving/v1beta1/inference_service_status.go`)
            annotations["pulumi.com/waitFor"] = "condition=Ready"
        spec = pulumi.Output.from_input(model).apply(inference_service_spec)
        isvc = k8s.apiextensions.CustomResource(
            f"{name}-isvc",
            api_version=KSERVE_API_VERSION,
            kind="InferenceService",
            metadata={"name": isvc_name, "namespace": ns.metadata["name"], "annotations": annotations},
            spec=spec,
            opts=child,
        )
        self.namespace = ns.metadata["name"]
        self.deployment = cast(Any, isvc).metadata["name"]
        self.model_uri = spec.apply(lambda s: s["predictor"]["model"]["storageUri"])
        self.register_outputs({"namespace": self.namespace, "deployment": self.deployment,
                               "modelUri": self.model_uri})
