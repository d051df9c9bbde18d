"""Config as the real engine hands it to the program: every problem named, in `preview` as in `up`, with no
traceback; a credential kept in plain text refused. Manifests are rendered, so no cluster is needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testbed.project import copy_project, write_stack_config
from testbed.toolchain import PulumiCli

STACK = "config"
TOKEN = "tok-e2e-8c1f"


def project_with(tmp_path: Path, cli: PulumiCli, config: dict[str, Any]) -> Path:
    project = copy_project(tmp_path / "project")
    write_stack_config(project, STACK, {"renderDirectory": str(tmp_path / "rendered"), "load": {"enabled": False},
                                        **config})
    cli.run("stack", "init", STACK, cwd=project)
    return project


@pytest.mark.timeout(600)
def test_bad_config_names_every_key_in_preview_and_up_without_a_traceback(tmp_path: Path, pulumi_cli: PulumiCli) -> None:
    project = project_with(tmp_path, pulumi_cli, {
        "experiment": {"name": "x", "intervalSeconds": 0, "objectives": [{"metric": "mean-latency", "upperLimit": "fast"}]},
        "baseline": {"name": "iris-v1", "namespace": "ns-baseline", "model": {"implementation": "PYTORCH", "modelUri": "m"}},
        "prometheusUrl": "https://reader:pw-e2e-77@prometheus.example"})
    for command in (["preview"], ["up", "--yes", "--skip-preview"]):
        run = pulumi_cli.run(*command, cwd=project, stack=STACK, check=False)
        out = run.stdout + run.stderr
        assert run.returncode != 0
        for line in ("seldon-rollout:baseline.model.implementation: must be one of SKLEARN_SERVER",
                     "seldon-rollout:prometheusUrl: must not carry credentials",
                     "seldon-rollout:experiment.intervalSeconds: must be at least 1, got 0",
                     "seldon-rollout:experiment.objectives[0].upperLimit: must be a number, got 'fast'"):
            assert line in out, out
        assert "Traceback" not in out and "pw-e2e-77" not in out


@pytest.mark.timeout(600)
def test_a_token_in_plain_text_is_refused_and_an_encrypted_one_is_taken(tmp_path: Path, pulumi_cli: PulumiCli) -> None:
    project = project_with(tmp_path, pulumi_cli, {"experiment": {"name": "only-a-name"}})
    pulumi_cli.run("config", "set", "--plaintext", "prometheusToken", TOKEN, cwd=project, stack=STACK)
    refused = pulumi_cli.run("preview", cwd=project, stack=STACK, check=False)
    assert refused.returncode != 0
    assert "seldon-rollout:prometheusToken: stored in plaintext; set it with" in refused.stdout + refused.stderr
    assert TOKEN not in refused.stdout + refused.stderr and "Traceback" not in refused.stdout + refused.stderr
    pulumi_cli.run("config", "set", "--secret", "prometheusToken", TOKEN, cwd=project, stack=STACK)
    assert TOKEN not in (project / f"Pulumi.{STACK}.yaml").read_text()
    taken = pulumi_cli.run("preview", cwd=project, stack=STACK)  # a partial experiment is a valid one
    assert TOKEN not in taken.stdout + taken.stderr
