"""The client under failure: retries within the time budget, an unreadable CA bundle, TLS, preflight,
and no credential in any message. Against a scripted server (testbed.scripted) and a real Prometheus."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout.core.outcomes import Failed, Observed, Outcome
from rollout.core.spec import ExperimentSpec, Metric, Version
from rollout.metrics.collect import collect_snapshot
from rollout.metrics.prometheus import RETRIES, BackendError, Credentials, PrometheusClient, PrometheusSettings
from testbed.prometheus import SessionPrometheus
from testbed.scripted import Reply, ScriptedServer, answer, self_signed_certificate

NOW = 1_700_000_000.0
SECRET = "s3cret-pa55"
SPEC = ExperimentSpec.model_construct(name="one", versions=(Version(name="baseline", variables={"ns": "ns-baseline"}),),
                                      metrics=(Metric(name="m", query='up{ns="$ns"}'),))


def collect(settings: PrometheusSettings, credentials: Credentials | None = None) -> Outcome:
    """One metric for one version, through the client's own (retrying) session."""
    with PrometheusClient(settings, credentials) as client:
        return collect_snapshot(SPEC, client, started_at=NOW - 60, now=NOW)[("m", "baseline")]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as bound_not_listening:
        bound_not_listening.bind(("127.0.0.1", 0))
        yield bound_not_listening.getsockname()[1]


# Retries

@pytest.mark.parametrize("failure", [Reply(503, "unavailable"), Reply(502, "bad gateway"), Reply(drop=True)],
                         ids=["503", "502", "dropped"])
def test_transient_failures_are_retried_and_counted(failure: Reply) -> None:
    with ScriptedServer(failure, failure, answer("7.5")) as server:
        outcome = collect(PrometheusSettings(server.url, timeout_seconds=5))
    assert outcome == Observed(7.5)
    assert outcome.retries == 2
    assert outcome.query == 'up{ns="ns-baseline"}'
    assert len(server.requests) == 3


def test_retries_stop_at_the_limit_and_the_last_answer_is_the_reason() -> None:
    with ScriptedServer(default=Reply(503, "unavailable")) as server:
        outcome = collect(PrometheusSettings(server.url, timeout_seconds=5))
    assert isinstance(outcome, Failed), outcome
    assert outcome.reason == "HTTP 503, body is not JSON"
    assert outcome.retries == RETRIES
    assert len(server.requests) == RETRIES + 1


def test_answers_that_retrying_cannot_mend_are_not_retried() -> None:
    bad = Reply(400, {"status": "error", "errorType": "bad_data", "error": "parse error"})
    with ScriptedServer(bad, default=answer()) as server:
        outcome = collect(PrometheusSettings(server.url, timeout_seconds=5))
    assert isinstance(outcome, Failed) and "parse error" in outcome.reason
    assert (outcome.retries, len(server.requests)) == (0, 1)


def test_retries_never_run_past_the_query_budget() -> None:
    # Each failure takes 0.3 s: within a 1 s budget there is room for at most 3 attempts, not RETRIES + 1.
    slow_failure = Reply(503, "unavailable", delay=0.3)
    with ScriptedServer(default=slow_failure) as server:
        started = time.monotonic()
        outcome = collect(PrometheusSettings(server.url, timeout_seconds=1.0))
        elapsed = time.monotonic() - started
    assert isinstance(outcome, Failed), outcome
    assert elapsed < 1.0 + 0.25, f"the query took {elapsed:.2f}s with a 1 s budget"
    assert 2 <= len(server.requests) <= 3
    assert outcome.retries == len(server.requests) - 1


def test_a_retry_gets_only_what_is_left_of_the_budget() -> None:
    # The first attempt fails fast, the retry hangs: it must time out at the budget, not a budget later.
    with ScriptedServer(Reply(503, "x"), Reply(200, "{}", delay=3.0)) as server:
        started = time.monotonic()
        outcome = collect(PrometheusSettings(server.url, timeout_seconds=1.0))
        elapsed = time.monotonic() - started
    assert isinstance(outcome, Failed) and outcome.reason == "timed out after 1s", outcome
    assert elapsed < 1.0 + 0.25, f"the query took {elapsed:.2f}s with a 1 s budget"


# CA bundle, TLS, credentials

