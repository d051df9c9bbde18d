"""The Experiment provider through the SDK's real provider host, spoken to over gRPC as the engine does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from pulumi.runtime import proto

from testbed.live import LivePrometheus
from testbed.provider_host import ProviderHost
from testbed.scripted import Reply, ScriptedServer, self_signed_certificate
from tests.rollout.factories import seed_experiment

DIFF_NONE, DIFF_SOME = proto.DiffResponse.DIFF_NONE, proto.DiffResponse.DIFF_SOME


@pytest.fixture(scope="module")
def stub() -> Iterator[ScriptedServer]:
    """A server that answers the preflight (build info) and any query, for tests about the provider itself."""
    with ScriptedServer() as server:
        yield server


@pytest.fixture(scope="module")
def host() -> Iterator[ProviderHost]:
    h = ProviderHost()
    try:
        yield h
    finally:
        h.close()


def inputs(url: str = "http://127.0.0.1:9", ca_bundle: str = "", **overrides: Any) -> dict[str, Any]:
    prometheus = {"url": url, "timeoutSeconds": 5, **({"caBundle": ca_bundle} if ca_bundle else {})}
    return {"experiment": seed_experiment(**overrides), "prometheus": prometheus}


def test_check_reports_every_problem_by_field(host: ProviderHost) -> None:
    bad = inputs(intervalSeconds=0, maxCandidateWeight=150,
                 objectives=[{"metric": "p99", "upperLimit": "soon"}])
    bad["experiment"]["versions"][1]["variables"]["ns"] = "x'}or vector(1)"
    bad["experiment"]["versions"][1]["name"] = "iris-v1"
    bad["experiment"]["metrics"][0]["jqExpression"] = ".data["
    bad["prometheus"] = {"url": "prometheus:9090", "timeoutSeconds": 0}
    _, failures = host.check(bad)
    fields = {field for field, _ in failures}
    assert fields == {
        "experiment.intervalSeconds", "experiment.maxCandidateWeight", "experiment.objectives[0].metric",
        "experiment.objectives[0].upperLimit", "experiment.versions[1].variables.ns", "experiment.versions[1].name",
        "experiment.metrics[0].jqExpression", "prometheus.url", "prometheus.timeoutSeconds"}
    assert all(reason for _, reason in failures)


def test_check_accepts_the_seed(host: ProviderHost) -> None:
    checked, failures = host.check(inputs())
    assert failures == []
    assert checked["experiment"]["name"] == "quickstart-exp"


def test_create_starts_at_100_percent_baseline_and_diff_waits_for_the_interval(host: ProviderHost,
                                                                              stub: ScriptedServer) -> None:
    before = time.time()
    id_, outs = host.create(inputs(stub.url))
    assert id_ == "quickstart-exp"
    assert (outs["stage"], int(outs["iteration"])) == ("Running", 0)
    assert {k: int(v) for k, v in outs["weights"].items()} == {"iris-v1": 100, "iris-v2": 0}
    assert before <= outs["startedAt"] <= time.time()
    assert outs.get("winner") is None  # None values are not sent over the wire
    assert outs["messages"][-2:] == [f"Prometheus 2.99.0 answered at {stub.url}",  # the preflight
                                     "scrape interval not checked: no series of the experiment's metrics yet"]
    # Inside the interval: nothing to do, so `pulumi up` reports no change.
    assert host.diff(id_, outs, inputs(stub.url)).changes == DIFF_NONE
    # Once the interval has passed (the state says the last iteration was 10 s ago): an update.
    aged = {**outs, "lastIterationAt": time.time() - 10}
    assert host.diff(id_, aged, inputs(stub.url)).changes == DIFF_SOME
    # Changed inputs are a change at once; a changed set of versions restarts the experiment.
    assert host.diff(id_, outs, inputs(stub.url, iterationsPerLoop=12)).changes == DIFF_SOME
    renamed = inputs(stub.url)
    renamed["experiment"]["versions"][1]["name"] = "iris-v3"
    reply = host.diff(id_, outs, renamed)
    assert (reply.changes, list(reply.replaces)) == (DIFF_SOME, ["experiment"])


def test_finished_experiment_never_changes_again(host: ProviderHost, stub: ScriptedServer) -> None:
    _, outs = host.create(inputs(stub.url))
    done = {**outs, "stage": "Completed", "lastIterationAt": time.time() - 3600}
    assert host.diff("quickstart-exp", done, inputs(stub.url)).changes == DIFF_NONE


def test_update_over_a_real_prometheus_runs_one_iteration(host: ProviderHost, live_prometheus: LivePrometheus) -> None:
    news = inputs(live_prometheus.url)
    id_, outs = host.create(news)
    # The live targets of the series (the executors of both versions, scraped every 500 ms) are found.
    assert outs["messages"][-1] == ("scrape interval 0.5 s (the longest of 2 target(s) of job kubernetes-pods the "
                                    "metrics come from); intervalSeconds 10 is at least twice it")
    aged = {**outs, "startedAt": time.time() - 30, "lastIterationAt": time.time() - 10}
    updated = host.update(id_, aged, news)
    assert updated["messages"][0].startswith("Iteration 1: winner iris-v2"), updated["messages"]
    assert int(updated["iteration"]) == 1
    assert {k: int(v) for k, v in updated["weights"].items()} == {"iris-v1": 90, "iris-v2": 10}
    values = updated["values"]
    assert values["user-engagement"]["iris-v2"]["value"] > values["user-engagement"]["iris-v1"]["value"] > 0
    assert 15 < values["mean-latency"]["iris-v1"]["value"] < 25  # 20 ms, in milliseconds
    assert values["error-rate"]["iris-v1"]["value"] == 0
    assert updated["assessments"]["iris-v2"] == {"mean-latency <= 2000": True,
                                                 "95th-percentile-tail-latency <= 5000": True,
                                                 "error-rate <= 0.01": True}
    assert len(updated["history"]) == 1
    # Right after it, the next `pulumi up` has nothing to do.
    assert host.diff(id_, updated, news).changes == DIFF_NONE


def test_update_inside_the_interval_changes_nothing_but_the_inputs(host: ProviderHost,
                                                                   live_prometheus: LivePrometheus) -> None:
    news = inputs(live_prometheus.url)
    id_, outs = host.create(news)
    updated = host.update(id_, outs, inputs(live_prometheus.url, iterationsPerLoop=12))
    assert int(updated["iteration"]) == 0
    assert updated["spec"]["iterationsPerLoop"] == 12
    assert updated["history"] == []


def test_update_with_prometheus_unreachable_holds_and_says_why(host: ProviderHost, stub: ScriptedServer) -> None:
    id_, outs = host.create(inputs(stub.url))
    news = inputs("http://127.0.0.1:9")  # discard port: connection refused (Prometheus went away)
    aged = {**outs, "lastIterationAt": time.time() - 10}
    updated = host.update(id_, aged, news)
    assert {k: int(v) for k, v in updated["weights"].items()} == {"iris-v1": 100, "iris-v2": 0}
    assert int(updated["iteration"]) == 0
    assert int(updated["consecutiveErrors"]) == 1
    assert "Held weights (1/4 before rollback)" in updated["messages"][0]
    assert "cannot reach" in updated["messages"][0]


def test_secret_credentials_never_reach_the_outputs(host: ProviderHost, live_prometheus: LivePrometheus) -> None:
    news = {**inputs(live_prometheus.url), "prometheusAuth": {"token": "tok-123", "username": "", "password": ""}}
    id_, outs = host.create(news)
    aged = {**outs, "startedAt": time.time() - 30, "lastIterationAt": time.time() - 10}
    updated = host.update(id_, aged, news)
    assert int(updated["iteration"]) == 1
    assert "tok-123" not in repr(outs) + repr(updated)


def test_a_provider_bug_is_reported_as_an_error_not_a_hang(host: ProviderHost) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        host.update("quickstart-exp", {"stage": "Running"}, {"prometheus": {}})  # no experiment: check never let it by
    assert "Traceback (most recent call last)" in str(caught.value.details())  # a bug keeps its traceback


# Preflight: create asks Prometheus once before anything starts.

def preflight_failure(host: ProviderHost, news: dict[str, Any]) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        host.create(news)
    details = caught.value.details()
    assert isinstance(details, str)
    return details


def test_create_fails_naming_prometheus_url_and_the_cause(host: ProviderHost, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    with ScriptedServer(Reply(401, "no"), Reply(403, "no")) as refusing, ScriptedServer(tls=(cert, key)) as tls:
        causes = {
            "unreachable": preflight_failure(host, inputs("http://127.0.0.1:9")),
            "401": preflight_failure(host, {**inputs(refusing.url), "prometheusAuth": {"token": "tok-123"}}),
            "403": preflight_failure(host, inputs(refusing.url)),
            "tls": preflight_failure(host, inputs(tls.url)),
            "ca": preflight_failure(host, inputs(tls.url, ca_bundle=str(tmp_path / "absent.pem"))),
        }
    # The user's mistake is reported by its message alone, one line, with no traceback to dig through.
    assert all(len(v.strip().splitlines()) == 1 and "Traceback" not in v for v in causes.values()), causes
    last_lines = {k: v.strip() for k, v in causes.items()}
    assert all(line.startswith("prometheusUrl ") for line in last_lines.values())
    assert all(line.endswith("the experiment was not started and no traffic was shifted")
               for line in last_lines.values())
    assert "http://127.0.0.1:9: cannot reach" in last_lines["unreachable"]
    assert "HTTP 401 Unauthorized: Prometheus refused the credentials" in last_lines["401"]
    assert "HTTP 403 Forbidden" in last_lines["403"]
    assert "TLS failure" in last_lines["tls"] and "certificate verify failed" in last_lines["tls"]
    assert "prometheusCaBundle" in last_lines["ca"]
    assert "tok-123" not in "".join(causes.values())


def test_an_unreadable_ca_bundle_holds_the_iteration_and_names_the_key(host: ProviderHost, stub: ScriptedServer,
                                                                       tmp_path: Path) -> None:
    id_, outs = host.create(inputs(stub.url))
    news = inputs("https://127.0.0.1:9", ca_bundle=str(tmp_path / "gone.pem"))  # the bundle was removed
    aged = {**outs, "lastIterationAt": time.time() - 10}
    updated = host.update(id_, aged, news)
    assert (int(updated["iteration"]), int(updated["consecutiveErrors"])) == (0, 1)
    assert {k: int(v) for k, v in updated["weights"].items()} == {"iris-v1": 100, "iris-v2": 0}
    assert "Held weights (1/4 before rollback)" in updated["messages"][0]
    assert "prometheusCaBundle" in updated["messages"][0]


def test_url_credentials_never_reach_the_outputs(host: ProviderHost, stub: ScriptedServer) -> None:
    news = inputs(stub.url.replace("http://", "http://ops:pa55-w0rd@"))
    id_, outs = host.create(news)
    updated = host.update(id_, {**outs, "lastIterationAt": time.time() - 10}, inputs("http://ops:pa55-w0rd@127.0.0.1:9"))
    assert outs["prometheusUrl"] == stub.url
    assert "pa55-w0rd" not in repr(outs) + repr(updated)
    assert "cannot reach http://127.0.0.1:9" in updated["messages"][0]
