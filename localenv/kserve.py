"""KServe InferenceServices (Standard/raw mode): the predictor Service and the Python model server.

Read from kserve/kserve v0.20.0 (docs/kserve.md cites each file):

- raw mode makes one Deployment and one Service per component; the predictor's is named
  `<isvc>-predictor` (`<isvc>-<predictor name>-predictor` when `spec.predictor.name` is set), port 80
  (`pkg/constants/constants.go`, `PredictorServiceName`, `CommonDefaultHttpPort`);
- the sklearn and xgboost runtimes start the model server with `--model_name={{.Name}}`: the model
  is named after the InferenceService (`config/runtimes/kserve-sklearnserver.yaml`, `kserve-xgbserver.yaml`);
- the server answers `POST /v1/models/<name>:predict` and `POST /v2/models/<name>/infer`, errors as
  `{"error": "..."}` with the status of `python/kserve/kserve/errors.py`'s handlers: 404 for an unknown
  model, 400 for an invalid body, 500 for a failed prediction (`InferenceError`), FastAPI's 422 for
  a v2 body that is not an `InferenceRequest`;
- it times each step into `request_preprocess_seconds`, `request_predict_seconds`,
  `request_postprocess_seconds` (and `request_explain_seconds`), label `model_name`, the client
  library's default buckets (`python/kserve/kserve/metrics.py`, `model.py`).

The sklearn server answers `predict` (class labels; `predict_proba` only with PREDICT_PROBA=true),
the xgboost server the booster's `predict` (class probabilities for the iris model): both from the
models of `localenv.models`, their real errors included.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from xgboost import DMatrix

from localenv.executor import Reply
from localenv.faults import Faults
from localenv.istio import IstioMetrics
from localenv.models import SKLEARN_SERVER, XGBOOST_SERVER, Model
from localenv.routes import BadObject

KSERVE_GROUP = "serving.kserve.io"
KSERVE_VERSION = "v1beta1"
MODEL_FORMATS = {"sklearn": SKLEARN_SERVER, "xgboost": XGBOOST_SERVER}
"""`spec.predictor.model.modelFormat.name` -> the model of `localenv.models` that serves it."""
RUNTIMES = {"sklearn": "kserve-sklearnserver", "xgboost": "kserve-xgbserver"}
CONTAINER = "kserve-container"
HTTP_PORT = 8080
METRICS_PATH = "/metrics"
SERVICE_PORT = 80

PREPROCESS = "request_preprocess_seconds"
PREDICT = "request_predict_seconds"
POSTPROCESS = "request_postprocess_seconds"
EXPLAIN = "request_explain_seconds"
HELP = {PREPROCESS: "pre-process request latency", POSTPROCESS: "post-process request latency",
        PREDICT: "predict request latency", EXPLAIN: "explain request latency"}
LABELS = ("model_name",)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""prometheus_client's `Histogram.DEFAULT_BUCKETS` (plus +Inf): KServe's histograms give none."""

