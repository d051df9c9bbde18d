"""The local environment each end-to-end module runs against: the data plane on the session's local API
server and a Prometheus scraping it, started once per module (a module's tests share them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testbed.e2e import DataPlane, new_prometheus
from testbed.live import LivePrometheus
from testbed.toolchain import LocalCluster, require_executables


@pytest.fixture(scope="module")
def plane(local_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlane]:
    require_executables(("pulumi", "pulumi-resource-kubernetes"))
    dp = DataPlane(local_cluster, tmp_path_factory.mktemp("dataplane"))
    try:
        yield dp
    finally:
        dp.stop()


@pytest.fixture(scope="module")
def plane_prometheus(plane: DataPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePrometheus]:
    server = new_prometheus(tmp_path_factory.mktemp("plane-prometheus"), plane)
    try:
        server.start()
        yield server
    finally:
        server.stop()
