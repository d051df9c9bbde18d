"""The Prometheus client and snapshot collection against a stub HTTP server that misbehaves on demand.

The PromQL text picks the stub's behaviour: a query `case_<name>{...}` is answered by CASES[name].
Every failure must come back as a typed outcome (Failed: the backend let us down; NoData: it answered
but there is no usable number), never as an exception and never as a number.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from urllib3.util import Timeout

from rollout.core.outcomes import Failed, NoData, Observed, Outcome
from rollout.core.spec import ExperimentSpec, Metric, Version
from rollout.core.validation import parse_experiment
from rollout.metrics.collect import classify, collect_snapshot
from rollout.metrics.prometheus import Credentials, PrometheusClient, PrometheusSettings

NOW = 1_700_000_000.0
RELEASE_AFTER = 30.0
"""Longest a held request waits for its test to release it (only reached when a test is broken)."""


def vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {"i": str(i)}, "value": [NOW, v]} for i, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


CASES: dict[str, tuple[int, str]] = {
    "ok": (200, json.dumps(vector("42.5"))),
    "http500_text": (500, "Internal Server Error"),
    "http500_success_body": (500, json.dumps(vector("1"))),
    "garbage": (200, "<html>not json"),
    "not_object": (200, json.dumps([1, 2, 3])),
    "status_error": (400, json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error at 3"})),
    "nan": (200, json.dumps(vector("NaN"))),
    "plus_inf": (200, json.dumps(vector("+Inf"))),
    "empty": (200, json.dumps(vector())),
    "two_series": (200, json.dumps(vector("1", "2"))),
    "not_a_number": (200, json.dumps(vector("forty-two"))),
}


VALUE_BY_NAMESPACE = {"ns-baseline": "7.25", "ns-candidate": "10.5", "ns-third": "3"}
"""What `case_per_version{ns="..."}` answers for each namespace: every version its own value."""
BATCH_PART = re.compile(r'label_replace\(\((.*?)\), "rollout_version", "(\d+)", "", ""\)')


def per_version_answer(query: str) -> str:
    """Each version's series with its namespace's value, last version first (order carries nothing)."""
    parts = BATCH_PART.findall(query) or [(query, None)]
    result = []
    for part, index in reversed(parts):
        namespace = re.search(r'ns="([^"]+)"', part)
        labels = {"ns": namespace.group(1) if namespace else ""}
        if index is not None:
            labels["rollout_version"] = index
        result.append({"metric": labels, "value": [NOW, VALUE_BY_NAMESPACE[labels["ns"]]]})
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})


@dataclass
class Stub:
    """What the stub saw, and the knobs tests turn."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    flight: threading.Condition = field(default_factory=threading.Condition)
    in_flight: int = 0
    max_in_flight: int = 0
    overlap_missed: bool = False

    def seen(self, case: str) -> list[dict[str, Any]]:
        with self.flight:
            return [r for r in self.requests if r["case"] == case]


def handler_for(stub: Stub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            params = parse_qs(urlsplit(self.path).query)
            query = params.get("query", [""])[0]
            match = re.search(r"case_(\w+)", query)
            case = match.group(1) if match else "ok"
            with stub.flight:
                stub.requests.append({"case": case, "params": params, "headers": dict(self.headers)})
            if case == "slow":
                stub.release.wait(RELEASE_AFTER)
            if case == "concurrent":
                self.overlap()
            status, body = CASES.get(case, CASES["ok"])
            if case == "per_version":
                status, body = 200, per_version_answer(query)
            batched = [] if case == "per_version" else re.findall(r'"rollout_version", "(\d+)"', query)
            if batched and status == 200 and body.startswith("{"):  # one copy of the series per version
                answer = json.loads(body)
                if isinstance(answer.get("data"), dict):
                    answer["data"]["result"] = [{**r, "metric": {**r["metric"], "rollout_version": i}}
                                                for i in batched for r in answer["data"]["result"]]
                body = json.dumps(answer)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())
            except OSError:  # the client gave up (the timeout case)
                pass

        def overlap(self) -> None:
            """Hold the request until some other request has been in flight at the same time."""
            with stub.flight:
                stub.in_flight += 1
                stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                stub.flight.notify_all()
                if not stub.overlap_missed:  # after one vain wait, a serial client is proven: stop waiting
                    stub.overlap_missed = not stub.flight.wait_for(lambda: stub.max_in_flight > 1, timeout=5.0)
                stub.in_flight -= 1

    return Handler


