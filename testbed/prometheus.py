"""Pytest plugin: one real Prometheus per test session, loaded with the standard dataset.

The `prometheus` fixture yields a started `PrometheusServer` (see `testbed.promserver` for the
data and its expected values): `.url`, `.query_time`, `.query(promql, at=None)` for raw bodies, and
`.client(session)` / `.settings()` for the code under test. Query at `.query_time`: the data sits
just before it. A missing `prometheus`/`promtool` fails the tests that need it (CI installs it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from rollout.metrics.prometheus import PrometheusClient, PrometheusSettings
from testbed.promserver import PrometheusServer, PrometheusUnavailable


class SessionPrometheus(PrometheusServer):
    """The session's server, with helpers that build the rollout client against it."""

    def settings(self, timeout_seconds: float = 10.0) -> PrometheusSettings:
        return PrometheusSettings(url=self.url, timeout_seconds=timeout_seconds)

    def client(self, session: requests.Session) -> PrometheusClient:
        """A client on `session`; the caller owns the session and closes it."""
        return PrometheusClient(self.settings(), session=session)


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SessionPrometheus]:
    server = SessionPrometheus(tmp_path_factory.mktemp("prometheus"))
    try:
        try:
            server.start()
        except PrometheusUnavailable as err:
            pytest.fail(f"cannot start the test Prometheus: {err}", pytrace=False)
        yield server
    finally:
        server.stop()
