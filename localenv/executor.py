"""The Seldon executors: one per SeldonDeployment, answering predictions and feedback.

Each call is recorded as Seldon's executor records it (docs/seldon-metrics.md): the whole request
into the server family (`service` = `predictions` or `feedback`), the call to the model (with any
injected latency) into the client family (`service` = `/predict` or `/send-feedback`, the model's
own path), and a feedback's non-zero reward into the model server's counters. The model answers
as the Python `seldon-core` wrapper does, error payloads included. The model behind a deployment is
the one its spec names (`implementation`); a changed spec (promotion) starts a new pod, with fresh
metrics, on the next sync.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from localenv.discovery import Pod
from localenv.faults import Faults
from localenv.models import BadInput, Model
from localenv.routes import ServedModel

log = logging.getLogger(__name__)

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
PREDICT_PATH = "/predict"
FEEDBACK_PATH = "/send-feedback"


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, JSON body and extra response headers."""

    status: int
    body: Mapping[str, Any]
    headers: tuple[tuple[str, str], ...] = field(default=())


def failure(status: int, reason: str, info: str) -> Reply:
    """Seldon's error body."""
    return Reply(status, {"status": {"code": status, "info": info, "reason": reason, "status": "FAILURE"}})


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as err:
        raise BadInput(f"body is not JSON: {err}") from err


def _rows(document: Any) -> Any:
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict) or "ndarray" not in data:
        raise BadInput('expected {"data": {"ndarray": [[...]]}}')
    return data["ndarray"]


def _reward(document: Any) -> float:
    if not isinstance(document, dict):
        raise BadInput("feedback must be a JSON object")
    reward = document.get("reward", 0)
    if isinstance(reward, bool) or not isinstance(reward, int | float) or not math.isfinite(reward):
        raise BadInput(f"reward must be a finite number, got {reward!r}")
    return float(reward)


def model_failure(status: int, reason: str, info: str) -> Reply:
    """The Python wrapper's error body, which the executor passes on with the model's status."""
    return Reply(status, {"status": {"code": -1, "info": info, "reason": reason, "status": 1}})


class Executors:
    """The executors in force, keyed by (namespace, deployment); replaced as a whole on each sync."""

    def __init__(self, models: Mapping[str, Model], faults: Faults) -> None:
        self._models = models
        self._faults = faults
        self._lock = threading.Lock()
        self._pods: dict[tuple[str, str], Pod] = {}
        self._unsupported: set[ServedModel] = set()
        self._feedback: Counter[str] = Counter()

    def update(self, served: Iterable[ServedModel]) -> None:
        table = {}
        for model in served:
            if model.implementation not in self._models:
                if model not in self._unsupported:
                    log.warning("%s/%s: implementation %r is not served here (one of %s)", model.namespace,
                                model.deployment, model.implementation, ", ".join(self._models))
                    self._unsupported.add(model)
                continue
            table[(model.namespace, model.deployment)] = model
        with self._lock:
            pods = {}
            for key, model in table.items():
                pod = self._pods.get(key)
                if pod is None or pod.served != model:
                    pod = Pod.start(model, self._models[model.implementation].image)
                    log.info("%s/%s now serves %s (%s) in pod %s", *key, model.implementation, model.model_uri,
                             pod.name)
                pods[key] = pod
            self._pods = pods

    def served(self) -> dict[tuple[str, str], ServedModel]:
        with self._lock:
            return {key: pod.served for key, pod in self._pods.items()}

    def pods(self) -> list[Pod]:
        with self._lock:
            return list(self._pods.values())

    def by_service(self, namespace: str, service: str) -> ServedModel | None:
        """The deployment whose predictor service `<deployment>-<predictor>` is `service`."""
        with self._lock:
            for (ns, _), pod in self._pods.items():
                if ns == namespace and pod.served.service == service:
                    return pod.served
        return None

    def get(self, namespace: str, deployment: str) -> ServedModel | None:
        with self._lock:
            pod = self._pods.get((namespace, deployment))
        return None if pod is None else pod.served

    def _pod(self, served: ServedModel) -> Pod:
        with self._lock:
            pod = self._pods.get((served.namespace, served.deployment))
        if pod is None or pod.served != served:  # replaced by a sync since the route was picked
            pod = Pod.start(served, self._models[served.implementation].image)
        return pod

    def predict(self, served: ServedModel, body: bytes) -> Reply:
        started = time.perf_counter()
        pod = self._pod(served)
        model = self._models[served.implementation]
        fails, delay = self._faults.next_prediction(served.namespace)
        called = time.perf_counter()
        if delay:
            time.sleep(delay)
        reply = self._model_predict(model, pod, body, fails)
        pod.executor.client_request(PREDICT_PATH, served.node, pod.image, reply.status, time.perf_counter() - called)
        pod.executor.server_request(PREDICTIONS, reply.status, time.perf_counter() - started)
        return reply

    @staticmethod
    def _model_predict(model: Model, pod: Pod, body: bytes, fails: bool) -> Reply:
        try:
            rows = _rows(_json(body))
        except BadInput as err:
            return model_failure(400, "MICROSERVICE_BAD_DATA", str(err))
        if fails:
            return model_failure(500, "MICROSERVICE_INTERNAL_ERROR", "injected fault")
        try:
            probabilities = model.predict_proba(rows)
        except BadInput as err:
            return model_failure(400, "MICROSERVICE_BAD_DATA", str(err))
        names = [f"t:{i}" for i in range(len(probabilities[0]))]
        return Reply(200, {"data": {"names": names, "ndarray": probabilities},
                           "meta": {"requestPath": {pod.served.node: pod.image}}})

    def feedback(self, served: ServedModel, body: bytes) -> Reply:
        started = time.perf_counter()
        pod = self._pod(served)
        try:
            reward = _reward(_json(body))
        except BadInput as err:
            reply = model_failure(400, "MICROSERVICE_BAD_DATA", str(err))
        else:
            pod.model_server.reward(reward)
            reply = Reply(200, {"data": {"tensor": {"shape": [0]}},
                                "meta": {"requestPath": {served.node: pod.image}}})
        pod.executor.client_request(FEEDBACK_PATH, served.node, pod.image, reply.status,
                                    time.perf_counter() - started)
        pod.executor.server_request(FEEDBACK, reply.status, time.perf_counter() - started)
        with self._lock:
            self._feedback[served.namespace] += 1
        return reply

    def feedback_counts(self) -> dict[str, int]:
        """Feedback calls answered so far (whatever the answer), by namespace, across the pods' restarts."""
        with self._lock:
            return dict(sorted(self._feedback.items()))
