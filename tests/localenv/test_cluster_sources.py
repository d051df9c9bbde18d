"""The two ClusterSources: an API server (a stub speaking its list/get paths) and a manifest directory."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from localenv.cluster import ApiServerSource, ClusterUnavailable, ManifestSource
from localenv.kubeconfig import Credentials, KubeconfigError, load_credentials
from tests.localenv.fakes import SKLEARN, XGBOOST, routing_rule, seed_jobs, seldon_deployment

TOKEN = "sekret"
VS_PATH = "/apis/networking.istio.io/v1alpha3/namespaces/default/virtualservices/routing-rule"
SDEP_PATH = "/apis/machinelearning.seldon.io/v1/seldondeployments"
JOBS_PATH = "/apis/batch/v1/namespaces/default/jobs"


class StubApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _StubHandler)
        self.objects: dict[str, Any] = {
            VS_PATH: routing_rule(60, 40),
            SDEP_PATH: {"items": [seldon_deployment("ns-baseline", SKLEARN), seldon_deployment("ns-candidate", XGBOOST)]},
            JOBS_PATH: {"items": seed_jobs("http://127.0.0.1:8080")},
        }
        self.status = 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _StubHandler(BaseHTTPRequestHandler):
    server: StubApiServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            status, body = 401, {"kind": "Status", "code": 401}
        elif self.server.status != 200:
            status, body = self.server.status, {"kind": "Status", "code": self.server.status}
        elif self.path in self.server.objects:
            status, body = 200, self.server.objects[self.path]
        else:
            status, body = 404, {"kind": "Status", "code": 404}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def apiserver() -> Iterator[StubApiServer]:
    server = StubApiServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_api_server_source_reads_the_three_kinds(apiserver: StubApiServer) -> None:
    source = ApiServerSource(Credentials(apiserver.url, verify=True, token=TOKEN))
    try:
        vs = source.virtual_service()
        assert vs is not None
        assert [r["weight"] for r in vs["spec"]["http"][0]["route"]] == [60, 40]
        assert [d["metadata"]["namespace"] for d in source.seldon_deployments()] == ["ns-baseline", "ns-candidate"]
        assert len(source.jobs()) == 3
        del apiserver.objects[VS_PATH], apiserver.objects[JOBS_PATH]
        assert source.virtual_service() is None
        assert source.jobs() == []
        apiserver.status = 503
        with pytest.raises(ClusterUnavailable, match="HTTP 503"):
            source.seldon_deployments()
    finally:
        source.close()


def test_api_server_source_without_the_token_is_unavailable(apiserver: StubApiServer) -> None:
    source = ApiServerSource(Credentials(apiserver.url, verify=True))
    with pytest.raises(ClusterUnavailable, match="HTTP 401"):
        source.jobs()
    source.close()


def test_connection_refused_is_unavailable() -> None:
    source = ApiServerSource(Credentials("http://127.0.0.1:9", verify=True), timeout_seconds=2)
    with pytest.raises(ClusterUnavailable):
        source.virtual_service()
    source.close()


def _kubeconfig(tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "here",
        "clusters": [{"name": "c", "cluster": cluster}], "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u"}}]}))
    return path


def test_kubeconfig_with_embedded_ca_and_token(tmp_path: Path) -> None:
    ca = b"-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n"
    path = _kubeconfig(tmp_path, {"server": "https://127.0.0.1:6443/", "certificate-authority-data":
                                  base64.b64encode(ca).decode()}, {"token": TOKEN})
    credentials = load_credentials(path)
    assert credentials.server == "https://127.0.0.1:6443"
    assert credentials.token == TOKEN
    assert isinstance(credentials.verify, str)
    assert Path(credentials.verify).read_bytes() == ca
    assert credentials.cert is None


def test_kubeconfig_with_files_token_file_and_insecure(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    path = _kubeconfig(tmp_path, {"server": "https://h:1", "insecure-skip-tls-verify": True},
                       {"tokenFile": "token", "client-certificate": "c.crt", "client-key": "c.key"})
    credentials = load_credentials(path)
    assert credentials.verify is False
    assert credentials.token == TOKEN
    assert credentials.cert == (str(tmp_path / "c.crt"), str(tmp_path / "c.key"))


@pytest.mark.parametrize(("cluster", "user", "message"), [
    ({"server": "https://h:1"}, {"exec": {"command": "x"}}, "not supported"),
    ({}, {"token": "t"}, "no server"),
])
def test_kubeconfig_errors(tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any], message: str) -> None:
    with pytest.raises(KubeconfigError, match=message):
        load_credentials(_kubeconfig(tmp_path, cluster, user))
    with pytest.raises(KubeconfigError, match="no context"):
        load_credentials(_kubeconfig(tmp_path, {"server": "https://h:1"}, {}), context="elsewhere")
    with pytest.raises(KubeconfigError, match="cannot read"):
        load_credentials(tmp_path / "missing")


def test_manifest_source_reads_a_directory_of_yaml(tmp_path: Path) -> None:
    (tmp_path / "1-manifest").mkdir()
    (tmp_path / "1-manifest" / "routing.yaml").write_text(yaml.safe_dump(routing_rule(30, 70)))
    (tmp_path / "models.yaml").write_text(yaml.safe_dump_all(
        [seldon_deployment("ns-baseline", SKLEARN), seldon_deployment("ns-candidate", XGBOOST),
         {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns-baseline"}}]))
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump_all(seed_jobs("http://127.0.0.1:8080")))
    (tmp_path / "notes.txt").write_text("not a manifest")
    source = ManifestSource(tmp_path)
    vs = source.virtual_service()
    assert vs is not None
    assert [r["weight"] for r in vs["spec"]["http"][0]["route"]] == [30, 70]
    assert len(source.seldon_deployments()) == 2
    assert sorted(j["metadata"]["name"] for j in source.jobs()) == [
        "fortio-irisv1-rewards", "fortio-irisv2-rewards", "fortio-requests"]
    (tmp_path / "broken.yaml").write_text("a: [")
    with pytest.raises(ClusterUnavailable, match=r"broken\.yaml"):
        source.jobs()
    with pytest.raises(ClusterUnavailable, match="not a directory"):
        ManifestSource(tmp_path / "missing").jobs()


def test_the_kubeconfigs_ca_wins_over_requests_ca_bundle(apiserver: StubApiServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """requests lets REQUESTS_CA_BUNDLE override a session's `verify`; the source passes it per request."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    seen: list[object] = []

    class Recording(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> requests.Response:
            seen.append(kwargs.get("verify"))
            return super().request(*args, **kwargs)

    source = ApiServerSource(Credentials(apiserver.url, verify="/the/kubeconfig/ca.crt", token=TOKEN),
                             session=Recording())
    assert len(source.jobs()) == 3
    assert seen == ["/the/kubeconfig/ca.crt"]
    source.close()
