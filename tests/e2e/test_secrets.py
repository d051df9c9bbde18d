"""A Prometheus token, end to end with the real engine: set with `--secret`, it reaches Prometheus and
nothing else. Not in `pulumi stack export`, the files of the backend, any `up` output (engine and provider
logs at the highest verbosity included) or any object in the API server. Set without `--secret` it is
refused by the program before anything is created (Pulumi.yaml cannot declare an optional key secret).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.authproxy import AuthProxy
from testbed.live import LivePrometheus
from testbed.project import copy_project, stack_outputs, write_stack_config
from testbed.toolchain import LocalCluster, PulumiCli
from tests.e2e.test_program_up import config

TOKEN = "tok-5ecret-e2e-7f3a9c"
STACK = "secrets"
INTERVAL = 10


@pytest.fixture
def gated(live_prometheus: LivePrometheus) -> Iterator[AuthProxy]:
    with AuthProxy(live_prometheus.url, TOKEN) as proxy:
        yield proxy


def forms(secret: str) -> list[str]:
    """The secret as it could appear in text: plain, and base64 (as in a Kubernetes Secret)."""
    return [secret, base64.b64encode(secret.encode()).decode()]


def cluster_objects(cluster: LocalCluster) -> str:
    """Every object of every listable kind, in every namespace, as JSON text."""
    kinds = cluster.kubectl("api-resources", "--verbs=list", "-o", "name").stdout.split()
    dumps = [cluster.kubectl("get", kind, "--all-namespaces", "-o", "json", check=False).stdout for kind in kinds]
    return "\n".join(dumps)


def files_under(*roots: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for root in roots for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


@pytest.mark.timeout(900)
def test_a_secret_token_reaches_prometheus_and_nothing_else(
        tmp_path: Path, local_cluster: LocalCluster, pulumi_cli: PulumiCli, gated: AuthProxy) -> None:
    project = copy_project(tmp_path / "project")
    settings = config(local_cluster, gated.url)
    settings["experiment"]["intervalSeconds"] = INTERVAL
    write_stack_config(project, STACK, settings)
    pulumi_cli.run("stack", "init", STACK, cwd=project)
    pulumi_cli.run("config", "set", "--secret", "prometheusToken", TOKEN, cwd=project, stack=STACK)
    assert TOKEN not in (project / f"Pulumi.{STACK}.yaml").read_text()

    ran = [pulumi_cli.run("up", "--yes", "--skip-preview", cwd=project, stack=STACK)]
    # The token did reach Prometheus: the preflight went through the gate (a missing token is a 401 there).
    assert gated.authorized >= 1 and gated.refused == 0
    record = json.loads(pulumi_cli.run("stack", "output", "experiment", "--json", cwd=project, stack=STACK).stdout)
    time.sleep(max(0.0, record["lastIterationAt"] + INTERVAL - time.time()))  # the schedule, not luck
    before = gated.authorized
    # The iteration's `up` at the highest verbosity, with the engine's logs (the provider calls) on stderr.
    ran.append(pulumi_cli.run("up", "--yes", "--skip-preview", "--logtostderr", "-v=9", cwd=project, stack=STACK))
    outputs = stack_outputs(pulumi_cli.run("stack", "output", "--json", cwd=project, stack=STACK).stdout)
    assert (outputs["iteration"], outputs["winner"]) == (1, "iris-v2"), outputs["experiment"]["messages"]
    assert gated.authorized - before >= 6 and gated.refused == 0  # the queries carried the token too
    assert "Provider[" in ran[-1].stderr and ".Update(" in ran[-1].stderr  # the verbose logs were captured

    places = {
        "stack export": pulumi_cli.run("stack", "export", cwd=project, stack=STACK).stdout,
        "stack output": json.dumps(outputs),
        "up output and logs": "\n".join(r.stdout + r.stderr for r in ran),
        "API server objects": cluster_objects(local_cluster),
    }
    for path, content in files_under(pulumi_cli.backend_dir, pulumi_cli.home_dir, project).items():
        places[f"file {path.relative_to(tmp_path)}"] = content.decode(errors="replace")
    assert any(name.endswith(f"{STACK}.json") for name in places)  # the state file was searched
    leaks = [(where, form) for where, text in places.items() for form in forms(TOKEN) if form in text]
    assert leaks == []

    pulumi_cli.run("destroy", "--yes", "--skip-preview", cwd=project, stack=STACK)


def test_a_token_set_without_secret_is_refused_before_anything_is_created(
        tmp_path: Path, local_cluster: LocalCluster, pulumi_cli: PulumiCli) -> None:
    project = copy_project(tmp_path / "project")
    write_stack_config(project, STACK, config(local_cluster, "http://127.0.0.1:9"))
    pulumi_cli.run("stack", "init", STACK, cwd=project)
    for key in ("prometheusToken", "prometheusPassword"):
        pulumi_cli.run("config", "set", key, "typed-in-plain", cwd=project, stack=STACK)
        result = pulumi_cli.run("up", "--yes", "--skip-preview", cwd=project, stack=STACK, check=False)
        assert result.returncode != 0
        text = result.stdout + result.stderr
        assert f"seldon-rollout:{key}: stored in plaintext; set it with `pulumi config set --secret {key}" in text
        assert "typed-in-plain" not in text and "Traceback" not in text
        pulumi_cli.run("config", "rm", key, cwd=project, stack=STACK)
    exported = json.loads(pulumi_cli.run("stack", "export", cwd=project, stack=STACK).stdout)
    resources = exported["deployment"].get("resources") or []
    assert [r["type"] for r in resources] == ["pulumi:pulumi:Stack"]  # nothing but the stack itself
