"""Shared fixtures: each server a test needs is started once per session (per xdist worker) by the plugin
that owns it. Tests that need the built toolchain (the Pulumi engine, the local API server) are marked
`engine`, so that `make test-fast` can leave them out: `make test` runs everything."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["testbed.prometheus", "testbed.live", "testbed.toolchain"]

TESTS = Path(__file__).resolve().parent
ENGINE_FOLDERS = (TESTS / "e2e", TESTS / "toolchain")
ENGINE_FIXTURES = frozenset({"toolchain_bin", "local_cluster", "pulumi_cli"})


def needs_engine(item: pytest.Item) -> bool:
    path = Path(str(item.path))
    return (any(path.is_relative_to(folder) for folder in ENGINE_FOLDERS)
            or bool(ENGINE_FIXTURES & set(getattr(item, "fixturenames", ()))))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if needs_engine(item):
            item.add_marker(pytest.mark.engine)
