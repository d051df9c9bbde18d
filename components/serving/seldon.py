"""A model version: its Namespace and its SeldonDeployment."""

from __future__ import annotations

from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

from components.settings import IMPLEMENTATIONS, ModelSpec

SELDON_API_VERSION = "machinelearning.seldon.io/v1"


def version_aliases(index: int) -> list[pulumi.Input[str | pulumi.Alias]]:
    """The names releases before 0.2 gave the version at `index` (0 = baseline) by its position.

    A version's resources are now named after the version; these aliases let a stack made by an older
    release keep its Namespace and SeldonDeployment instead of replacing them. With one candidate it
    was `candidate`, with several `candidate-<index>`; only one of them can exist in a stack.
    """
    names = ["baseline"] if index == 0 else [f"candidate-{index}", *(["candidate"] if index == 1 else [])]
    return [pulumi.Alias(name=name) for name in names]


def seldon_deployment_spec(model: ModelSpec, predictor: str = "default", graph: str = "classifier") -> dict[str, Any]:
    """The SeldonDeployment spec of one predictor serving one prepackaged model.

    >>> seldon_deployment_spec(ModelSpec("SKLEARN_SERVER", "gs://m/iris"))["predictors"][0]["graph"]
    {'name': 'classifier', 'implementation': 'SKLEARN_SERVER', 'modelUri': 'gs://m/iris'}
    """
    if model.implementation not in IMPLEMENTATIONS:
        raise ValueError(f"unknown Seldon implementation {model.implementation!r} "
                         f"(one of {', '.join(IMPLEMENTATIONS)})")
    if not model.model_uri:
        raise ValueError("modelUri is empty")
    return {"predictors": [{"name": predictor, "graph": {
        "name": graph, "implementation": model.implementation, "modelUri": model.model_uri}}]}


class ModelDeployment(pulumi.ComponentResource):
    """A Namespace and, in it, a SeldonDeployment serving `model` (which may change on promotion)."""

    namespace: pulumi.Output[str]
    deployment: pulumi.Output[str]
    model_uri: pulumi.Output[str]

    def __init__(self, name: str, *, namespace: str, deployment_name: str, predictor: str,
                 model: pulumi.Input[ModelSpec], wait_for_ready: bool,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("seldon-rollout:models:ModelDeployment", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": namespace}, opts=child)
        metadata: dict[str, Any] = {"name": deployment_name, "namespace": ns.metadata["name"]}
        if wait_for_ready:  # an empty annotations map would read back as absent: a diff on every up
            metadata["annotations"] = {"pulumi.com/waitFor": "jsonpath={.status.state}=Available"}
        spec = pulumi.Output.from_input(model).apply(lambda m: seldon_deployment_spec(m, predictor))
        sdep = k8s.apiextensions.CustomResource(
            f"{name}-sdep",
            api_version=SELDON_API_VERSION,
            kind="SeldonDeployment",
            metadata=metadata,
            spec=spec,
            opts=child,
        )
        self.namespace = ns.metadata["name"]
        self.deployment = cast(Any, sdep).metadata["name"]
        self.model_uri = spec.apply(lambda s: s["predictors"][0]["graph"]["modelUri"])
        self.register_outputs({"namespace": self.namespace, "deployment": self.deployment,
                               "modelUri": self.model_uri})
