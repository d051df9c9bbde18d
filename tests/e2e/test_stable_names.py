"""Resource names follow the version's name: a stack named by position keeps its resources, and adding a
candidate only adds. The real engine previews the program; manifests are rendered, so no cluster is needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testbed.live import LivePrometheus
from testbed.project import copy_project, write_stack_config
from testbed.toolchain import PulumiCli

STACK = "names"
VERSION_TYPES = ("seldon-rollout:models:ModelDeployment", "kubernetes:core/v1:Namespace",
                 "kubernetes:machinelearning.seldon.io/v1:SeldonDeployment")
IRIS_V3 = {"name": "iris-v3", "namespace": "ns-candidate-2",
           "model": {"implementation": "XGBOOST_SERVER", "modelUri": "gs://seldon-models/xgboost/iris"}}
IRIS_V2 = {**IRIS_V3, "name": "iris-v2", "namespace": "ns-candidate"}


def config(tmp_path: Path, prometheus: LivePrometheus, candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """Manifests rendered, no load; a live Prometheus, which the experiment asks before it starts."""
    return {"renderDirectory": str(tmp_path / "rendered"), "load": {"enabled": False}, "candidates": candidates,
            "prometheusUrl": prometheus.url}


def steps(cli: PulumiCli, project: Path) -> dict[str, list[str]]:
    """`version resource name -> ops` of a preview, for the resources of the versions."""
    preview = json.loads(cli.run("preview", "--json", cwd=project, stack=STACK).stdout)
    found: dict[str, list[str]] = {}
    for step in preview.get("steps", []):
        urn = step["urn"]
        if urn.split("::")[-2].split("$")[-1] in VERSION_TYPES:
            found.setdefault(urn.rsplit("::", 1)[1], []).append(step["op"])
    return found


def as_named_by_position(state: str) -> str:
    """The state an earlier release left: versions' resources named baseline and candidate."""
    for version, old in (("iris-v1", "baseline"), ("iris-v2", "candidate")):
        for suffix in ("", "-ns", "-sdep"):
            state = state.replace(f'::{version}{suffix}"', f'::{old}{suffix}"')
    return state


@pytest.mark.timeout(600)
def test_a_stack_named_by_position_keeps_its_resources_when_a_candidate_is_added(
        tmp_path: Path, pulumi_cli: PulumiCli, live_prometheus: LivePrometheus) -> None:
    project = copy_project(tmp_path / "project")
    write_stack_config(project, STACK, config(tmp_path, live_prometheus, [IRIS_V2]))
    pulumi_cli.run("stack", "init", STACK, cwd=project)
    pulumi_cli.run("up", "--yes", "--skip-preview", cwd=project, stack=STACK)
    exported = pulumi_cli.run("stack", "export", cwd=project, stack=STACK).stdout
    old = as_named_by_position(exported)
    assert old.count("ModelDeployment::baseline\"") and old.count("ModelDeployment::candidate\"")
    (tmp_path / "old.json").write_text(old)
    pulumi_cli.run("stack", "import", "--file", str(tmp_path / "old.json"), cwd=project, stack=STACK)

    # The same config: the aliases find every resource of both versions under its new name. (The baseline's
    # SeldonDeployment may show an update in a preview: its model waits on the experiment's `promoted`.)
    same = steps(pulumi_cli, project)
    assert set(same) <= {"iris-v1-sdep"} and set(same.get("iris-v1-sdep", ["update"])) == {"update"}, same

    # A second candidate: its resources are created, the running versions' are left where they are.
    write_stack_config(project, STACK, config(tmp_path, live_prometheus, [IRIS_V2, IRIS_V3]))
    added = steps(pulumi_cli, project)
    assert {name: ops for name, ops in added.items() if name.startswith("iris-v3")} == {
        "iris-v3": ["create"], "iris-v3-ns": ["create"], "iris-v3-sdep": ["create"]}
    assert set(added) - {"iris-v3", "iris-v3-ns", "iris-v3-sdep"} <= {"iris-v1-sdep"}, added
    assert set(added.get("iris-v1-sdep", ["update"])) == {"update"}, added

    # And `up` does as the preview said: every existing resource keeps its creation time, under its new name.
    before = created(json.loads(old))
    pulumi_cli.run("up", "--yes", "--skip-preview", cwd=project, stack=STACK)
    after = created(json.loads(pulumi_cli.run("stack", "export", cwd=project, stack=STACK).stdout))
    renamed = {name.replace("baseline", "iris-v1").replace("candidate", "iris-v2"): at for name, at in before.items()}
    assert {name: after[name] for name in renamed} == renamed
    assert {"iris-v3", "iris-v3-ns", "iris-v3-sdep"} <= set(after)


def created(state: dict[str, Any]) -> dict[str, str]:
    """`name -> creation time` of the versions' resources in an exported state."""
    return {r["urn"].rsplit("::", 1)[1]: r["created"] for r in state["deployment"]["resources"]
            if r["urn"].split("::")[-2].split("$")[-1] in VERSION_TYPES}
