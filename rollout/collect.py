"""One iteration's metric snapshot: every decision metric for every version, queried concurrently."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rollout.jqexpr import JqError, first_value
from rollout.outcomes import Failed, NoData, Observed, Outcome, Snapshot
from rollout.prometheus import BackendError, PrometheusClient
from rollout.spec import ExperimentSpec, Metric, Version
from rollout.templating import ELAPSED_TIME, TemplateError, render

MAX_WORKERS = 16
_NON_FINITE = {"NaN", "+Inf", "-Inf", "Inf"}


def elapsed_seconds(started_at: float, now: float) -> int:
    """Whole seconds since the start, at least 1 (Iter8's `${elapsedTime}`)."""
    return max(1, int(now - started_at))


def classify(body: dict[str, Any], jq_expression: str) -> Outcome:
    """Read one query's body: a finite number, or why there is none."""
    data = body.get("data")
    if isinstance(data, dict) and isinstance(data.get("result"), list):
        result = data["result"]
        if data.get("resultType") in ("vector", "matrix"):
            if not result:
                return NoData("empty result")
            if len(result) > 1:
                return Failed(f"{len(result)} series, expected one (aggregate the query)")
            sample = result[0].get("value") if isinstance(result[0], dict) else None
            if isinstance(sample, list) and len(sample) == 2 and sample[1] in _NON_FINITE:
                return NoData(f"value is {sample[1]}")
    try:
        value = first_value(jq_expression, body)
    except JqError as err:
        return Failed(f"jq: {err}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return NoData(f"jq gave {value!r}, not a number")
    if not math.isfinite(value) or abs(value) >= 1.7976931348623157e308:
        return NoData("value is not finite")
    return Observed(float(value))


def _query_one(client: PrometheusClient, metric: Metric, version: Version, elapsed: int,
               now: float) -> Outcome:
    variables = {**version.variable_map(), ELAPSED_TIME: str(elapsed)}
    try:
        promql = render(metric.query, variables)
    except TemplateError as err:
        return Failed(f"template: {err}")
    try:
        body = client.query(promql, now)
    except BackendError as err:
        return Failed(str(err))
    return classify(body, metric.jq_expression)


def collect_snapshot(spec: ExperimentSpec, client: PrometheusClient, started_at: float,
                     now: float, metric_names: tuple[str, ...] | None = None) -> Snapshot:
    """Query `metric_names` (default: every metric) for every version, at time `now`."""
    names = metric_names if metric_names is not None else tuple(m.name for m in spec.metrics)
    elapsed = elapsed_seconds(started_at, now)
    jobs = [(spec.metric(n), v) for n in names for v in spec.versions]
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, max(1, len(jobs)))) as pool:
        futures = [pool.submit(_query_one, client, m, v, elapsed, now) for m, v in jobs]
        return {(m.name, v.name): f.result() for (m, v), f in zip(jobs, futures, strict=True)}
