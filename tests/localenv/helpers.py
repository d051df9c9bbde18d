"""Small helpers for the data plane's HTTP tests: requests, /metrics samples, waiting on conditions."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import requests
from prometheus_client.parser import text_string_to_metric_families

SEED_PAYLOAD = '{"data": {"ndarray":[[6.8,2.8,4.8,1.4]]}}'
T = TypeVar("T")


def predict(http: requests.Session, url: str, host: str = "iris.example.com") -> requests.Response:
    return http.post(f"{url}/api/v1.0/predictions", data=SEED_PAYLOAD, timeout=10,
                     headers={"Host": host, "Content-Type": "application/json"})


def feedback(http: requests.Session, url: str, namespace: str, reward: object = 1) -> requests.Response:
    return http.post(f"{url}/seldon/{namespace}/iris/api/v1.0/feedback", json={"reward": reward}, timeout=10)


def samples(http: requests.Session, url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics by (sample name, labels)."""
    text = http.get(f"{url}/metrics", timeout=10).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def count(found: dict[tuple[str, frozenset[tuple[str, str]]], float], histogram: str, namespace: str,
          service: str = "predictions", code: str = "200") -> float:
    labels = frozenset({"seldon_deployment_id": "iris", "predictor_name": "default",
                        "kubernetes_namespace": namespace, "code": code, "service": service}.items())
    return found.get((f"{histogram}_count", labels), 0.0)


def wait_for(condition: Callable[[], T | None], timeout: float, what: str, every: float = 0.02) -> T:
    """The first truthy value of `condition()`, polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)
