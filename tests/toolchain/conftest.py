"""Registers the toolchain fixtures (`testbed.toolchain`) for the tests in this folder.

`import_plugin` is a no-op when the root conftest already lists the plugin in `pytest_plugins`, so
the session's cluster is started at most once either way.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.import_plugin("testbed.toolchain")