@pytest.fixture(scope="module")
def stub() -> Iterator[Stub]:
    state = Stub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="prometheus-stub")
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def one_metric_spec(query: str, jq_expression: str = ".data.result[0].value[1] | tonumber") -> ExperimentSpec:
    return parse_experiment({
        "name": "stubbed", "testingPattern": "Conformance",
        "versions": [{"name": "baseline", "variables": {"ns": "ns-baseline"}}],
        "metrics": [{"name": "m", "query": query, "jqExpression": jq_expression}],
    })


def collect_one(url: str, session: requests.Session, query: str, timeout: float = 5.0,
                jq_expression: str = ".data.result[0].value[1] | tonumber") -> Outcome:
    client = PrometheusClient(PrometheusSettings(url=url, timeout_seconds=timeout), session=session)
    snap = collect_snapshot(one_metric_spec(query, jq_expression), client, started_at=NOW - 60, now=NOW)
    assert list(snap) == [("m", "baseline")]
    return snap[("m", "baseline")]


def test_a_good_answer_is_observed(stub: Stub, session: requests.Session) -> None:
    assert collect_one(stub.url, session, 'case_ok{ns="$ns"}') == Observed(42.5)


@pytest.mark.parametrize(("case", "kind", "reason"), [
    ("http500_text", Failed, "HTTP 500, body is not JSON"),
    ("http500_success_body", Failed, "HTTP 500"),
    ("garbage", Failed, "not JSON"),
    ("not_object", Failed, "not a JSON object"),
    ("status_error", Failed, "parse error at 3"),
    ("two_series", Failed, "2 series"),
    ("not_a_number", Failed, "jq:"),
    ("nan", NoData, "NaN"),
    ("plus_inf", NoData, "+Inf"),
    ("empty", NoData, "empty result"),
])
def test_bad_answers_are_typed_outcomes(stub: Stub, session: requests.Session, case: str,
                                        kind: type[Failed] | type[NoData], reason: str) -> None:
    outcome = collect_one(stub.url, session, f'case_{case}{{ns="$ns"}}')
    assert type(outcome) is kind, outcome
    assert reason in outcome.reason


def test_jq_giving_no_number_is_no_data(stub: Stub, session: requests.Session) -> None:
    outcome = collect_one(stub.url, session, 'case_ok{ns="$ns"}', jq_expression=".data.result[0].metric.i")
    assert isinstance(outcome, NoData), outcome


def test_timeout_is_failed(stub: Stub, session: requests.Session) -> None:
    stub.release.clear()
    try:
        outcome = collect_one(stub.url, session, 'case_slow{ns="$ns"}', timeout=0.2)
    finally:
        stub.release.set()
    assert isinstance(outcome, Failed), outcome
    assert outcome.reason == "timed out after 0.2s"
    assert len(stub.seen("slow")) == 1


def test_unreachable_server_is_failed(session: requests.Session) -> None:
    with socket.socket() as bound_not_listening:
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        outcome = collect_one(f"http://127.0.0.1:{port}", session, 'up{ns="$ns"}', timeout=2.0)
    assert isinstance(outcome, Failed), outcome
    assert outcome.reason.startswith("cannot reach")


def test_classify_checks_before_jq() -> None:
    # NaN would pass `tonumber` in jq; classify reports it as no data first.
    assert isinstance(classify(vector("NaN"), ".data.result[0].value[1] | tonumber"), NoData)
    assert isinstance(classify(vector("-Inf"), ".data.result[0].value[1] | tonumber"), NoData)
    assert isinstance(classify({"status": "success"}, ".data.result[0].value[1] | tonumber"), Failed)
    assert classify(vector("0.25"), ".data.result[0].value[1] | tonumber") == Observed(0.25)


