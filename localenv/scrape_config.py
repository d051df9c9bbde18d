"""The local Prometheus's configuration: the seed's pod scraping, fed by the data plane's discovery.

Seldon Core Analytics (the seed's Prometheus) scrapes Seldon's pods in job `kubernetes-pods` with
Kubernetes service discovery and these relabelling rules (read from the chart's
`files/prometheus/prometheus-config.yaml`, see docs/seldon-metrics.md): keep annotated pods and
ports named `metrics`, take the path from the annotation, copy every pod label (`seldon-deployment-id`
becomes `seldon_deployment_id`) and the namespace (`kubernetes_namespace`). The same rules run here,
unchanged, over the same `__meta_kubernetes_*` labels, which the data plane serves at
`GET /discovery/targets` (Prometheus HTTP service discovery) instead of the API server.

`python -m localenv.scrape_config --data-plane http://127.0.0.1:8080 [--scrape-interval 1s]` prints it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from localenv.discovery import DISCOVERY_PATH, MESH_DISCOVERY_PATH

JOB = "kubernetes-pods"
POD_RELABEL_CONFIGS: tuple[dict[str, Any], ...] = (
    {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "action": "keep", "regex": True},
    {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "action": "keep", "regex": "metrics(-.*)?"},
    {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"], "action": "replace",
     "target_label": "__metrics_path__", "regex": "(.+)"},
    {"source_labels": ["__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"], "action": "replace",
     "regex": r"(.+):(?:\d+);(\d+)", "replacement": "${1}:${2}", "target_label": "__address__"},
    {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
    {"source_labels": ["__meta_kubernetes_namespace"], "action": "replace", "target_label": "kubernetes_namespace"},
    {"source_labels": ["__meta_kubernetes_pod_name"], "action": "replace", "target_label": "kubernetes_pod_name"},
)
"""Job `kubernetes-pods` of seldon-core-analytics, rule for rule."""

MESH_JOB = "mesh-pods"
MESH_RELABEL_CONFIGS: tuple[dict[str, Any], ...] = (
    {"action": "keep", "regex": True, "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]},
    {"action": "drop", "regex": True,
     "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape_slow"]},
    {"action": "replace", "regex": "(https?)",
     "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scheme"], "target_label": "__scheme__"},
    {"action": "replace", "regex": "(.+)", "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
     "target_label": "__metrics_path__"},
    {"action": "replace", "regex": r"(\d+);(([A-Fa-f0-9]{1,4}::?){1,7}[A-Fa-f0-9]{1,4})", "replacement": "[$2]:$1",
     "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_port", "__meta_kubernetes_pod_ip"],
     "target_label": "__address__"},
    {"action": "replace", "regex": r"(\d+);((([0-9]+?)(\.|$)){4})", "replacement": "$2:$1",
     "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_port", "__meta_kubernetes_pod_ip"],
     "target_label": "__address__"},
    {"action": "labelmap", "regex": "__meta_kubernetes_pod_annotation_prometheus_io_param_(.+)",
     "replacement": "__param_$1"},
    {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
    {"action": "replace", "source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
    {"action": "replace", "source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    {"action": "drop", "regex": "Pending|Succeeded|Failed|Completed", "source_labels": ["__meta_kubernetes_pod_phase"]},
    {"action": "replace", "source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
)
"""Job `kubernetes-pods` of Istio's Prometheus (istio/istio 1.30.3 `samples/addons/prometheus.yaml`),
rule for rule, renamed (a job name is unique): it scrapes the gateway's Envoy and the KServe pods,
whose ports the seed's job drops. The address rules need `__meta_kubernetes_pod_ip`, which the
data plane's targets do not have (they all share its address), so they leave it as it is."""


def scrape_config(data_plane_url: str, scrape_interval: str = "1s") -> dict[str, Any]:
    """The whole configuration, as a mapping; `data_plane_url` like `http://127.0.0.1:8080`."""
    return {
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                   "evaluation_interval": scrape_interval},
        "scrape_configs": [{
            "job_name": JOB,
            "http_sd_configs": [{"url": data_plane_url.rstrip("/") + DISCOVERY_PATH,
                                 "refresh_interval": scrape_interval}],
            "relabel_configs": [dict(rule) for rule in POD_RELABEL_CONFIGS],
        }, {
            "job_name": MESH_JOB,
            "honor_labels": True,
            "http_sd_configs": [{"url": data_plane_url.rstrip("/") + MESH_DISCOVERY_PATH,
                                 "refresh_interval": scrape_interval}],
            "relabel_configs": [dict(rule) for rule in MESH_RELABEL_CONFIGS],
        }],
    }


def render(data_plane_url: str, scrape_interval: str = "1s") -> str:
    return ("# Written by localenv.scrape_config: the seed's pod scraping over the data plane's discovery.\n"
            + yaml.safe_dump(scrape_config(data_plane_url, scrape_interval), sort_keys=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localenv.scrape_config", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-plane", required=True, help="the data plane's URL, http://HOST:PORT")
    parser.add_argument("--scrape-interval", default="1s", help="scrape and discovery interval (default 1s)")
    args = parser.parse_args(argv)
    sys.stdout.write(render(args.data_plane, args.scrape_interval))
    return 0


if __name__ == "__main__":
    sys.exit(main())
