"""Where the data plane reads the program's objects: the seam `ClusterSource` and its two sources.

`ApiServerSource` keeps a cache of each kind with the official `kubernetes` client (list, then
watch from the list's resourceVersion; kubeconfig and TLS are the library's); `ManifestSource`
reads YAML manifests from a directory (e.g. a benchmark's fixed objects). Tests use a fake with the
same three methods. A source may also have `inference_services()`, `http_routes()`,
`reference_grants()` (KServe and Gateway API objects, all namespaces), `write_route_status()`
(an HTTPRoute's status through the status subresource) and `gateway_addresses()`: the sync uses
them when the source has them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from localenv.watch import WatchedKind

ROUTING_NAMESPACE = "default"
ROUTING_RULE = "routing-rule"
ISTIO_GROUP = "networking.istio.io"
SELDON_GROUP = "machinelearning.seldon.io"
GATEWAY_NAMESPACE = "istio-system"
GATEWAY_SERVICE = "istio-ingressgateway"
KSERVE_GROUP = "serving.kserve.io"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"

Obj = dict[str, Any]


class ClusterUnavailable(RuntimeError):
    """The source could not be read (connection refused, HTTP error, bad YAML, not listed yet)."""


class KubeconfigError(ValueError):
    """The kubeconfig is missing or the library cannot use it."""


class ClusterSource(Protocol):
    """The three reads the data plane makes, each a fresh snapshot."""

    def virtual_service(self) -> Obj | None:
        """The VirtualService `routing-rule` in namespace `default`, or None if there is none."""
        ...

    def seldon_deployments(self) -> list[Obj]:
        """Every SeldonDeployment, in all namespaces."""
        ...

    def jobs(self) -> list[Obj]:
        """The `batch/v1` Jobs in namespace `default`."""
        ...


def gateway_addresses(service: Obj) -> set[str]:
    """The cluster IPs of the istio-ingressgateway Service (what the seed's `URL_VALUE` holds)."""
    spec = service.get("spec") or {}
    ips = [spec.get("clusterIP"), *(spec.get("clusterIPs") or [])]
    return {str(ip) for ip in ips if ip and ip != "None"}


class ApiServerSource:
    """Reads from a Kubernetes API server through watches; starts its watch threads at once.

    Each kind is listed, then watched from the list's resourceVersion (a 410 Gone relists; a 429
    waits for its Retry-After; other failures back off and retry), so a change stored in the API
    server reaches `changed` within milliseconds, without polling. Until a kind has been listed
    once, reading it waits up to `first_list_seconds` and then raises `ClusterUnavailable`; after
    that, the cache is served, and keeps its last state while the server cannot be reached.
    """

    def __init__(self, kubeconfig: Path, context: str | None = None, first_list_seconds: float = 5.0) -> None:
        configuration = client.Configuration()
        try:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig), context=context, client_configuration=configuration,
                persist_config=False)
        except (OSError, config.ConfigException, ValueError, TypeError, yaml.YAMLError) as err:
            raise KubeconfigError(f"cannot read kubeconfig {kubeconfig}: {err}") from err
        configuration.retries = False  # the watch loops retry, with backoff; urllib3 should not
        self._api = client.ApiClient(configuration)
        custom = client.CustomObjectsApi(self._api)
        self._custom = custom
        self._first_list = first_list_seconds
        self.changed = threading.Event()
        """Set whenever any kind's cache changes (one event shared by all kinds)."""
        self._kinds = {
            "virtualservices": WatchedKind(
                "VirtualService default/routing-rule", custom.list_namespaced_custom_object,
                dict(group=ISTIO_GROUP, version="v1alpha3", namespace=ROUTING_NAMESPACE, plural="virtualservices",
                     field_selector=f"metadata.name={ROUTING_RULE}"), self.changed),
            "seldondeployments": WatchedKind(
                "SeldonDeployments", custom.list_cluster_custom_object,
                dict(group=SELDON_GROUP, version="v1", plural="seldondeployments"), self.changed),
            "jobs": WatchedKind(
                "Jobs in default", client.BatchV1Api(self._api).list_namespaced_job,
                dict(namespace=ROUTING_NAMESPACE), self.changed),
            "inferenceservices": WatchedKind(
                "InferenceServices", custom.list_cluster_custom_object,
                dict(group=KSERVE_GROUP, version="v1beta1", plural="inferenceservices"), self.changed),
            "httproutes": WatchedKind(
                "HTTPRoutes", custom.list_cluster_custom_object,
                dict(group=GATEWAY_API_GROUP, version="v1", plural="httproutes"), self.changed),
            "referencegrants": WatchedKind(
                "ReferenceGrants", custom.list_cluster_custom_object,
                dict(group=GATEWAY_API_GROUP, version="v1beta1", plural="referencegrants"), self.changed),
            "gateway": WatchedKind(
                f"Service {GATEWAY_NAMESPACE}/{GATEWAY_SERVICE}", client.CoreV1Api(self._api).list_namespaced_service,
                dict(namespace=GATEWAY_NAMESPACE, field_selector=f"metadata.name={GATEWAY_SERVICE}"), self.changed),
        }
        for kind in self._kinds.values():
            kind.start()

    def close(self) -> None:
        for kind in self._kinds.values():
            kind.stop()
        for kind in self._kinds.values():
            kind.join(10.0)
        self._api.close()  # type: ignore[no-untyped-call]

    def _items(self, kind: str) -> list[Obj]:
        watched = self._kinds[kind]
        if not watched.listed.wait(self._first_list):
            raise ClusterUnavailable(f"{watched.what}: not listed yet ({watched.last_error or 'waiting'})")
        return watched.items()

    def virtual_service(self) -> Obj | None:
        return next(iter(self._items("virtualservices")), None)

    def seldon_deployments(self) -> list[Obj]:
        return self._items("seldondeployments")

    def jobs(self) -> list[Obj]:
        return self._items("jobs")

    def inference_services(self) -> list[Obj]:
        return self._items("inferenceservices")

    def http_routes(self) -> list[Obj]:
        return self._items("httproutes")

    def reference_grants(self) -> list[Obj]:
        return self._items("referencegrants")

    def write_route_status(self, namespace: str, name: str, status: Obj) -> None:
        """Replace an HTTPRoute's `status` through the status subresource (a merge patch of `status`)."""
        try:
            self._custom.patch_namespaced_custom_object_status(
                GATEWAY_API_GROUP, "v1", namespace, "httproutes", name, {"status": status},
                _request_timeout=(5.0, 10.0))
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as err:
            raise ClusterUnavailable(f"HTTPRoute {namespace}/{name}: cannot write status: {err}") from err

    def gateway_addresses(self) -> set[str]:
        """The istio-ingressgateway Service's cluster IPs, if the Service exists; never waits."""
        return {ip for service in self._kinds["gateway"].items() for ip in gateway_addresses(service)}


