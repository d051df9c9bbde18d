"""Operators in control, with the real engine on the local environment: controls in stack config, the
runner (`python -m rollout run`) and its exit codes, Ctrl-C during an `up`, the dry run, notifications.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.e2e import DataPlane, Rollout, Traffic, seed_config
from testbed.live import LivePrometheus
from testbed.toolchain import LocalCluster, PulumiCli
from testbed.webhooks import WebhookReceiver

pytestmark = pytest.mark.timeout(900)
BASELINE, CANDIDATE = "iris-v1", "iris-v2"
INTERVAL = 5


@pytest.fixture
def rollout(request: pytest.FixtureRequest, tmp_path: Path, pulumi_cli: PulumiCli, local_cluster: LocalCluster,
            plane: DataPlane, plane_prometheus: LivePrometheus) -> Iterator[Rollout]:
    overrides = {"intervalSeconds": INTERVAL, **getattr(request, "param", {})}
    plane.clear_faults()
    r = Rollout.create(pulumi_cli, tmp_path, "operators", local_cluster,
                       seed_config(local_cluster, plane, plane_prometheus, **overrides), Traffic(plane, plane_prometheus))
    try:
        yield r
    finally:
        plane.clear_faults()
        r.destroy()


def set_config(rollout: Rollout, path: str, value: str, secret: bool = False) -> None:
    """`pulumi config set --path` (keeps the stack file's salt and the other keys, as a user would)."""
    rollout.cli.run("config", "set", "--path", *(["--secret"] if secret else []), path, value,
                    cwd=rollout.project, stack=rollout.stack)


def tool_env(rollout: Rollout) -> dict[str, str]:
    """The test's backend and passphrase, with the toolchain's `pulumi` first on PATH (as scripts/pulumi-env)."""
    return {**rollout.cli.env, "PATH": f"{rollout.cli.env['SELDON_ROLLOUT_CACHE']}/bin:{os.environ['PATH']}",
            "PULUMI_SKIP_UPDATE_CHECK": "true", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true"}


def run_runner(rollout: Rollout, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = tool_env(rollout)
    return subprocess.run([sys.executable, "-m", "rollout", "run", "-s", rollout.stack, "-C", str(rollout.project),
                           "--log-dir", str(rollout.project / "runlogs"), *args],
                          env=env, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
                          timeout=timeout)


def controls(record: dict[str, Any]) -> list[str]:
    return [h["control"]["action"] for h in record["history"] if "control" in h]


@pytest.mark.parametrize("rollout", [{"iterationsPerLoop": 3}], indirect=True)
def test_runner_runs_to_the_end_with_a_line_per_iteration_and_exits_0(rollout: Rollout) -> None:
    done = run_runner(rollout)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("[run] iteration")]
    # One line per iteration (a held one too: at 5 s intervals a fresh environment may have no data yet).
    steps = [int(line.split()[2].split("/")[0]) for line in lines]
    assert steps == sorted(steps) and steps[0] == 0 and set(steps) == {0, 1, 2, 3}, lines
    assert lines[-1].startswith("[run] iteration 3/3 Completed")
    # In three 5 s iterations the candidate may not yet be feasible: whichever version won is promoted.
    promoted = rollout.record()["promoted"]
    assert f"experiment Completed; {promoted} promoted" in done.stdout
    assert rollout.weights_in_cluster() == {promoted: 100}


def test_pause_holds_across_intervals_then_promote_promotes(rollout: Rollout) -> None:
    rollout.up()
    rollout.wait_for_next_iteration()
    rollout.up()
    before = rollout.record()
    assert before["iteration"] == 1
    set_config(rollout, "control.action", "pause")
    set_config(rollout, "control.reason", "checking the dashboards")
    rollout.up()  # inside the interval: the control still takes effect now
    paused = rollout.record()
    assert (paused["stage"], paused["iteration"], paused["weights"]) == ("Paused", 1, before["weights"])
    # The runner waits for a person: with --exit-on-pause it says why and exits 4 after one `up`...
    exited = run_runner(rollout, "--exit-on-pause")
    assert exited.returncode == 4, exited.stdout + exited.stderr
    assert "[run] paused: Paused by control" in exited.stdout and "control.action <resume|abort|promote>" in exited.stdout
    # ...and without it, it runs one `up` per interval, never back to back, until a control arrives
    # (intervals pass: nothing moves, no error is counted, the control is not applied again).
    log_dir = rollout.project / "pauselogs"
    proc = subprocess.Popen([sys.executable, "-m", "rollout", "run", "-s", rollout.stack, "-C", str(rollout.project),
                             "--log-dir", str(log_dir)], env=tool_env(rollout), cwd=Path(__file__).resolve().parents[2],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    appeared: dict[int, float] = {}
    deadline = time.monotonic() + 2 * INTERVAL + 60
    while len(appeared) < 2 and time.monotonic() < deadline and proc.poll() is None:
        for log in log_dir.glob("up-*.log"):
            appeared.setdefault(int(log.stem.split("-")[1]), time.time())
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130 and len(appeared) == 2, out
    gaps = [appeared[n + 1] - (log_dir / f"up-{n}.log").stat().st_mtime for n in (1,)]
    assert min(gaps) >= INTERVAL - 1, (gaps, out)  # the next `up` starts an interval after the last one ended
    held = rollout.record()
    assert (held["stage"], held["iteration"], held["consecutiveErrors"]) == ("Paused", 1, 0)
    assert held["weights"] == before["weights"]
    assert controls(held) == ["pause"]
    assert held["history"][-1]["control"]["reason"] == "checking the dashboards"
    assert rollout.weights_in_cluster() == {k: int(v) for k, v in before["weights"].items()}
    # Promote: set, then one `up`, and the VirtualService sends everything to iris-v2.
    rollout.cli.run("config", "rm", "control", cwd=rollout.project, stack=rollout.stack)
    set_config(rollout, "control.action", "promote")
    set_config(rollout, "control.version", CANDIDATE)
    started = time.monotonic()
    rollout.up()
    assert rollout.weights_in_cluster() == {CANDIDATE: 100}
    print(f"control set -> VirtualService reflecting it: {time.monotonic() - started:.1f}s (one up)")
    done = rollout.record()
    assert (done["stage"], done["promoted"]) == ("Completed", CANDIDATE)
    assert controls(done) == ["pause", "promote"]
    rollout.up()
    assert controls(rollout.record()) == ["pause", "promote"]  # the same control twice: applied once
    # The promote stays in the stack file (the audit trail). A renamed experiment is a new one, and the
    # leftover control never acts on it: it starts Running on the baseline, nothing promoted.
    set_config(rollout, "experiment.name", "operators-again")
    rollout.up()
    fresh = rollout.record()
    assert (fresh["spec"]["name"], fresh["stage"], fresh.get("promoted")) == ("operators-again", "Running", None)
    assert "not applied: it was set before this experiment started" in fresh["messages"][-1]
    assert rollout.weights_in_cluster() == {BASELINE: 100, CANDIDATE: 0}


def test_abort_rolls_back_and_the_runner_exits_1(rollout: Rollout) -> None:
    rollout.up()
    rollout.wait_for_next_iteration()
    rollout.up()
    assert int(rollout.record()["weights"][CANDIDATE]) > 0
    set_config(rollout, "control.action", "abort")
    done = run_runner(rollout)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "experiment Failed; no version promoted" in done.stdout
    record = rollout.record()
    assert (record["stage"], record.get("promoted")) == ("Failed", None)
    assert record["messages"][0].startswith("Aborted by control")
    assert rollout.weights_in_cluster() == {BASELINE: 100, CANDIDATE: 0}


@pytest.mark.parametrize("rollout", [{"iterationsPerLoop": 20}], indirect=True)
def test_runner_exits_1_when_the_candidate_is_rolled_back(rollout: Rollout, plane: DataPlane) -> None:
    plane.faults({"ns-candidate": {"errorRate": 0.2, "extraLatencyMs": 0}})
    done = run_runner(rollout)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "experiment Failed" in done.stdout and "Rolled back to iris-v1" in done.stdout


def test_ctrl_c_during_an_up_cancels_it_and_leaves_no_lock(rollout: Rollout) -> None:
    rollout.up()
    env = tool_env(rollout)
    log = rollout.project / "runlogs" / "up-1.log"
    proc = subprocess.Popen([sys.executable, "-m", "rollout", "run", "-s", rollout.stack, "-C", str(rollout.project),
                             "--log-dir", str(log.parent)], env=env, cwd=Path(__file__).resolve().parents[2],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (log.exists() and "Updating" in log.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None, "the runner's first up did not start"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "interrupted" in out
    locks = list((rollout.cli.backend_dir / ".pulumi" / "locks").rglob("*.json"))
    assert locks == []
    after = rollout.cli.run("stack", "export", cwd=rollout.project, stack=rollout.stack)
    assert "removed the lock" not in after.stderr
    rollout.up()  # and the stack works on


def test_dry_run_says_what_the_next_iteration_would_do_and_changes_nothing(rollout: Rollout) -> None:
    rollout.up()
    rollout.wait_for_next_iteration()
    before = rollout.cli.run("stack", "export", cwd=rollout.project, stack=rollout.stack).stdout
    env = tool_env(rollout)
    dry = subprocess.run([sys.executable, "-m", "rollout", "preview", "-s", rollout.stack, "-C", str(rollout.project)],
                         env=env, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
                         timeout=300)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "Now:        Running, iteration 0, weights iris-v1 100%, iris-v2 0%" in dry.stdout
    assert "Would be:   Running, iteration 1, weights iris-v1 95%, iris-v2 5%" in dry.stdout
    assert "iris-v2 not feasible" in dry.stdout
    after = rollout.cli.run("stack", "export", cwd=rollout.project, stack=rollout.stack).stdout
    assert after == before
    rollout.up()  # the real iteration decides what the dry run said
    assert {k: int(v) for k, v in rollout.record()["weights"].items()} == {BASELINE: 95, CANDIDATE: 5}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(path="/hook/t0ken-e2e-9d1") as server:
        yield server


def test_notifications_arrive_and_a_failing_receiver_changes_no_decision(rollout: Rollout,
                                                                         receiver: WebhookReceiver) -> None:
    set_config(rollout, "notifications[0].url", receiver.url, secret=True)
    rollout.up()
    assert [m["event"] for m in receiver.received] == ["started"]
    assert receiver.received[0]["experiment"] == "quickstart-exp"
    # Sent after the routing was given the decision: what was applied is in the message.
    assert receiver.received[0]["applied"] == {"weights": {BASELINE: 100, CANDIDATE: 0}}
    assert receiver.received[0]["key"].startswith("quickstart-exp/")
    # A control applied is told; then the receiver fails, and the decision goes on as without it.
    set_config(rollout, "control.action", "pause")
    rollout.up()
    assert [m["event"] for m in receiver.received][-1] == "control"
    rollout.cli.run("config", "rm", "control", cwd=rollout.project, stack=rollout.stack)
    set_config(rollout, "control.action", "resume")
    receiver.status = 503
    rollout.up()
    record = rollout.record()
    assert record["stage"] == "Running"
    deliveries = rollout.outputs()["notifications"]
    assert [{k: d[k] for k in ("event", "hook", "ok", "status", "error")} for d in deliveries] == [
        {"event": "control", "hook": 0, "ok": False, "status": 503, "error": "HTTP 503"}]
    rollout.wait_for_next_iteration()
    rollout.up()
    after = rollout.record()
    assert after["iteration"] == 1 and {k: int(v) for k, v in after["weights"].items()} == {BASELINE: 95, CANDIDATE: 5}
    exported = rollout.cli.run("stack", "export", cwd=rollout.project, stack=rollout.stack).stdout
    assert "t0ken-e2e-9d1" not in exported  # the webhook URL is a secret
