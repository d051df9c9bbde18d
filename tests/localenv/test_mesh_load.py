"""A fortio Job aimed at KServe's v1 path through the gateway (as the program's Jobs for a kserve
stack would be) is run by the real fortio and split by the HTTPRoute's weights (skipped when fortio
is not built, failed under SELDON_ROLLOUT_REQUIRE_TOOLCHAIN)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from components.load import LoadJob
from localenv.app import DataPlane
from localenv.models import Model
from testbed.fakes import job
from testbed.toolchain import require_executables
from testbed.waiting import wait_for
from tests.localenv.mesh import HOST, V1_PAYLOAD, MeshCluster


@pytest.fixture
def mesh_plane(models: dict[str, Model]) -> Iterator[tuple[MeshCluster, DataPlane]]:
    require_executables(("fortio",))
    cluster = MeshCluster()
    with DataPlane(cluster, poll_seconds=0.05, models=models) as started:
        yield cluster, started


def test_a_fortio_job_to_kserve_through_the_http_route(mesh_plane: tuple[MeshCluster, DataPlane]) -> None:
    cluster, plane = mesh_plane
    cluster.set(job_list=[job(LoadJob("fortio-requests", "/v1/models/iris:predict", 40, V1_PAYLOAD, 1, HOST),
                              plane.url)])
    plane.sync.run_once()

    def done() -> dict[str, Any] | None:
        [stats] = plane.status()["loads"]
        return stats if stats["state"] == "succeeded" else None

    result = wait_for(done, 20, "the 1 s fortio run to complete")["result"]
    assert result is not None and result["codes"] == {"200": result["calls"]}
    routed = plane.gateway.routed()
    total = result["calls"] + 4  # fortio's 4 warm-up requests
    assert sum(routed.values()) == total
    # weights 9:1 by smooth weighted round-robin: the candidate gets the 6th of every 10 requests
    assert routed["iris-predictor.ns-candidate.svc.cluster.local"] == (total + 4) // 10