V1_PATH = re.compile(r"^/v1/models/([^/:]+):predict$")
V2_PATH = re.compile(r"^/v2/models/([^/]+)/infer$")
V2_DATATYPES = {"BOOL": np.bool_, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
                "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
                "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}


@dataclass(frozen=True)
class InferenceService:
    """What one InferenceService's predictor serves."""

    namespace: str
    name: str
    predictor_name: str
    model_format: str
    storage_uri: str

    @property
    def service(self) -> str:
        """The predictor's Service (and Deployment) in raw mode: `<name>-predictor`."""
        if self.predictor_name:
            return f"{self.name}-{self.predictor_name}-predictor"
        return f"{self.name}-predictor"

    @property
    def implementation(self) -> str:
        return MODEL_FORMATS[self.model_format]


def inference_service(obj: Mapping[str, Any]) -> InferenceService:
    """The predictor of an InferenceService: `spec.predictor.model.modelFormat.name` and `storageUri`."""
    meta = obj.get("metadata") or {}
    where = f"InferenceService {meta.get('namespace')}/{meta.get('name')}"
    predictor = (obj.get("spec") or {}).get("predictor")
    if not isinstance(predictor, dict):
        raise BadObject(f"{where}: spec.predictor is missing")
    model = predictor.get("model")
    if not isinstance(model, dict):
        raise BadObject(f"{where}: spec.predictor.model is missing (only the model spec is served here)")
    model_format = (model.get("modelFormat") or {}).get("name")
    if model_format not in MODEL_FORMATS:
        raise BadObject(f"{where}: spec.predictor.model.modelFormat.name {model_format!r} is not served here "
                        f"(one of {', '.join(MODEL_FORMATS)})")
    storage_uri = model.get("storageUri")
    if not isinstance(storage_uri, str) or not storage_uri:
        raise BadObject(f"{where}: spec.predictor.model.storageUri is missing")
    return InferenceService(namespace=str(meta.get("namespace", "default")), name=str(meta.get("name", "")),
                            predictor_name=str(predictor.get("name") or ""), model_format=str(model_format),
                            storage_uri=storage_uri)


def error(status: int, message: str) -> Reply:
    """KServe's error body (`errors.py`: `JSONResponse(status_code=..., content={"error": str(exc)})`)."""
    return Reply(status, {"error": message})


def _digest(*parts: str, length: int) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


class KServeMetrics(Collector):
    """The model server's four step histograms, label `model_name`; a series from its first observation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)

    def observe(self, family: str, model_name: str, seconds: float) -> None:
        with self._lock:
            buckets, totals = self._series.setdefault((family, model_name), ([0] * (len(BUCKETS) + 1), [0.0]))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    buckets[i] += 1
            buckets[-1] += 1
            totals[0] += seconds

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            series = {k: (list(b), t[0]) for k, (b, t) in self._series.items()}
        for family in (PREPROCESS, POSTPROCESS, PREDICT, EXPLAIN):
            found = sorted((name, v) for (f, name), v in series.items() if f == family)
            if not found:
                continue
            histogram = HistogramMetricFamily(family, HELP[family], labels=LABELS)
            for model_name, (buckets, total) in found:
                bounds = [*(repr(b) for b in BUCKETS), "+Inf"]
                histogram.add_metric([model_name], [(b, float(n)) for b, n in zip(bounds, buckets, strict=True)],
                                     total)
            yield histogram

    def exposition(self) -> bytes:
        return generate_latest(self._registry)


class ModelServer:
    """One predictor pod of an InferenceService: the kserve model server for its one model."""

    def __init__(self, isvc: InferenceService, model: Model, faults: Faults) -> None:
        self.isvc = isvc
        self._model = model
        self._faults = faults
        self.metrics = KServeMetrics()
        self.sidecar = IstioMetrics()
        """The pod's Istio sidecar: what it reports as the destination of the gateway's requests."""
        self._ids = 0
        self._lock = threading.Lock()
        self.template_hash = _digest(isvc.namespace, isvc.name, isvc.predictor_name, isvc.model_format,
                                     isvc.storage_uri, length=10)
        self.pod = f"{isvc.service}-{self.template_hash}-{_digest(self.template_hash, length=5)}"

    @property
    def model_name(self) -> str:
        return self.isvc.name

    def labels(self) -> dict[str, str]:
        """The pod's labels as the raw-mode Deployment sets them (`deployment_reconciler.go`)."""
        return {"app": f"isvc.{self.isvc.service}", "component": "predictor",
                "serving.kserve.io/inferenceservice": self.isvc.name, "pod-template-hash": self.template_hash}

    def handle(self, path: str, body: bytes) -> Reply:
        """`POST` to the model server's port: v1 predict or v2 infer; 404 for any other path."""
        match = V1_PATH.match(path)
        if match:
            return self._v1(match.group(1), body)
        match = V2_PATH.match(path)
        if match:
            return self._v2(match.group(1), body)
        return Reply(404, {"detail": "Not Found"})

    def _v1(self, model_name: str, body: bytes) -> Reply:
        if model_name != self.model_name:
            return error(404, f"Model with name {model_name} does not exist.")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError) as err:
            return error(400, f"Unrecognized request format: {err}")
        if isinstance(payload, dict) and "instances" in payload and not isinstance(payload["instances"], list):
            self._observe(PREPROCESS, 0.0)
            return error(400, 'Expected "instances" to be a list')
        result = self._infer(payload, v2=False)
        if isinstance(result, Reply):
            return result
        return Reply(200, {"predictions": result.tolist()})

    def _v2(self, model_name: str, body: bytes) -> Reply:
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError) as err:
            return Reply(422, {"detail": [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error",
                                           "input": {}, "ctx": {"error": str(err)}}]})
        invalid = _v2_validation(payload)
        if invalid is not None:
            return Reply(422, {"detail": invalid})
        if model_name != self.model_name:
            return error(404, f"Model with name {model_name} does not exist.")
        result = self._infer(payload, v2=True)
        if isinstance(result, Reply):
            return result
        with self._lock:
            self._ids += 1
            request_id = payload.get("id") or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.pod}/{self._ids}"))
        return Reply(200, {"id": request_id, "model_name": self.model_name, "model_version": None,
                           "outputs": [{"name": "output-0", "shape": list(result.shape),
                                        "datatype": _datatype(result.dtype), "data": result.ravel().tolist()}]})

    def _observe(self, family: str, seconds: float) -> None:
        self.metrics.observe(family, self.model_name, seconds)

    def _infer(self, payload: Any, v2: bool) -> np.ndarray[Any, Any] | Reply:
        """preprocess, predict, postprocess, each timed as `Model.__call__` times it."""
        started = time.perf_counter()
        fails, delay = self._faults.next_prediction(self.isvc.namespace)
        self._observe(PREPROCESS, time.perf_counter() - started)
        started = time.perf_counter()
        try:
            if delay:
                time.sleep(delay)
            if fails:
                raise RuntimeError("injected fault")
            result = self._predict(_inputs(payload, v2))
        except Exception as err:  # the server's `except Exception as e: raise InferenceError(str(e))`
            self._observe(PREDICT, time.perf_counter() - started)
            return error(500, str(err))
        self._observe(PREDICT, time.perf_counter() - started)
        started = time.perf_counter()
        self._observe(POSTPROCESS, time.perf_counter() - started)
        return result

    def _predict(self, instances: Any) -> np.ndarray[Any, Any]:
        with self._model.lock:
            if self.isvc.model_format == "xgboost":
                booster = self._model.classifier.get_booster()  # type: ignore[attr-defined]
                return np.asarray(booster.predict(DMatrix(instances, nthread=1)))
            return np.asarray(self._model.classifier.predict(instances))  # type: ignore[attr-defined]


