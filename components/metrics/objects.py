"""The metric definitions, stored in the cluster (a ConfigMap, or Iter8 Metric resources)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s
import yaml

from rollout.core.spec import Metric
from rollout.metrics.prometheus import PrometheusSettings

ITER8_API_VERSION = "iter8.tools/v2alpha2"
CONFIGMAP_NAME = "seldon-rollout-metrics"


def iter8_metric_spec(metric: Metric, prometheus_url: str) -> dict[str, Any]:
    """One metric in Iter8's v2alpha2 Metric shape (the seed's metrics.yaml).

    The URL is the one the engine queries: a base URL gets `/api/v1/query`, a URL ending in it is kept.
    """
    spec: dict[str, Any] = {
        "description": metric.description,
        "type": metric.type,
        "provider": "prometheus",
        "jqExpression": metric.jq_expression,
        "params": [{"name": "query", "value": metric.query}],
        "urlTemplate": PrometheusSettings(url=prometheus_url).query_url,
    }
    if metric.units:
        spec["units"] = metric.units
    if metric.sample_size:
        spec["sampleSize"] = metric.sample_size
    return spec


def configmap_data(metrics: Sequence[Metric]) -> dict[str, str]:
    """One key per metric, its definition as YAML (stable key order)."""
    return {m.name: yaml.safe_dump(m.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=True)
            for m in metrics}  # json mode: a metric's `kind` is an enum, which YAML cannot represent


class MetricsLibrary(pulumi.ComponentResource):
    """A namespace holding the experiment's metric definitions."""

    namespace: pulumi.Output[str]

    def __init__(self, name: str, *, metrics: Sequence[Metric], namespace: str, as_crd: bool,
                 prometheus_url: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("seldon-rollout:metrics:MetricsLibrary", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = k8s.core.v1.Namespace(f"{name}-ns", metadata={"name": namespace}, opts=child)
        names: list[pulumi.Output[str]] = []
        if as_crd:
            for metric in metrics:
                cr = k8s.apiextensions.CustomResource(
                    f"{name}-{metric.name}", api_version=ITER8_API_VERSION, kind="Metric",
                    metadata={"name": metric.name, "namespace": ns.metadata["name"]},
                    spec=iter8_metric_spec(metric, prometheus_url), opts=child)
                names.append(cast(Any, cr).metadata["name"])
        else:
            cm = k8s.core.v1.ConfigMap(
                f"{name}-configmap", metadata={"name": CONFIGMAP_NAME, "namespace": ns.metadata["name"]},
                data=configmap_data(metrics), opts=child)
            names.append(cm.metadata["name"])
        self.namespace = ns.metadata["name"]
        self.objects = pulumi.Output.all(*names)
        self.register_outputs({"namespace": self.namespace, "objects": self.objects})