@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_an_unreadable_ca_bundle_is_a_failed_outcome_naming_the_key(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "absent.pem" if kind == "missing" else tmp_path
    outcome = collect(PrometheusSettings("https://127.0.0.1:9", ca_bundle=str(path)))
    assert isinstance(outcome, Failed), outcome
    assert "prometheusCaBundle" in outcome.reason and str(path) in outcome.reason


def test_a_certificate_nobody_trusts_is_a_tls_failure_and_is_not_retried(certificate: tuple[Path, Path]) -> None:
    with ScriptedServer(tls=certificate) as server:
        outcome = collect(PrometheusSettings(server.url))
    assert isinstance(outcome, Failed), outcome
    assert outcome.retries == 0
    assert outcome.reason.startswith(f"TLS failure talking to {server.url}: certificate verify failed"), outcome


def test_the_ca_bundle_makes_the_same_server_trusted(certificate: tuple[Path, Path]) -> None:
    with ScriptedServer(tls=certificate) as server:
        assert collect(PrometheusSettings(server.url, ca_bundle=str(certificate[0]))) == Observed(42.5)


def test_no_message_carries_the_urls_credentials(certificate: tuple[Path, Path], closed_port: int) -> None:
    reasons = [collect(PrometheusSettings(f"http://ops:{SECRET}@127.0.0.1:{closed_port}", timeout_seconds=2))]
    with ScriptedServer(tls=certificate) as tls:
        reasons.append(collect(PrometheusSettings(tls.url.replace("https://", f"https://ops:{SECRET}@"))))
    with ScriptedServer(default=Reply(200, "{}", delay=2.0)) as slow:
        reasons.append(collect(PrometheusSettings(slow.url.replace("http://", f"http://ops:{SECRET}@"),
                                                  timeout_seconds=0.3)))
    failed = [o for o in reasons if isinstance(o, Failed)]
    assert len(failed) == 3, reasons
    assert [o.reason.split(":")[0] for o in failed] == ["cannot reach http", "TLS failure talking to https",
                                                          "timed out after 0.3s"]
    assert SECRET not in repr(reasons)


# Preflight

def test_preflight_reads_the_build_info_of_a_real_prometheus(prometheus: SessionPrometheus) -> None:
    with PrometheusClient(prometheus.settings()) as client:
        version = client.preflight()
    assert version[0].isdigit() and "." in version, version


@pytest.mark.parametrize("status", [401, 403])
def test_preflight_fails_on_refused_credentials(status: int) -> None:
    with (ScriptedServer(Reply(status, "no")) as server,
          PrometheusClient(PrometheusSettings(server.url), Credentials(token=SECRET)) as client,
          pytest.raises(BackendError, match=f"HTTP {status} .*refused the credentials") as caught):
        client.preflight()
    assert server.requests[0].path == "/api/v1/status/buildinfo"
    assert SECRET not in str(caught.value)


def test_preflight_fails_when_unreachable_on_tls_and_on_an_unreadable_ca_bundle(
        certificate: tuple[Path, Path], closed_port: int, tmp_path: Path) -> None:
    causes = []
    with ScriptedServer(tls=certificate) as server:
        for settings in (PrometheusSettings(f"http://127.0.0.1:{closed_port}"), PrometheusSettings(server.url),
                         PrometheusSettings(server.url, ca_bundle=str(tmp_path / "absent.pem"))):
            with PrometheusClient(settings) as client, pytest.raises(BackendError) as caught:
                client.preflight()
            causes.append(str(caught.value))
        assert server.requests == []  # no request got through the TLS failure, none was sent without a bundle
    assert causes[0].startswith("cannot reach")
    assert causes[1].startswith("TLS failure")
    assert "prometheusCaBundle" in causes[2]


def test_preflight_accepts_a_server_without_build_info_and_rejects_one_that_is_not_prometheus() -> None:
    with ScriptedServer(Reply(404, "not found"), Reply(200, "<html>hello</html>")) as server, \
            PrometheusClient(PrometheusSettings(server.url + "/api/v1/query")) as client:
        assert client.preflight() == "unknown"
        with pytest.raises(BackendError, match="is prometheusUrl a Prometheus"):
            client.preflight()
    assert [r.path for r in server.requests] == ["/api/v1/status/buildinfo"] * 2