class ManifestSource:
    """Reads every `*.yaml`/`*.yml`/`*.json` under a directory (recursively) on each call."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def _objects(self) -> list[Obj]:
        if not self._directory.is_dir():
            raise ClusterUnavailable(f"{self._directory} is not a directory")
        objects: list[Obj] = []
        for path in sorted(self._directory.rglob("*")):
            if path.suffix not in (".yaml", ".yml", ".json") or not path.is_file():
                continue
            try:
                docs = list(yaml.safe_load_all(path.read_text()))
            except (OSError, yaml.YAMLError) as err:
                raise ClusterUnavailable(f"cannot read {path}: {err}") from err
            objects.extend(d for d in docs if isinstance(d, dict))
        return objects

    def _of_kind(self, kind: str, group: str, namespace: str | None = None) -> list[Obj]:
        found = []
        for obj in self._objects():
            meta = obj.get("metadata") or {}
            if (obj.get("kind") == kind and str(obj.get("apiVersion", "")).startswith(group)
                    and (namespace is None or meta.get("namespace", "default") == namespace)):
                found.append(obj)
        return found

    def virtual_service(self) -> Obj | None:
        for obj in self._of_kind("VirtualService", ISTIO_GROUP + "/", ROUTING_NAMESPACE):
            if (obj.get("metadata") or {}).get("name") == ROUTING_RULE:
                return obj
        return None

    def seldon_deployments(self) -> list[Obj]:
        return self._of_kind("SeldonDeployment", SELDON_GROUP + "/")

    def jobs(self) -> list[Obj]:
        return self._of_kind("Job", "batch/", ROUTING_NAMESPACE)

    def inference_services(self) -> list[Obj]:
        return self._of_kind("InferenceService", KSERVE_GROUP + "/")

    def http_routes(self) -> list[Obj]:
        return self._of_kind("HTTPRoute", GATEWAY_API_GROUP + "/")

    def reference_grants(self) -> list[Obj]:
        return self._of_kind("ReferenceGrant", GATEWAY_API_GROUP + "/")

    def gateway_addresses(self) -> set[str]:
        return {ip for obj in self._of_kind("Service", "v1", GATEWAY_NAMESPACE)
                if (obj.get("metadata") or {}).get("name") == GATEWAY_SERVICE for ip in gateway_addresses(obj)}
