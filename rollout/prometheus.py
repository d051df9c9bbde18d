"""A small Prometheus HTTP API client: one `query` method, typed failures, an injectable session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
import requests.adapters

QUERY_PATH = "/api/v1/query"


class BackendError(RuntimeError):
    """Prometheus did not give a usable answer (HTTP error, timeout, non-JSON, `status: error`)."""

    def __init__(self, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        """Prometheus's `errorType` when it answered `status: error` (e.g. `bad_data`)."""


@dataclass(frozen=True, repr=False)
class Credentials:
    """Bearer token or basic auth. `repr` never shows the secret."""

    token: str | None = None
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:
        kind = "token" if self.token else "basic" if self.username else "none"
        return f"Credentials({kind}, ****)"

    def apply(self, session: requests.Session) -> None:
        if self.token:
            session.headers["Authorization"] = f"Bearer {self.token}"
        elif self.username is not None:
            session.auth = (self.username, self.password or "")


@dataclass(frozen=True)
class PrometheusSettings:
    """Where and how to reach Prometheus."""

    url: str
    """Base URL (`http://host:9090`); a URL ending in /api/v1/query is accepted too."""
    timeout_seconds: float = 5.0
    """Per-query timeout (connect and read)."""
    verify_tls: bool = True
    """Verify the server's certificate; turning it off is explicit."""
    ca_bundle: str | None = None
    """Path of a CA bundle to verify against, instead of the system's."""

    @property
    def query_url(self) -> str:
        base = self.url.rstrip("/")
        return base if base.endswith(QUERY_PATH) else base + QUERY_PATH


class PrometheusClient:
    """Instant queries against one Prometheus."""

    def __init__(self, settings: PrometheusSettings, credentials: Credentials | None = None,
                 session: requests.Session | None = None, pool_size: int = 16) -> None:
        self.settings = settings
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self.session = session
        if credentials:
            credentials.apply(self.session)

    def close(self) -> None:
        """Close the session this client opened (a session passed in belongs to the caller)."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def query(self, promql: str, at: float) -> dict[str, Any]:
        """The decoded JSON body of a successful instant query evaluated at unix time `at`."""
        verify: bool | str = self.settings.ca_bundle or self.settings.verify_tls
        try:
            response = self.session.get(
                self.settings.query_url,
                params={"query": promql, "time": f"{at:.3f}"},
                timeout=self.settings.timeout_seconds,
                verify=verify,
            )
        except requests.Timeout:
            raise BackendError(f"timed out after {self.settings.timeout_seconds:g}s") from None
        except requests.RequestException as err:
            raise BackendError(f"cannot reach {self.settings.query_url}: {type(err).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            raise BackendError(f"HTTP {response.status_code}, body is not JSON") from None
        if not isinstance(body, dict):
            raise BackendError(f"HTTP {response.status_code}, body is not a JSON object")
        if body.get("status") != "success":
            detail = body.get("error") or body.get("errorType") or "no detail"
            raise BackendError(f"HTTP {response.status_code}, status {body.get('status')!r}: {detail}",
                               error_type=str(body.get("errorType") or "") or None)
        if response.status_code != 200:
            raise BackendError(f"HTTP {response.status_code}")
        return body
