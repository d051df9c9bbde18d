"""The stack config is untrusted input, tried as an attacker would, end to end on the real engine.

A canary secret in every secret key (`prometheusToken`, `prometheusPassword`, both `notifications` URLs)
and in the passphrase itself; then the whole program: `preview`, `up` (create), the iteration's `up` at
`-v=9` with the engine's logs, the dry run, `describe`, a webhook that fails and one that cannot be
reached, a config error under each secret key, and hostile jq expressions (one reading `$ENV`, where the
passphrase is). Every output, log, state file and API-server object is searched for each canary, plain
and base64. docs/security.md lists what each check stands for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.authproxy import AuthProxy
from testbed.live import LivePrometheus
from testbed.project import REPO, copy_project, write_stack_config
from testbed.toolchain import BIN, LocalCluster, PulumiCli
from testbed.webhooks import WebhookReceiver
from tests.e2e.test_program_up import config
from tests.e2e.test_secrets import cluster_objects, files_under, forms

STACK = "adversary"
INTERVAL = 10
CANARIES = {
    "prometheusToken": "canary-tok-4f1c9e2b77",
    "prometheusPassword": "canary-pw-8d03a6f511",
    "notifications[0].url": "canary-hook-2b9e7c40aa",
    "notifications[1].url": "canary-hook-unreachable-91d3",
    "passphrase": "canary-passphrase-6e2f0d1c",
    "a config error": "canary-in-error-3a7b5c9d",
}


@pytest.fixture
def gated(live_prometheus: LivePrometheus) -> Iterator[AuthProxy]:
    with AuthProxy(live_prometheus.url, CANARIES["prometheusToken"]) as proxy:
        yield proxy


@pytest.fixture
def failing_hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(path=f"/services/T0/{CANARIES['notifications[0].url']}", status=503) as receiver:
        yield receiver


class Session:
    """Every command the test runs, with what it printed."""

    def __init__(self, cli: PulumiCli, project: Path) -> None:
        self.cli, self.project = cli, project
        self.printed: list[str] = []

    def pulumi(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = self.cli.run(*args, cwd=self.project, stack=STACK, check=check)
        self.printed.append(f"$ pulumi {args[0]}\n{done.stdout}\n{done.stderr}")  # not the arguments: the test's
        return done

    def tool(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.cli.env, "PATH": f"{BIN}:{os.environ['PATH']}",
               "PULUMI_SKIP_UPDATE_CHECK": "true", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true"}
        done = subprocess.run([sys.executable, "-m", "rollout", *args], cwd=REPO, env=env, input=stdin,
                              capture_output=True, text=True, timeout=300, check=False)
        self.printed.append(f"$ rollout {args[0]}\n{done.stdout}\n{done.stderr}")
        return done

    def refused(self, key: str, says: str) -> str:
        """A `preview` the program refuses, naming `key`, never a traceback."""
        done = self.pulumi("preview", check=False)
        text = done.stdout + done.stderr
        assert done.returncode != 0 and f"seldon-rollout:{key}" in text and says in text, text
        assert "Traceback" not in text
        return text


@pytest.mark.timeout(900)
def test_no_canary_secret_leaks_anywhere(tmp_path: Path, local_cluster: LocalCluster, pulumi_cli: PulumiCli,
                                         gated: AuthProxy, failing_hook: WebhookReceiver) -> None:
    pulumi_cli.passphrase = CANARIES["passphrase"]
    pulumi_cli.extra_env["SELDON_ROLLOUT_TEST_CANARY"] = CANARIES["a config error"]  # in the provider's env too
    project = copy_project(tmp_path / "project")
    settings = config(local_cluster, gated.url)
    settings["experiment"]["intervalSeconds"] = INTERVAL
    settings["prometheusUsername"] = "reader"
    write_stack_config(project, STACK, settings)
    run = Session(pulumi_cli, project)
    run.pulumi("stack", "init")
    run.pulumi("config", "set", "--secret", "prometheusToken", CANARIES["prometheusToken"])
    run.pulumi("config", "set", "--secret", "prometheusPassword", CANARIES["prometheusPassword"])
    run.pulumi("config", "set", "--secret", "--path", "notifications[0].url", failing_hook.url)
    run.pulumi("config", "set", "--secret", "--path", "notifications[1].url",
               f"http://127.0.0.1:9/{CANARIES['notifications[1].url']}")

    # preview, create, the iteration at the highest verbosity with the engine's logs
    run.pulumi("preview")
    run.pulumi("up", "--yes", "--skip-preview")
    assert gated.authorized >= 1 and gated.refused == 0  # the token reached Prometheus, and only there
    record = json.loads(run.pulumi("stack", "output", "experiment", "--json").stdout)
    deliveries = json.loads(run.pulumi("stack", "output", "notifications", "--json").stdout)
    assert [(n["hook"], n["ok"]) for n in deliveries] == [(0, False), (1, False)]
    assert failing_hook.received  # the failing webhook was called (with its secret URL)
    time.sleep(max(0.0, record["lastIterationAt"] + INTERVAL - time.time()))
    up = run.pulumi("up", "--yes", "--skip-preview", "--logtostderr", "-v=9")
    assert "Provider[" in up.stderr and ".Update(" in up.stderr  # the verbose logs were captured
    record = json.loads(run.pulumi("stack", "output", "experiment", "--json").stdout)
    assert record["iteration"] == 1, record["messages"]

    # the dry run and describe
    dry = run.tool("preview", "-s", STACK, "-C", str(project))
    assert dry.returncode == 0, dry.stdout + dry.stderr
    described = run.tool("describe", stdin=json.dumps(record))
    assert described.returncode == 0 and "Overview" in described.stdout

    # a config error under each secret key, and hostile jq: named, never echoed, nothing run
    secret_error = CANARIES["a config error"]
    run.pulumi("config", "set", "prometheusToken", secret_error)  # in plain text
    run.refused("prometheusToken", "stored in plaintext")
    run.pulumi("config", "set", "--secret", "prometheusToken", CANARIES["prometheusToken"])
    run.pulumi("config", "set", "prometheusPassword", secret_error)
    run.refused("prometheusPassword", "stored in plaintext")
    run.pulumi("config", "set", "--secret", "prometheusPassword", CANARIES["prometheusPassword"])
    stack_file = project / f"Pulumi.{STACK}.yaml"
    saved = stack_file.read_text()
    # The engine masks a secret's exact value in diagnostics ('[secret]'), not a piece of it: each value is
    # longer than the 57 characters a message used to quote, so a quote would be a piece.
    padding = "/services/T0000000/B0000000/" + "X" * 40
    for path, value, key, says in [
            ("notifications[0]", f"https://{secret_error}.example{padding}", "notifications[0]", "secret: not shown"),
            ("notifications[0].url", f"https://hooks..{secret_error}.x{padding}", "notifications[0].url",
             "it is secret"),
            ("notifications[1].format", f"{secret_error}{padding}", "notifications[1].format", "secret: not shown")]:
        run.pulumi("config", "set", "--secret", "--path", path, value)
        run.refused(key, says)
        stack_file.write_text(saved)
    run.pulumi("config", "set", "prometheusUrl", f"{gated.url}?access_token={secret_error}")
    run.refused("prometheusUrl", "must not have a query string")
    stack_file.write_text(saved)
    run.pulumi("config", "set", "--path", "extraMetrics[0].name", "hostile")
    run.pulumi("config", "set", "--path", "extraMetrics[0].query", "vector(1)")
    for expression in ("$ENV.PULUMI_CONFIG_PASSPHRASE", '"\\(env.SELDON_ROLLOUT_TEST_CANARY)"'):  # the corpus:
        run.pulumi("config", "set", "--path", "extraMetrics[0].jqExpression", expression)  # test_jq_sandbox.py
        run.refused("extraMetrics[0].jqExpression", "metric 'hostile': may read only the Prometheus response")
    stack_file.write_text(saved)
    exported = run.pulumi("stack", "export").stdout
    assert json.loads(exported)["deployment"]["resources"]  # the refused previews changed nothing

    # search everything for every canary
    places = {"commands and their output": "\n".join(run.printed), "stack export": exported,
              "API server objects": cluster_objects(local_cluster),
              "webhook payloads": json.dumps(failing_hook.received)}
    for file, content in files_under(pulumi_cli.backend_dir, pulumi_cli.home_dir, project).items():
        places[f"file {file.relative_to(tmp_path)}"] = content.decode(errors="replace")  # the stack file too
    assert any(name.endswith(f"{STACK}.json") for name in places)  # the state file was searched
    leaks = [(where, secret) for where, text in places.items() for secret, value in CANARIES.items()
             for form in forms(value) if form in text]
    assert leaks == []

    run.pulumi("destroy", "--yes", "--skip-preview")

