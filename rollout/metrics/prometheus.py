"""A small Prometheus HTTP API client: one `query` method, typed failures, an injectable session.

Every failure comes out as a `BackendError` whose message is safe to show: it names the URL without
its userinfo and never quotes a requests/urllib3 exception (those carry the URL, and may carry
credentials). Idempotent GETs are retried within the per-query time budget (`retrying_session`).
"""

from __future__ import annotations

import ssl
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import requests.adapters
import urllib3.exceptions
from urllib3.response import BaseHTTPResponse
from urllib3.util import Retry, Timeout

QUERY_PATH = "/api/v1/query"
BUILD_INFO_PATH = "/api/v1/status/buildinfo"
RETRIES = 3
"""Extra attempts of a GET after a connection error, a dropped connection or a 429/502/503/504, while the
query's time budget lasts. A TLS failure or any other answer is final."""
BACKOFF_SECONDS = 0.1
"""urllib3's backoff factor: no wait before the first retry, then 0.2 s, 0.4 s."""
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MIN_ATTEMPT_SECONDS = 0.05
"""A retry starts only when at least this much of the budget is left after its backoff."""


class BackendError(RuntimeError):
    """Prometheus did not give a usable answer (HTTP error, timeout, non-JSON, `status: error`)."""

    def __init__(self, message: str, error_type: str | None = None, status: int | None = None,
                 retries: int = 0) -> None:
        super().__init__(message)
        self.error_type = error_type
        """Prometheus's `errorType` when it answered `status: error` (e.g. `bad_data`)."""
        self.status = status
        """The HTTP status, when there was an answer."""
        self.retries = retries
        """How many times the request was retried before giving up."""


def redact(url: str) -> str:
    """`url` without userinfo, query or fragment: what messages may show.

    >>> redact("https://ops:s3cret@prom.example:9090/api/v1/query?x=1")
    'https://prom.example:9090/api/v1/query'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


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
    """Per-query time budget: connect, read and every retry together."""
    verify_tls: bool = True
    """Verify the server's certificate; turning it off is explicit."""
    ca_bundle: str | None = None
    """Path of a CA bundle to verify against, instead of the system's."""

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/").removesuffix(QUERY_PATH)

    @property
    def query_url(self) -> str:
        return self.base_url + QUERY_PATH

    @property
    def shown_url(self) -> str:
        """The base URL as messages and outputs show it: no credentials."""
        return redact(self.base_url)


@dataclass(frozen=True)
class Answer:
    """A successful instant query: the decoded body, and how many retries it took."""

    body: dict[str, Any]
    retries: int = 0


@dataclass
class _Budget:
    deadline: float
    retries: int = 0


_budget: ContextVar[_Budget | None] = ContextVar("prometheus_query_budget", default=None)
"""The running query's budget. Each query runs in one thread and urllib3 retries in that thread."""


class BudgetRetry(Retry):
    """urllib3's Retry that also stops when the next attempt could not start within the query's budget,
    and counts the retries it makes."""

    def is_exhausted(self) -> bool:
        budget = _budget.get()
        out_of_time = (budget is not None and bool(self.history)
                       and time.monotonic() + self.get_backoff_time() + MIN_ATTEMPT_SECONDS > budget.deadline)
        return out_of_time or super().is_exhausted()

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        budget = _budget.get()
        if budget is not None:
            budget.retries += 1
        super().sleep(response)


class BudgetTimeout(Timeout):
    """A urllib3 timeout whose every attempt (each retry clones it) gets only what is left of the budget."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        super().__init__(total=max(MIN_ATTEMPT_SECONDS / 10, deadline - time.monotonic()))

    def clone(self) -> Timeout:
        return BudgetTimeout(self.deadline)


def retrying_session(pool_size: int = 16) -> requests.Session:
    """A session whose GETs are retried (`RETRIES`, backoff) after connection errors and 429/502/503/504."""
    # other=0: an error that is neither a connection, a read nor a status error (a TLS failure) is final.
    retry = BudgetRetry(total=RETRIES, other=0, backoff_factor=BACKOFF_SECONDS, status_forcelist=RETRY_STATUSES,
                        allowed_methods=frozenset({"GET"}), raise_on_status=False,
                        respect_retry_after_header=False)
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def ca_bundle_problem(path: str | None) -> str | None:
    """Why the CA bundle at `path` cannot be used (None when it can be read, or none is set)."""
    if not path:
        return None
    try:
        with open(path, "rb") as bundle:
            bundle.read(1)
    except OSError as err:
        return f"CA bundle {path!r} (prometheusCaBundle) cannot be read: {err.strerror or type(err).__name__}"
    return None


def _chain(err: BaseException) -> list[BaseException]:
    """`err` and what it wraps (causes, contexts, urllib3's `reason`, exception args), outermost first."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [err]
    while todo and len(seen) < 20:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        inner = [getattr(current, "reason", None), current.__cause__, current.__context__, *current.args]
        todo.extend(e for e in inner if isinstance(e, BaseException))
    return seen


def _tls_reason(chain: list[BaseException]) -> str:
    for err in chain:
        if isinstance(err, ssl.SSLCertVerificationError):
            return f"certificate verify failed ({err.verify_message})"
        if isinstance(err, ssl.SSLError):
            return err.reason or type(err).__name__
    return "TLS handshake failed"


def transport_error(err: BaseException, settings: PrometheusSettings, retries: int) -> BackendError:
    """A failed request as a BackendError that names the cause, never quoting the exception (it holds the URL)."""
    chain = _chain(err)
    refused = next((e for e in chain if isinstance(e, ConnectionRefusedError)), None)
    if refused is not None or any(isinstance(e, urllib3.exceptions.NewConnectionError) for e in chain):
        # (urllib3's NewConnectionError is a subclass of its ConnectTimeoutError: test it first.)
        cause = refused.strerror if refused is not None and refused.strerror else "no connection"
        return BackendError(f"cannot reach {settings.shown_url}: {cause}", retries=retries)
    if any(isinstance(e, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)) for e in chain):
        return BackendError(f"timed out after {settings.timeout_seconds:g}s", retries=retries)
    if any(isinstance(e, (requests.exceptions.SSLError, ssl.SSLError)) for e in chain):
        return BackendError(f"TLS failure talking to {settings.shown_url}: {_tls_reason(chain)}", retries=retries)
    if isinstance(err, requests.RequestException):
        return BackendError(f"cannot reach {settings.shown_url}: {type(err).__name__}", retries=retries)
    return BackendError(f"cannot reach {settings.shown_url}: {type(err).__name__} "
                        f"({getattr(err, 'strerror', None) or 'no detail'})", retries=retries)