def test_unknown_template_variable_fails_without_a_request(stub: Stub, session: requests.Session) -> None:
    # Built without validation (which refuses the unknown variable): collect must guard on its own.
    spec = ExperimentSpec.model_construct(name="raw", versions=(Version.model_construct(name="baseline", variables={"ns": "a"}),),
                                          metrics=(Metric.model_construct(name="m", query='case_ok{ns="$ns",job="$job"}'),))
    before = len(stub.seen("ok"))
    client = PrometheusClient(PrometheusSettings(url=stub.url), session=session)
    outcome = collect_snapshot(spec, client, started_at=NOW - 60, now=NOW)[("m", "baseline")]
    assert isinstance(outcome, Failed), outcome
    assert outcome.reason == "template: unknown variable $job"
    assert len(stub.seen("ok")) == before


def test_query_carries_time_and_filled_template(stub: Stub, session: requests.Session) -> None:
    collect_one(stub.url, session, 'case_ok{ns="$ns"}[${elapsedTime}s]')
    params = stub.seen("ok")[-1]["params"]
    assert params["query"] == ['case_ok{ns="ns-baseline"}[60s]']
    assert params["time"] == ["1700000000.000"]


def test_bearer_token_reaches_the_server(stub: Stub, session: requests.Session) -> None:
    client = PrometheusClient(PrometheusSettings(url=stub.url), Credentials(token="t0ken-s3cret"), session)
    client.query("case_ok", NOW)
    assert stub.seen("ok")[-1]["headers"]["Authorization"] == "Bearer t0ken-s3cret"


def test_basic_auth_reaches_the_server(stub: Stub, session: requests.Session) -> None:
    client = PrometheusClient(PrometheusSettings(url=stub.url), Credentials(username="ops", password="pa55"), session)
    client.query("case_ok", NOW)
    expected = "Basic " + base64.b64encode(b"ops:pa55").decode()
    assert stub.seen("ok")[-1]["headers"]["Authorization"] == expected


def test_credentials_repr_hides_secrets() -> None:
    for credentials in (Credentials(token="t0ken-s3cret"), Credentials(username="ops", password="pa55")):
        shown = repr(credentials) + str(credentials) + repr([credentials])
        assert "t0ken-s3cret" not in shown
        assert "pa55" not in shown


def test_failure_reasons_carry_no_secret(stub: Stub, session: requests.Session) -> None:
    client = PrometheusClient(PrometheusSettings(url=stub.url), Credentials(token="t0ken-s3cret"), session)
    outcome = collect_snapshot(one_metric_spec('case_status_error{ns="$ns"}'), client, NOW - 60, NOW)
    assert isinstance(outcome[("m", "baseline")], Failed)
    assert "t0ken-s3cret" not in repr(outcome)


class FakeResponse:
    status_code = 200

    def json(self) -> dict[str, Any]:
        return vector("1")