def _inputs(payload: Any, v2: bool) -> Any:
    """`utils.get_predict_input`: v1 `instances` (or `inputs`), v2 the first input reshaped."""
    if not v2:
        instances = payload["inputs"] if "inputs" in payload else payload["instances"]
        return np.array(instances)
    first = payload["inputs"][0]
    dtype = V2_DATATYPES.get(first["datatype"])
    if dtype is None:
        raise ValueError(f"invalid datatype {first['datatype']}")
    return np.array(first["data"], dtype=dtype).reshape(first["shape"])


def _v2_validation(payload: Any) -> list[dict[str, Any]] | None:
    """FastAPI's 422 details for a body that is not an `InferenceRequest` (required fields only)."""
    if not isinstance(payload, dict):
        return [{"type": "model_attributes_type", "loc": ["body"], "msg": "Input should be a valid dictionary",
                 "input": payload}]
    if not isinstance(payload.get("inputs"), list):
        kind = "missing" if "inputs" not in payload else "list_type"
        return [{"type": kind, "loc": ["body", "inputs"],
                 "msg": "Field required" if kind == "missing" else "Input should be a valid list",
                 "input": payload if kind == "missing" else payload["inputs"]}]
    details = []
    for i, item in enumerate(payload["inputs"]):
        for field in ("name", "shape", "datatype", "data"):
            if not isinstance(item, dict) or field not in item:
                details.append({"type": "missing", "loc": ["body", "inputs", i, field], "msg": "Field required",
                                "input": item})
    return details or None


def _datatype(dtype: np.dtype[Any]) -> str:
    for name, numpy_type in V2_DATATYPES.items():
        if dtype == numpy_type:
            return name
    return "BYTES"


class ModelServers:
    """The InferenceServices in force, one `ModelServer` each; replaced as a whole on each sync."""

    def __init__(self, models: Mapping[str, Model], faults: Faults) -> None:
        self._models = models
        self._faults = faults
        self._lock = threading.Lock()
        self._servers: dict[tuple[str, str], ModelServer] = {}

    def update(self, services: list[InferenceService]) -> list[ModelServer]:
        """Serve these; a changed spec (promotion) starts a new pod with fresh metrics. The new ones."""
        started = []
        with self._lock:
            servers = {}
            for isvc in services:
                key = (isvc.namespace, isvc.name)
                server = self._servers.get(key)
                if server is None or server.isvc != isvc:
                    server = ModelServer(isvc, self._models[isvc.implementation], self._faults)
                    started.append(server)
                servers[key] = server
            self._servers = servers
        return started

    def servers(self) -> list[ModelServer]:
        with self._lock:
            return list(self._servers.values())

    def by_service(self, namespace: str, service: str) -> ModelServer | None:
        """The server behind the predictor Service `namespace/service`."""
        with self._lock:
            for server in self._servers.values():
                if server.isvc.namespace == namespace and server.isvc.service == service:
                    return server
        return None
