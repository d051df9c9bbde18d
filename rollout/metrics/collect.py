"""One iteration's metric snapshot: every decision metric for every version, queried concurrently."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from rollout.core.jqexpr import JqError
from rollout.core.outcomes import Failed, NoData, Observed, Outcome, Snapshot
from rollout.core.spec import ExperimentSpec, Metric, Version
from rollout.core.templating import ELAPSED_TIME, TemplateError, elapsed_seconds, render
from rollout.metrics.evaluate import first_value
from rollout.metrics.prometheus import BackendError, PrometheusClient

MAX_WORKERS = 16
_NON_FINITE = {"NaN", "+Inf", "-Inf", "Inf"}


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


VERSION_LABEL = "rollout_version"
"""Label the batched query adds to tell the versions' series apart (its value: the version's index)."""


def _render(metric: Metric, version: Version, elapsed: int) -> str:
    return render(metric.query, {**version.variable_map(), ELAPSED_TIME: str(elapsed)})


def _audited(outcome: Outcome, query: str, retries: int) -> Outcome:
    """`outcome` with the query that produced it and the retries it took, for the record."""
    return replace(outcome, query=query, retries=retries)


def _query_one(client: PrometheusClient, metric: Metric, version: Version, elapsed: int,
               now: float) -> Outcome:
    try:
        promql = _render(metric, version, elapsed)
    except TemplateError as err:
        return Failed(f"template: {err}")
    try:
        answer = client.query(promql, now)
    except BackendError as err:
        return Failed(str(err), query=promql, retries=err.retries)
    return _audited(classify(answer.body, metric.jq_expression), promql, answer.retries)


def batched_query(queries: list[str]) -> str:
    """One PromQL for several versions: each version's result tagged with its index.

    >>> batched_query(["a", "b"])
    'label_replace((a), "rollout_version", "0", "", "") or label_replace((b), "rollout_version", "1", "", "")'
    """
    return " or ".join(f'label_replace(({q}), "{VERSION_LABEL}", "{i}", "", "")' for i, q in enumerate(queries))


def _split(body: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The batched answer as one body per version, each with only that version's series."""
    data = body.get("data") or {}
    per: list[list[Any]] = [[] for _ in range(count)]
    for series in data.get("result") or []:
        labels = dict(series.get("metric") or {})
        index = labels.pop(VERSION_LABEL, None)
        if index is not None and index.isdigit() and int(index) < count:
            per[int(index)].append({**series, "metric": labels})
    return [{**body, "data": {**data, "result": result}} for result in per]


def _query_metric(client: PrometheusClient, metric: Metric, versions: tuple[Version, ...], elapsed: int,
                  now: float) -> list[Outcome]:
    """Every version's outcome for one metric, in one request when the query allows it.

    A query whose result is not an instant vector cannot be batched (Prometheus answers `bad_data`):
    then each version is queried on its own.
    """
    try:
        queries = [_render(metric, v, elapsed) for v in versions]
    except TemplateError as err:
        return [Failed(f"template: {err}")] * len(versions)
    if len(versions) == 1:
        return [_query_one(client, metric, versions[0], elapsed, now)]
    try:
        answer = client.query(batched_query(queries), now)
    except BackendError as err:
        if err.error_type == "bad_data":
            return [_query_one(client, metric, v, elapsed, now) for v in versions]
        return [Failed(str(err), query=q, retries=err.retries) for q in queries]
    parts = _split(answer.body, len(versions))
    return [_audited(classify(part, metric.jq_expression), q, answer.retries)
            for part, q in zip(parts, queries, strict=True)]


def collect_snapshot(spec: ExperimentSpec, client: PrometheusClient, started_at: float,
                     now: float, metric_names: tuple[str, ...] | None = None) -> Snapshot:
    """Query `metric_names` (default: every metric) for every version, at time `now`.

    One request per metric (all versions batched), the metrics' requests issued concurrently.
    """
    names = metric_names if metric_names is not None else tuple(m.name for m in spec.metrics)
    elapsed = elapsed_seconds(started_at, now)
    metrics = [spec.metric(n) for n in names]
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, max(1, len(metrics)))) as pool:
        futures = [pool.submit(_query_metric, client, m, spec.versions, elapsed, now) for m in metrics]
        return {(m.name, v.name): outcome for m, f in zip(metrics, futures, strict=True)
                for v, outcome in zip(spec.versions, f.result(), strict=True)}
