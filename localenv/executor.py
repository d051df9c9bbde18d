"""The Seldon executors: one per SeldonDeployment, answering predictions and feedback.

Each call is timed into the executor histograms: the whole request into the server histogram,
the model call (with any injected latency) into the client histogram. The model behind a
deployment is the one its spec names (`implementation`); a changed spec (promotion) takes effect
on the next sync, for the next request.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from localenv.faults import Faults
from localenv.metrics import ExecutorMetrics
from localenv.models import BadInput, Model
from localenv.routes import ServedModel

log = logging.getLogger(__name__)

PREDICTIONS = "predictions"
FEEDBACK = "feedback"


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


def _check_feedback(document: Any) -> None:
    if not isinstance(document, dict):
        raise BadInput("feedback must be a JSON object")
    reward = document.get("reward", 0)
    if isinstance(reward, bool) or not isinstance(reward, int | float) or not math.isfinite(reward):
        raise BadInput(f"reward must be a finite number, got {reward!r}")


class Executors:
    """The executors in force, keyed by (namespace, deployment); replaced as a whole on each sync."""

    def __init__(self, models: Mapping[str, Model], metrics: ExecutorMetrics, faults: Faults) -> None:
        self._models = models
        self._metrics = metrics
        self._faults = faults
        self._lock = threading.Lock()
        self._served: dict[tuple[str, str], ServedModel] = {}
        self._unsupported: set[ServedModel] = set()

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
            for key, model in table.items():
                if self._served.get(key) != model:
                    log.info("%s/%s now serves %s (%s)", *key, model.implementation, model.model_uri)
            self._served = table

    def served(self) -> dict[tuple[str, str], ServedModel]:
        with self._lock:
            return dict(self._served)

    def by_service(self, namespace: str, service: str) -> ServedModel | None:
        """The deployment whose predictor service `<deployment>-<predictor>` is `service`."""
        with self._lock:
            for (ns, _), model in self._served.items():
                if ns == namespace and model.service == service:
                    return model
        return None

    def get(self, namespace: str, deployment: str) -> ServedModel | None:
        with self._lock:
            return self._served.get((namespace, deployment))

    def _record(self, served: ServedModel, service: str, started: float, reply: Reply) -> Reply:
        self._metrics.server_request(served.deployment, served.predictor, served.namespace, reply.status, service,
                                     time.perf_counter() - started)
        return reply

    def predict(self, served: ServedModel, body: bytes) -> Reply:
        started = time.perf_counter()
        model = self._models[served.implementation]
        path = {served.node: model.image}
        try:
            rows = _rows(_json(body))
        except BadInput as err:
            return self._record(served, PREDICTIONS, started, failure(400, "MICROSERVICE_BAD_DATA", str(err)))
        fails, delay = self._faults.next_prediction(served.namespace)
        called = time.perf_counter()
        if delay:
            time.sleep(delay)
        if fails:
            reply = failure(500, "MICROSERVICE_INTERNAL_ERROR", "injected fault")
        else:
            try:
                probabilities = model.predict_proba(rows)
            except BadInput as err:
                reply = failure(400, "MICROSERVICE_BAD_DATA", str(err))
            else:
                names = [f"t:{i}" for i in range(len(probabilities[0]))]
                reply = Reply(200, {"data": {"names": names, "ndarray": probabilities},
                                    "meta": {"requestPath": path}})
        self._metrics.client_request(served.deployment, served.predictor, served.namespace, reply.status,
                                     PREDICTIONS, time.perf_counter() - called)
        return self._record(served, PREDICTIONS, started, reply)

    def feedback(self, served: ServedModel, body: bytes) -> Reply:
        started = time.perf_counter()
        try:
            _check_feedback(_json(body))
        except BadInput as err:
            return self._record(served, FEEDBACK, started, failure(400, "MICROSERVICE_BAD_DATA", str(err)))
        model = self._models[served.implementation]
        reply = Reply(200, {"data": {"names": [], "ndarray": []}, "meta": {"requestPath": {served.node: model.image}}})
        return self._record(served, FEEDBACK, started, reply)
