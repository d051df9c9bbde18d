"""Fixtures of the data plane's tests: the trained models once per session, a plane per test.

The toolchain plugin (`local_cluster`) is registered here too, for the one test against a real API
server; it skips that test when the toolchain has not been built.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from localenv.app import DataPlane
from localenv.models import Model, train_models
from testbed.fakes import FakeCluster
from tests.localenv.mesh import MeshCluster


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.import_plugin("testbed.toolchain")


@pytest.fixture(scope="session")
def models() -> dict[str, Model]:
    return train_models()


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def plane(cluster: FakeCluster, models: dict[str, Model]) -> Iterator[DataPlane]:
    with DataPlane(cluster, poll_seconds=0.05, models=models) as started:
        yield started


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def mesh() -> MeshCluster:
    """A fake cluster holding KServe, Gateway API and Seldon objects (tests/localenv/mesh.py)."""
    return MeshCluster()


@pytest.fixture
def mesh_plane(mesh: MeshCluster, models: dict[str, Model]) -> Iterator[DataPlane]:
    with DataPlane(mesh, poll_seconds=0.05, models=models) as started:
        yield started