class PrometheusClient:
    """Instant queries against one Prometheus."""

    def __init__(self, settings: PrometheusSettings, credentials: Credentials | None = None,
                 session: requests.Session | None = None, pool_size: int = 16) -> None:
        self.settings = settings
        self._owns_session = session is None
        self.session = session if session is not None else retrying_session(pool_size)
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

    def _get(self, url: str, params: dict[str, str]) -> tuple[requests.Response, int]:
        """One GET (with its retries) within the time budget; the response and the retries it took."""
        problem = ca_bundle_problem(self.settings.ca_bundle)
        if problem:
            raise BackendError(problem)
        verify: bool | str = self.settings.ca_bundle or self.settings.verify_tls
        budget = _Budget(deadline=time.monotonic() + self.settings.timeout_seconds)
        token = _budget.set(budget)
        try:
            # requests hands a urllib3 Timeout through to urllib3 unchanged (HTTPAdapter.send).
            response = self.session.get(url, params=params, verify=verify,
                                        timeout=BudgetTimeout(budget.deadline))  # type: ignore[arg-type]
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError) as err:
            raise transport_error(err, self.settings, budget.retries) from None
        finally:
            _budget.reset(token)
        return response, budget.retries

    def query(self, promql: str, at: float) -> Answer:
        """The decoded JSON body of a successful instant query evaluated at unix time `at`."""
        response, retries = self._get(self.settings.query_url, {"query": promql, "time": f"{at:.3f}"})
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            raise BackendError(f"HTTP {status}, body is not JSON", status=status, retries=retries) from None
        if not isinstance(body, dict):
            raise BackendError(f"HTTP {status}, body is not a JSON object", status=status, retries=retries)
        if body.get("status") != "success":
            detail = body.get("error") or body.get("errorType") or "no detail"
            raise BackendError(f"HTTP {status}, status {body.get('status')!r}: {detail}",
                               error_type=str(body.get("errorType") or "") or None, status=status, retries=retries)
        if status != 200:
            raise BackendError(f"HTTP {status}", status=status, retries=retries)
        return Answer(body, retries)

    def api(self, path: str, params: dict[str, str]) -> Any:
        """The `data` of a successful GET of another endpoint of the HTTP API (`/api/v1/targets`); BackendError
        otherwise, with the HTTP status (a backend without that endpoint answers 404)."""
        response, retries = self._get(self.settings.base_url + path, params)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict) or body.get("status") != "success":
            raise BackendError(f"HTTP {response.status_code} from {self.settings.shown_url}{path}",
                               status=response.status_code, retries=retries)
        return body.get("data")

    def preflight(self) -> str:
        """Ask for the build info once: a wrong URL, a TLS or auth problem shows before anything starts.

        Returns Prometheus's version ("unknown" when the server answers but has no build info, as some
        Prometheus-compatible backends do). Raises BackendError naming the cause.
        """
        response, retries = self._get(self.settings.base_url + BUILD_INFO_PATH, {})
        status = response.status_code
        if status in (401, 403):
            raise BackendError(f"HTTP {status} {response.reason}: Prometheus refused the credentials "
                               "(prometheusToken, or prometheusUsername and prometheusPassword)",
                               status=status, retries=retries)
        if status == 404:
            return "unknown"
        if status != 200:
            raise BackendError(f"HTTP {status} from {self.settings.shown_url}{BUILD_INFO_PATH}",
                               status=status, retries=retries)
        try:
            body = response.json()
        except ValueError:
            raise BackendError(f"{self.settings.shown_url}{BUILD_INFO_PATH} did not answer JSON: "
                               "is prometheusUrl a Prometheus?", status=status, retries=retries) from None
        data = body.get("data") if isinstance(body, dict) else None
        return str(data.get("version") or "unknown") if isinstance(data, dict) else "unknown"
