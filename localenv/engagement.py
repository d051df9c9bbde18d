"""A stand-in for the user's own application: the reward of an A/B test where the model server has none.

KServe has no feedback API and Istio's metrics carry no business outcome (docs/kserve.md): what users do
with each version's answers is counted by the application that shows them, in its own metric. This one
counts the engagement events the reward load posts, as the seed's fortio jobs post feedback to Seldon:
`POST /app/engagement/<namespace>` with `{"reward": x}` adds 1 to
`app_user_engagement_total{model_namespace="<namespace>"}` and x to `app_user_reward_total{...}`, for a
reward that is a finite number (else 400, nothing counted).

It is a pod `engagement-app` (container `app`, port 8080, `/metrics`) in namespace `default`, listed with
the mesh's targets and scraped by the mesh job like any annotated pod. The label is `model_namespace`,
not `namespace`: Prometheus' Kubernetes relabelling gives every series the pod's own `namespace`.
Nothing here is KServe's or Istio's: a real stack reads the user's application with `extraMetrics`
(Pulumi.kserve.yaml shows the query for this one).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from localenv.executor import Reply, failure
from localenv.metrics import Exporter

PATH = re.compile(r"^/app/engagement/([a-z0-9]([-a-z0-9]*[a-z0-9])?)$")
NAMESPACE, POD, CONTAINER, PORT, METRICS_PATH = "default", "engagement-app", "app", 8080, "/metrics"
LABELS = {"app": "engagement-app"}
EVENTS, REWARD = "app_user_engagement", "app_user_reward"
"""Counter names; the exposition adds `_total`."""


class Engagement(Exporter):
    """Engagement events and their rewards per model version (by the version's namespace)."""

    def __init__(self) -> None:
        super().__init__()
        self._counts: dict[str, tuple[float, float]] = {}

    def post(self, path: str, body: bytes) -> Reply | None:
        """The reply to a POST on `path`, or None when the path is not this application's."""
        match = PATH.match(path)
        if match is None:
            return None
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            return failure(400, "BAD_JSON", "the body must be JSON like {\"reward\": 1}")
        reward = payload.get("reward") if isinstance(payload, dict) else None
        if isinstance(reward, bool) or not isinstance(reward, (int, float)) or not math.isfinite(reward):
            return failure(400, "BAD_REWARD", f"reward must be a finite number, got {reward!r}")
        namespace = match.group(1)
        with self._lock:
            events, total = self._counts.get(namespace, (0.0, 0.0))
            self._counts[namespace] = (events + 1, total + float(reward))
        return Reply(200, {"recorded": namespace})

    def events(self) -> dict[str, int]:
        """Engagement events so far, by model namespace."""
        with self._lock:
            return {namespace: int(n) for namespace, (n, _) in sorted(self._counts.items())}

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts = dict(sorted(self._counts.items()))
        if not counts:
            return
        events = CounterMetricFamily(EVENTS, "Engagement events per model version.", labels=["model_namespace"])
        reward = CounterMetricFamily(REWARD, "Sum of the engagement events' rewards per model version.",
                                     labels=["model_namespace"])
        for namespace, (n, total) in counts.items():
            events.add_metric([namespace], n)
            reward.add_metric([namespace], total)
        yield events
        yield reward
