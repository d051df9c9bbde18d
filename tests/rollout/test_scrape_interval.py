"""Cadence against scrape interval, at create: a real Prometheus whose targets API lists the scrape jobs of
the experiment's series (static targets with their own `scrape_interval`, the series backfilled), and
stubs for what a real one does not do on demand (no targets API, no intervals, failing).

The series of the baseline come from job `pods-a` (scraped every 30 s), the candidate's from `pods-b`
(every 60 s); job `unrelated` (every 5 minutes) exports none of them. The targets are loopback ports
nothing listens on: they are active (and down), which is all the targets API needs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import requests

from components.metrics.latency import with_quantile_tests
from rollout.core.validation import parse_experiment
from rollout.metrics.prometheus import PrometheusClient, PrometheusSettings
from rollout.metrics.scrape import check_cadence, duration_seconds, series_names
from rollout.provider import ExperimentProvider, PreflightError
from testbed.promserver import BASELINE, CANDIDATE, QUERY_TIME, PrometheusServer, PrometheusUnavailable, free_port
from testbed.scripted import BUILD_INFO, Reply, ScriptedServer
from tests.rollout.factories import seed_experiment

JOBS = {"pods-a": "30s", "pods-b": "1m", "unrelated": "5m"}


@pytest.fixture(scope="module", autouse=True)
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """Started first, so the tests without it run while Prometheus discovers its targets."""
    targets = {job: [f"127.0.0.1:{free_port()}" for _ in range(2)] for job in JOBS}
    configs = "[" + ", ".join(f'{{job_name: {job}, scrape_interval: {interval}, scrape_timeout: 1s, '
                              f'static_configs: [{{targets: [{", ".join(targets[job])}]}}]}}'
                              for job, interval in JOBS.items()) + "]"
    workloads = (dataclasses.replace(BASELINE, job="pods-a"), dataclasses.replace(CANDIDATE, job="pods-b"))
    server = PrometheusServer(tmp_path_factory.mktemp("scrape"), workloads, configs)
    try:
        try:
            server.start()
        except PrometheusUnavailable as err:
            pytest.fail(f"cannot start the test Prometheus: {err}", pytrace=False)
        yield server
    finally:
        server.stop()


@pytest.fixture
def prometheus(started: PrometheusServer) -> PrometheusServer:
    """The server once its targets API lists every target (Prometheus 2.42 hands discovered targets to the
    scrape manager about 5 s after start)."""
    deadline = time.monotonic() + 30
    with requests.Session() as session:
        while time.monotonic() < deadline:
            active = session.get(started.url + "/api/v1/targets", params={"state": "active"}, timeout=5).json()
            if len(active["data"]["activeTargets"]) == 2 * len(JOBS):
                return started
            time.sleep(0.1)  # polling under a deadline
    pytest.fail("the targets API did not list the configured targets in 30 s", pytrace=False)


def experiment(**overrides: Any) -> dict[str, Any]:
    return seed_experiment(**overrides)


def cadence_of(server: PrometheusServer, at: float = QUERY_TIME, **overrides: Any) -> Any:
    with requests.Session() as session:
        client = PrometheusClient(PrometheusSettings(server.url, 10.0), session=session)
        return check_cadence(parse_experiment(experiment(**overrides)), client, at)


def test_the_series_a_query_names() -> None:
    spec = parse_experiment(with_quantile_tests(seed_experiment(algorithm="sequential")))
    assert set().union(*(series_names(m.query) for m in spec.metrics)) == {
        "seldon_api_executor_server_requests_seconds_bucket", "seldon_api_executor_server_requests_seconds_count",
        "seldon_api_executor_server_requests_seconds_sum"}
    assert series_names('rate(x_total{a="b{c}"}[5m]) * on(job) group_left(y) up offset 1m and bool z:r') == {
        "x_total", "up", "z:r"}
    assert [duration_seconds(t) for t in ("15s", "1m30s", "500ms", "2h", "1d", "", "15", "1x")] == [
        15, 90, 0.5, 7200, 86400, None, None, None]


def provider_inputs(url: str, **overrides: Any) -> dict[str, Any]:
    return {"experiment": experiment(**overrides), "prometheus": {"url": url, "timeoutSeconds": 5}}


SERIES = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {"job": "kubernetes-pods", "instance": "10.0.0.7:8000"}, "value": [0, "28"]}]}}


def targets(*intervals: str | None) -> dict[str, Any]:
    return {"status": "success", "data": {"activeTargets": [
        {"labels": {"job": "kubernetes-pods", "instance": "10.0.0.7:8000"},
         **({"scrapeInterval": i} if i is not None else {})} for i in intervals], "droppedTargets": []}}


@pytest.mark.parametrize(("targets_reply", "note"), [
    (Reply(404, "404 page not found"), "scrape interval not checked: HTTP 404 from {url}/api/v1/targets (no targets "
                                       "API)"),
    (Reply(200, targets(None)), "scrape interval not checked: no active target of the experiment's series gives its "
                                "scrape interval"),
    (Reply(200, targets("2m", "15s")), "scrape interval 120 s (the longest of 2 target(s) of job kubernetes-pods the "
                                      "metrics come from); intervalSeconds 300 is at least twice it"),
])
def test_what_cannot_be_checked_is_said_and_the_experiment_starts(targets_reply: Reply, note: str) -> None:
    with ScriptedServer(Reply(200, BUILD_INFO), Reply(200, SERIES), targets_reply) as stub:
        outs = ExperimentProvider().create(provider_inputs(stub.url, intervalSeconds=300)).outs
        assert outs is not None and outs["messages"][-1] == note.format(url=stub.url)
        assert [r.path for r in stub.requests] == ["/api/v1/status/buildinfo", "/api/v1/query", "/api/v1/targets"]
        assert stub.requests[2].params == {"state": ["active"]}


def test_a_prometheus_failing_at_the_targets_api_fails_create_naming_prometheus_url() -> None:
    with ScriptedServer(Reply(200, BUILD_INFO), Reply(200, SERIES), *[Reply(503, "{}")] * 4) as stub, \
            pytest.raises(PreflightError, match=rf"^prometheusUrl {stub.url}: HTTP 503 from {stub.url}/api/v1/targets; "
                                                r"the experiment was not started"):
        ExperimentProvider().create(provider_inputs(stub.url))
    with ScriptedServer(Reply(200, BUILD_INFO), *[Reply(drop=True)] * 4) as stub, \
            pytest.raises(PreflightError, match=rf"^prometheusUrl {stub.url}: "):
        ExperimentProvider().create(provider_inputs(stub.url))


def test_the_override_is_a_typed_stack_key_off_by_default(tmp_path: Path) -> None:
    from components.stack_config import ConfigError, load_stack_config

    assert load_stack_config({}).experiment.allow_short_interval is False
    assert load_stack_config({"experiment": '{"allowShortInterval": true}'}).experiment_spec().allow_short_interval
    with pytest.raises(ConfigError, match=r"experiment\.allowShortInterval: must be true or false"):
        load_stack_config({"experiment": '{"allowShortInterval": "yes"}'})


def test_an_interval_under_twice_the_scrape_interval_is_refused_with_both_numbers(prometheus: PrometheusServer) -> None:
    refused = cadence_of(prometheus, intervalSeconds=10)
    assert refused.scrape_seconds == 60  # the longest of the jobs the series come from; not `unrelated` (5 min)
    assert refused.refusal == (
        "experiment.intervalSeconds 10 is under twice the scrape interval 60 s (the longest of 4 target(s) of job "
        "pods-a, pods-b the metrics come from): a look would often find no new sample; set intervalSeconds to 120 "
        "or more, or experiment.allowShortInterval: true to start anyway")
    assert cadence_of(prometheus, intervalSeconds=119).refusal
    fine = cadence_of(prometheus, intervalSeconds=120)
    assert fine.refusal is None and "scrape interval 60 s" in fine.note
    allowed = cadence_of(prometheus, intervalSeconds=10, allowShortInterval=True)
    assert allowed.refusal is None and "allowed by allowShortInterval" in allowed.note


def test_only_the_jobs_of_the_experiments_series_count(prometheus: PrometheusServer) -> None:
    baseline_only = experiment()
    for metric in baseline_only["metrics"]:  # the candidate's job exports none of these names
        metric["query"] = metric["query"].replace("seldon_api_executor_server_requests_seconds", "only_a")
    with requests.Session() as session:
        client = PrometheusClient(PrometheusSettings(prometheus.url, 10.0), session=session)
        assert check_cadence(parse_experiment(baseline_only), client, QUERY_TIME).scrape_seconds is None
    # Long after the data (nothing within Prometheus's lookback): not checked, and said so.
    later = cadence_of(prometheus, at=QUERY_TIME + 86400, intervalSeconds=10)
    assert later.refusal is None and later.note == "scrape interval not checked: no series of the experiment's " \
                                                   "metrics yet"


def test_create_refuses_before_anything_starts(prometheus: PrometheusServer) -> None:
    with mock.patch("rollout.provider.time.time", lambda: float(QUERY_TIME)):
        with pytest.raises(PreflightError, match=r"^experiment\.intervalSeconds 10 is under twice the scrape "
                                                 r"interval 60 s .*; the experiment was not started"):
            ExperimentProvider().create(provider_inputs(prometheus.url, intervalSeconds=10))
        outs = ExperimentProvider().create(provider_inputs(prometheus.url, intervalSeconds=120)).outs
    assert outs is not None and outs["stage"] == "Running"
    assert any("scrape interval 60 s" in m for m in outs["messages"])


def test_an_update_that_shortens_the_interval_under_the_scrapes_is_refused_and_changes_nothing(
        prometheus: PrometheusServer) -> None:
    provider = ExperimentProvider()
    with mock.patch("rollout.provider.time.time", lambda: float(QUERY_TIME)):
        created = provider.create(provider_inputs(prometheus.url, intervalSeconds=120)).outs
    assert created is not None
    later = lambda: float(QUERY_TIME + 130)  # noqa: E731  # one interval on: the look is due
    with mock.patch("rollout.provider.time.time", later):
        with pytest.raises(PreflightError, match=r"^experiment\.intervalSeconds 20 is under twice the scrape "
                                                 r"interval 60 s .*; nothing changed: the experiment goes on as "
                                                 r"before, at iteration 0$"):
            provider.update("x", created, provider_inputs(prometheus.url, intervalSeconds=20))
        # allowed explicitly: the update goes through at the new cadence
        allowed = provider.update("x", created, provider_inputs(prometheus.url, intervalSeconds=20,
                                                                allowShortInterval=True)).outs
        # an edit that keeps the interval at twice the scrapes or more is not refused either
        kept = provider.update("x", created, provider_inputs(prometheus.url, intervalSeconds=125)).outs
    assert allowed is not None and kept is not None
    assert allowed["spec"]["intervalSeconds"] == 20 and kept["spec"]["intervalSeconds"] == 125
