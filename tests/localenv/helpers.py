"""Small helpers for the data plane's HTTP tests: requests and /metrics samples (waiting on conditions: testbed/waiting.py)."""

from __future__ import annotations

from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from localenv.metrics import SERVER

SEED_PAYLOAD = '{"data": {"ndarray":[[6.8,2.8,4.8,1.4]]}}'


def predict(http: requests.Session, url: str, host: str = "iris.example.com") -> requests.Response:
    return http.post(f"{url}/api/v1.0/predictions", data=SEED_PAYLOAD, timeout=10,
                     headers={"Host": host, "Content-Type": "application/json"})


def feedback(http: requests.Session, url: str, namespace: str, reward: object = 1) -> requests.Response:
    return http.post(f"{url}/seldon/{namespace}/iris/api/v1.0/feedback", json={"reward": reward}, timeout=10)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def targets(http: requests.Session, url: str) -> list[dict[str, Any]]:
    """The data plane's service discovery: one group per container metrics endpoint."""
    groups: list[dict[str, Any]] = http.get(f"{url}/discovery/targets", timeout=10).json()
    return groups


def samples(http: requests.Session, url: str) -> Samples:
    """Every sample of every discovered endpoint by (sample name, labels), with `kubernetes_namespace`
    and `seldon_deployment_id` added from the target, as the seed's relabelling adds them."""
    found: Samples = {}
    for group in targets(http, url):
        meta = group["labels"]
        added = {"kubernetes_namespace": meta["__meta_kubernetes_namespace"],
                 "seldon_deployment_id": meta["__meta_kubernetes_pod_label_seldon_deployment_id"]}
        text = http.get(url + meta["__meta_kubernetes_pod_annotation_prometheus_io_path"], timeout=10).text
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                found[(s.name, frozenset({**s.labels, **added}.items()))] = s.value
    return found


def count(found: Samples, histogram: str, namespace: str, service: str | None = None, code: str = "200") -> float:
    """Requests in `histogram` (default `service`: `predictions` on the server, `/predict` on the client)."""
    if service is None:
        service = "predictions" if histogram == SERVER else "/predict"
    wanted = {("kubernetes_namespace", namespace), ("service", service), ("code", code)}
    return sum(v for (name, labels), v in found.items() if name == f"{histogram}_count" and wanted <= labels)
