"""The two ClusterSources: an API server (a stub speaking list and watch) and a manifest directory.

The stub keeps a resourceVersion counter and an event log per collection, answers lists with the
current objects and watches with the events after the requested resourceVersion (410 Gone for one
older than its compaction point), checks the bearer token, and can answer 429 with Retry-After.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from localenv.app import DataPlane
from localenv.cluster import ApiServerSource, ClusterUnavailable, KubeconfigError, ManifestSource
from testbed.fakes import SKLEARN, XGBOOST, FakeCluster, routing_rule, seed_jobs, seldon_deployment
from testbed.waiting import wait_for

TOKEN = "sekret"
VS_PATH = "/apis/networking.istio.io/v1alpha3/namespaces/default/virtualservices"
SDEP_PATH = "/apis/machinelearning.seldon.io/v1/seldondeployments"
JOBS_PATH = "/apis/batch/v1/namespaces/default/jobs"
Obj = dict[str, Any]


class StubApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _StubHandler)
        self.cond = threading.Condition()
        self.rv = 0
        self.compacted = 0
        """Watches from a resourceVersion older than this get 410 Gone."""
        self.objects: dict[str, dict[str, Obj]] = {VS_PATH: {}, SDEP_PATH: {}, JOBS_PATH: {}}
        self.events: list[tuple[int, str, str, Obj]] = []
        self.requests: list[tuple[float, str, bool, int]] = []
        """(time, path, watch?, status) of every request."""
        self.throttle = 0
        self.retry_after = "0"
        self.generation = 0
        """Bumped to end every open watch (as a server does at its timeout)."""
        self.put(VS_PATH, routing_rule(60, 40))
        for deployment in (seldon_deployment("ns-baseline", SKLEARN), seldon_deployment("ns-candidate", XGBOOST)):
            self.put(SDEP_PATH, deployment)
        for job in seed_jobs("http://127.0.0.1:8080"):
            self.put(JOBS_PATH, job)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def put(self, path: str, obj: Obj, event: bool = True) -> None:
        with self.cond:
            self.rv += 1
            obj = json.loads(json.dumps(obj))
            obj["metadata"]["resourceVersion"] = str(self.rv)
            name = obj["metadata"]["name"]
            kind = "MODIFIED" if name in self.objects[path] else "ADDED"
            self.objects[path][f"{obj['metadata'].get('namespace')}/{name}"] = obj
            if event:
                self.events.append((self.rv, path, kind, obj))
            self.cond.notify_all()

    def delete(self, path: str, key: str, event: bool = True) -> None:
        with self.cond:
            self.rv += 1
            obj = self.objects[path].pop(key)
            if event:
                self.events.append((self.rv, path, "DELETED", obj))
            self.cond.notify_all()

    def end_watches(self, compact: bool = False) -> None:
        with self.cond:
            self.generation += 1
            if compact:
                self.compacted = self.rv
            self.cond.notify_all()

    def lists(self, path: str) -> int:
        return sum(1 for _, p, watching, status in self.requests if p == path and not watching and status == 200)


class _StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StubApiServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        stub = self.server
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        watching = query.get("watch") in ("true", "True", "1")
        status = 200
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            status = 401
        elif stub.throttle > 0:
            stub.throttle -= 1
            status = 429
        elif parts.path not in stub.objects:
            status = 404
        stub.requests.append((time.monotonic(), parts.path, watching, status))
        if status == 429:
            self._json(429, {"kind": "Status", "code": 429, "reason": "TooManyRequests"},
                       {"Retry-After": stub.retry_after})
        elif status != 200:
            self._json(status, {"kind": "Status", "code": status})
        elif watching:
            self._watch(parts.path, int(query.get("resourceVersion") or 0))
        else:
            selector = query.get("fieldSelector", "")
            with stub.cond:
                items = [o for o in stub.objects[parts.path].values()
                         if not selector.startswith("metadata.name=") or o["metadata"]["name"] == selector[14:]]
                self._json(200, {"kind": "List", "metadata": {"resourceVersion": str(stub.rv)}, "items": items})

    def _watch(self, path: str, since: int) -> None:
        stub = self.server
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")  # one chunk per event, as the API server sends
        self.end_headers()
        self.close_connection = True
        with stub.cond:
            if since < stub.compacted:
                gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"}
                self._chunk({"type": "ERROR", "object": gone})
            else:
                generation, sent = stub.generation, since
                while stub.generation == generation:
                    for rv, p, kind, obj in stub.events:
                        if p == path and rv > sent:
                            self._chunk({"type": kind, "object": obj})
                    sent = stub.rv
                    stub.cond.wait(0.5)
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, event: Obj) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


@pytest.fixture
def apiserver() -> Iterator[StubApiServer]:
    server = StubApiServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.end_watches()
    server.shutdown()
    server.server_close()
    thread.join()


def kubeconfig(tmp_path: Path, server: str, user: dict[str, Any]) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "here",
        "clusters": [{"name": "c", "cluster": {"server": server}}], "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u"}}]}))
    return path


@pytest.fixture
def source(apiserver: StubApiServer, tmp_path: Path) -> Iterator[ApiServerSource]:
    # A token file, read by the library (which, unlike kubectl, keeps a trailing newline: none here).
    (tmp_path / "token").write_text(TOKEN)
    started = ApiServerSource(kubeconfig(tmp_path, apiserver.url, {"tokenFile": str(tmp_path / "token")}))
    yield started
    apiserver.end_watches()
    started.close()


def weights(source: ApiServerSource) -> list[int] | None:
    vs = source.virtual_service()
    return None if vs is None else [r["weight"] for r in vs["spec"]["http"][0]["route"]]


def test_the_three_kinds_are_listed_then_followed_by_watch_without_polling(apiserver: StubApiServer,
                                                                           source: ApiServerSource) -> None:
    assert weights(source) == [60, 40]
    assert [d["metadata"]["namespace"] for d in source.seldon_deployments()] == ["ns-baseline", "ns-candidate"]
    assert sorted(j["metadata"]["name"] for j in source.jobs()) == [
        "fortio-irisv1-rewards", "fortio-irisv2-rewards", "fortio-requests"]
    assert source.gateway_addresses() == set(), "no istio-ingressgateway Service (404 is an empty kind)"

    source.changed.clear()
    apiserver.put(VS_PATH, routing_rule(10, 90))
    assert source.changed.wait(5), "a stored change wakes the data plane"
    wait_for(lambda: weights(source) == [10, 90], 5, "the new weights in the cache")
    apiserver.delete(JOBS_PATH, "default/fortio-requests")
    wait_for(lambda: len(source.jobs()) == 2, 5, "the deleted Job gone from the cache")
    apiserver.delete(VS_PATH, "default/routing-rule")
    wait_for(lambda: source.virtual_service() is None, 5, "the deleted VirtualService gone")
    assert (apiserver.lists(VS_PATH), apiserver.lists(JOBS_PATH), apiserver.lists(SDEP_PATH)) == (1, 1, 1), \
        "one list per kind, then only watch events"


def test_an_expired_watch_lists_again(apiserver: StubApiServer, source: ApiServerSource) -> None:
    assert len(source.jobs()) == 3
    # A change whose event is lost (compacted away), then the watch ends: resuming from the last
    # resourceVersion gets 410 Gone, and only a new list can bring the change.
    apiserver.delete(JOBS_PATH, "default/fortio-requests", event=False)
    apiserver.end_watches(compact=True)
    wait_for(lambda: len(source.jobs()) == 2, 10, "the relist after 410 Gone to bring the lost deletion")
    assert apiserver.lists(JOBS_PATH) == 2


def test_a_watch_the_server_ends_is_resumed_without_a_list(apiserver: StubApiServer, source: ApiServerSource) -> None:
    assert len(source.jobs()) == 3
    apiserver.end_watches()
    apiserver.delete(JOBS_PATH, "default/fortio-requests")
    wait_for(lambda: len(source.jobs()) == 2, 10, "the deletion through the resumed watch")
    assert apiserver.lists(JOBS_PATH) == 1


def test_429_waits_for_retry_after_then_lists(apiserver: StubApiServer, tmp_path: Path) -> None:
    apiserver.throttle, apiserver.retry_after = 3, "1"
    (tmp_path / "token").write_text(TOKEN)
    source = ApiServerSource(kubeconfig(tmp_path, apiserver.url, {"tokenFile": str(tmp_path / "token")}),
                             first_list_seconds=15)
    try:
        assert weights(source) == [60, 40]
        assert len(source.jobs()) == 3
        throttled = [t for t, _, _, status in apiserver.requests if status == 429]
        assert len(throttled) == 3
        later = [t for t, _, _, status in apiserver.requests if status == 200]
        assert max(later) - min(throttled) >= 0.9, "the next request came after Retry-After: 1"
    finally:
        apiserver.end_watches()
        source.close()


def test_without_the_token_the_source_is_unavailable(apiserver: StubApiServer, tmp_path: Path) -> None:
    source = ApiServerSource(kubeconfig(tmp_path, apiserver.url, {}), first_list_seconds=0.5)
    try:
        with pytest.raises(ClusterUnavailable, match=r"not listed yet.*401"):
            source.jobs()
    finally:
        source.close()


def test_connection_refused_is_unavailable(tmp_path: Path) -> None:
    source = ApiServerSource(kubeconfig(tmp_path, "http://127.0.0.1:9", {"token": TOKEN}), first_list_seconds=0.5)
    try:
        with pytest.raises(ClusterUnavailable, match="not listed yet"):
            source.virtual_service()
    finally:
        source.close()


def test_a_bad_kubeconfig_is_a_kubeconfig_error(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="cannot read kubeconfig"):
        ApiServerSource(tmp_path / "missing")
    with pytest.raises(KubeconfigError, match="cannot read kubeconfig"):
        ApiServerSource(kubeconfig(tmp_path, "https://h:1", {}), context="elsewhere")


def test_manifest_source_reads_a_directory_of_yaml(tmp_path: Path) -> None:
    (tmp_path / "1-manifest").mkdir()
    (tmp_path / "1-manifest" / "routing.yaml").write_text(yaml.safe_dump(routing_rule(30, 70)))
    (tmp_path / "models.yaml").write_text(yaml.safe_dump_all(
        [seldon_deployment("ns-baseline", SKLEARN), seldon_deployment("ns-candidate", XGBOOST),
         {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns-baseline"}},
         {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "istio-ingressgateway",
                                                              "namespace": "istio-system"},
          "spec": {"clusterIP": "10.96.0.7"}}]))
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump_all(seed_jobs("http://127.0.0.1:8080")))
    (tmp_path / "notes.txt").write_text("not a manifest")
    source = ManifestSource(tmp_path)
    vs = source.virtual_service()
    assert vs is not None
    assert [r["weight"] for r in vs["spec"]["http"][0]["route"]] == [30, 70]
    assert len(source.seldon_deployments()) == 2
    assert source.gateway_addresses() == {"10.96.0.7"}
    assert sorted(j["metadata"]["name"] for j in source.jobs()) == [
        "fortio-irisv1-rewards", "fortio-irisv2-rewards", "fortio-requests"]
    (tmp_path / "broken.yaml").write_text("a: [")
    with pytest.raises(ClusterUnavailable, match=r"broken\.yaml"):
        source.jobs()
    with pytest.raises(ClusterUnavailable, match="not a directory"):
        ManifestSource(tmp_path / "missing").jobs()


def test_a_watched_source_wakes_the_sync_at_once_not_on_an_interval(models: dict[str, Any]) -> None:
    class Watched(FakeCluster):
        changed = threading.Event()

    cluster = Watched(baseline=100, candidate=0)
    with DataPlane(cluster, poll_seconds=3600, models=models) as plane:  # the interval would never come
        passes = plane.sync.passes
        cluster.set(vs=routing_rule(0, 100))
        cluster.changed.set()
        wait_for(lambda: plane.sync.passes > passes, 2, "a sync pass woken by the change")
        wait_for(lambda: [d.weight for d in plane.gateway.table().destinations] == [0, 100], 2,  # type: ignore[union-attr]
                 "the new weights")
        started = time.monotonic()
    assert time.monotonic() - started < 3, "stop wakes the sync too"
