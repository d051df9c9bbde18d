"""Shared fixtures: each server a test needs is started once per session (per xdist worker) by the plugin
that owns it. Tests that need the built toolchain (the Pulumi engine, the local API server) are marked
`engine`, so that `make test-fast` can leave them out: `make test` runs everything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

pytest_plugins = ["testbed.prometheus", "testbed.live", "testbed.toolchain"]

# The property tests draw the same examples at every run (a test's seed comes from its name), so that
# `make test` is a verdict on the code, not a draw: CI passes or fails the same commit the same way. New
# examples are `make fuzz`'s job (SELDON_ROLLOUT_FUZZ=1: fresh random draws; a failure is kept in
# .hypothesis/ and replayed first until it is fixed).
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("fuzz", print_blob=True)
settings.load_profile("fuzz" if os.environ.get("SELDON_ROLLOUT_FUZZ") == "1" else "repeatable")

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
