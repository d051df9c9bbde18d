"""Where the data plane reads the program's objects: the seam `ClusterSource` and its two sources.

`ApiServerSource` lists them from a Kubernetes API server (plain `requests`, credentials from a
kubeconfig); `ManifestSource` reads YAML manifests from a directory (e.g. the dev stack's rendered
manifests, or a benchmark's fixed objects). Tests use a fake with the same three methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import requests
import yaml

from localenv.kubeconfig import Credentials

ROUTING_NAMESPACE = "default"
ROUTING_RULE = "routing-rule"
ISTIO_GROUP = "networking.istio.io"
SELDON_GROUP = "machinelearning.seldon.io"

Obj = dict[str, Any]


class ClusterUnavailable(RuntimeError):
    """The source could not be read (connection refused, timeout, HTTP error, bad YAML)."""


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


class ApiServerSource:
    """Reads from a Kubernetes API server. One `requests.Session`; not shared across threads."""

    def __init__(self, credentials: Credentials, timeout_seconds: float = 5.0,
                 session: requests.Session | None = None) -> None:
        self._server = credentials.server
        self._timeout = timeout_seconds
        self._session = session or requests.Session()
        self._verify = credentials.verify
        if credentials.cert:
            self._session.cert = credentials.cert
        if credentials.token:
            self._session.headers["Authorization"] = f"Bearer {credentials.token}"

    def close(self) -> None:
        self._session.close()

    def _get(self, path: str) -> Obj | None:
        """The JSON body at `path`, or None on 404 (no such object, or the CRD is not installed)."""
        try:
            # verify per request: a session's verify loses to REQUESTS_CA_BUNDLE in the environment.
            response = self._session.get(self._server + path, timeout=self._timeout, verify=self._verify)
        except requests.RequestException as err:
            raise ClusterUnavailable(f"GET {path}: {err}") from err
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ClusterUnavailable(f"GET {path}: HTTP {response.status_code}: {response.text[:200]}")
        try:
            body = response.json()
        except ValueError as err:
            raise ClusterUnavailable(f"GET {path}: not JSON: {err}") from err
        if not isinstance(body, dict):
            raise ClusterUnavailable(f"GET {path}: not a JSON object")
        return body

    def _items(self, path: str) -> list[Obj]:
        body = self._get(path)
        items = body.get("items") if body else None
        return [i for i in items or [] if isinstance(i, dict)]

    def virtual_service(self) -> Obj | None:
        return self._get(f"/apis/{ISTIO_GROUP}/v1alpha3/namespaces/{ROUTING_NAMESPACE}"
                         f"/virtualservices/{ROUTING_RULE}")

    def seldon_deployments(self) -> list[Obj]:
        return self._items(f"/apis/{SELDON_GROUP}/v1/seldondeployments")

    def jobs(self) -> list[Obj]:
        return self._items(f"/apis/batch/v1/namespaces/{ROUTING_NAMESPACE}/jobs")


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