class FakeSession:
    """Records what the client passes to `get`."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.auth: tuple[str, str] | None = None
        self.calls: list[dict[str, Any]] = []

    def get(self, url: str, **kwargs: Any) -> FakeResponse:
        self.calls.append({"url": url, **kwargs})
        return FakeResponse()


@pytest.mark.parametrize(("verify_tls", "ca_bundle", "verify"), [
    (True, None, True),
    (False, None, False),
    (True, "ca.pem", "ca.pem"),
], ids=["default-verifies", "explicit-off", "ca-bundle"])
def test_tls_verification(tmp_path: Path, verify_tls: bool, ca_bundle: str | None, verify: bool | str) -> None:
    if ca_bundle:
        (tmp_path / ca_bundle).write_text("-----BEGIN CERTIFICATE-----\n")
        ca_bundle = verify = str(tmp_path / ca_bundle)
    settings = PrometheusSettings(url="https://prom.example:9090", verify_tls=verify_tls, ca_bundle=ca_bundle)
    fake = FakeSession()
    PrometheusClient(settings, session=fake).query("up", NOW)  # type: ignore[arg-type]
    (call,) = fake.calls
    assert call["verify"] == verify
    assert type(call["verify"]) is type(verify)
    assert call["url"] == "https://prom.example:9090/api/v1/query"
    assert call["params"] == {"query": "up", "time": "1700000000.000"}
    # The whole budget, retries included: a urllib3 Timeout that gives each attempt what is left.
    assert isinstance(call["timeout"], Timeout)
    assert isinstance(call["timeout"].total, float)
    assert 0 < call["timeout"].total <= settings.timeout_seconds


def test_one_iteration_queries_concurrently(stub: Stub, session: requests.Session) -> None:
    metrics = [{"name": f"m{i}", "query": f'case_concurrent{{ns="$ns",i="{i}"}}'} for i in range(6)]
    spec = parse_experiment({
        "name": "fanout", "testingPattern": "Canary", "metrics": metrics,
        "versions": [{"name": n, "variables": {"ns": f"ns-{n}"}} for n in ("baseline", "candidate")],
    })
    with stub.flight:
        stub.max_in_flight, stub.overlap_missed = 0, False
    before = len(stub.seen("concurrent"))
    client = PrometheusClient(PrometheusSettings(url=stub.url), session=session)
    snap = collect_snapshot(spec, client, started_at=NOW - 60, now=NOW)
    assert len(stub.seen("concurrent")) - before == 6  # one request per metric, both versions in it
    assert len(snap) == 12
    assert all(outcome == Observed(42.5) for outcome in snap.values())
    assert stub.max_in_flight > 1, f"at most {stub.max_in_flight} query in flight: the iteration ran them one by one"


def test_versions_of_one_metric_share_one_request_and_keep_their_own_values(stub: Stub, session: requests.Session) -> None:
    spec = ExperimentSpec.model_construct(name="batch", metrics=(Metric(name="m", query='case_per_version{ns="$ns"}'),),
                                          versions=tuple(Version(name=n, variables={"ns": f"ns-{n}"})
                                                         for n in ("baseline", "candidate", "third")))
    before = len(stub.seen("per_version"))
    client = PrometheusClient(PrometheusSettings(url=stub.url), session=session)
    snap = collect_snapshot(spec, client, started_at=NOW - 60, now=NOW)
    (request,) = stub.seen("per_version")[before:]
    assert request["params"]["query"] == [
        'label_replace((case_per_version{ns="ns-baseline"}), "rollout_version", "0", "", "")'
        ' or label_replace((case_per_version{ns="ns-candidate"}), "rollout_version", "1", "", "")'
        ' or label_replace((case_per_version{ns="ns-third"}), "rollout_version", "2", "", "")']
    # The stub answers the versions in reverse order, each with its own value: each lands on its version.
    assert snap == {("m", "baseline"): Observed(7.25), ("m", "candidate"): Observed(10.5),
                    ("m", "third"): Observed(3.0)}


def test_a_query_that_cannot_be_batched_is_asked_per_version(stub: Stub, session: requests.Session) -> None:
    spec = parse_experiment({
        "name": "batch", "testingPattern": "Canary", "metrics": [{"name": "m", "query": 'case_status_error{ns="$ns"}'}],
        "versions": [{"name": n, "variables": {"ns": f"ns-{n}"}} for n in ("baseline", "candidate")],
    })
    before = len(stub.seen("status_error"))
    client = PrometheusClient(PrometheusSettings(url=stub.url), session=session)
    snap = collect_snapshot(spec, client, started_at=NOW - 60, now=NOW)
    queries = [r["params"]["query"][0] for r in stub.seen("status_error")[before:]]
    assert queries[1:] == ['case_status_error{ns="ns-baseline"}', 'case_status_error{ns="ns-candidate"}']
    assert all(isinstance(o, Failed) and "parse error at 3" in o.reason for o in snap.values())
