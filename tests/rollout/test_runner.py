"""The runner's loop with a scripted `up`: schedule, exit codes, interruption, logs."""

from __future__ import annotations

import io
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from rollout.core.record import ExperimentRecord
from rollout.ops.runner import (
    ERROR,
    FAILED,
    INTERRUPTED,
    OK,
    PAUSED,
    STILL_RUNNING,
    Interrupt,
    RunError,
    Runner,
    Schedule,
    exit_code,
)

SPEC = {"name": "run", "intervalSeconds": 10, "iterationsPerLoop": 3, "maxLoops": 1,
        "versions": [{"name": "iris-v1"}, {"name": "iris-v2"}], "rewards": [{"metric": "user-engagement"}],
        "metrics": [{"name": "user-engagement", "query": "up"}]}


def record(iteration: int, at: float, stage: str = "Running", promoted: str | None = None,
           weights: Mapping[str, int] | None = None, messages: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"spec": SPEC, "iteration": iteration, "startedAt": 900.0, "lastIterationAt": at, "stage": stage,
            "promoted": promoted,
            "weights": dict(weights or {"iris-v1": 100 - 10 * iteration, "iris-v2": 10 * iteration}),
            "messages": list(messages), "values": {}}


def typed(raw: dict[str, Any]) -> ExperimentRecord:
    return ExperimentRecord.from_outputs(raw)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedUps:
    """Each call returns the next record and advances the clock by `cost` seconds."""

    def __init__(self, clock: FakeClock, records: list[dict[str, Any] | Exception], cost: float = 2.0) -> None:
        self.clock, self.records, self.cost, self.calls = clock, records, cost, 0

    def __call__(self, line: Callable[[str], None]) -> Mapping[str, Any]:
        self.calls += 1
        line(f"up #{self.calls}")
        self.clock.now += self.cost
        item = self.records.pop(0)
        if isinstance(item, Exception):
            raise item
        return {"experiment": item}


class NoWaitInterrupt(Interrupt):
    """Records the waits the runner asks for instead of sleeping, and advances the fake clock."""

    def __init__(self, clock: FakeClock, interrupt_on_wait: int | None = None) -> None:
        super().__init__()
        self.clock, self.interrupt_on_wait = clock, interrupt_on_wait
        self.waits: list[float] = []
        self.event = self  # type: ignore[assignment]
        self._set = False

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        if self.interrupt_on_wait == len(self.waits):
            self._set = True
            return True
        self.clock.now += timeout
        return False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True


def make_runner(tmp_path: Path, records: list[dict[str, Any] | Exception], interrupt_on_wait: int | None = None,
                current: dict[str, Any] | None = None,
                exit_on_pause: bool = False) -> tuple[Runner, io.StringIO, ScriptedUps, NoWaitInterrupt]:
    clock = FakeClock()
    ups = ScriptedUps(clock, records)
    interrupt = NoWaitInterrupt(clock, interrupt_on_wait)
    out = io.StringIO()
    runner = Runner(up=ups, out=out, log_dir=tmp_path / "logs", interrupt=interrupt, clock=clock,
                    current=lambda: typed(current) if current else None, stack="dev", exit_on_pause=exit_on_pause)
    return runner, out, ups, interrupt


def test_runs_to_completion_with_one_line_per_iteration_and_exit_0(tmp_path: Path) -> None:
    records: list[dict[str, Any] | Exception] = [
        record(0, 1001.0), record(1, 1014.0), record(2, 1027.0),
        record(3, 1040.0, stage="Completed", promoted="iris-v2", weights={"iris-v1": 0, "iris-v2": 100})]
    runner, out, ups, _ = make_runner(tmp_path, records)
    assert runner.run(None, require_promotion=True) == OK
    lines = out.getvalue().splitlines()
    assert [line.split(" | ")[0] for line in lines[:4]] == [
        "[run] iteration 0/3 Running", "[run] iteration 1/3 Running", "[run] iteration 2/3 Running",
        "[run] iteration 3/3 Completed"]
    assert lines[-1] == "[run] experiment Completed; iris-v2 promoted after 4 pulumi up run(s)"
    assert ups.calls == 4
    assert (tmp_path / "logs" / "up-4.log").read_text() == "up #4\n"


def test_next_up_starts_lead_seconds_before_the_interval_ends() -> None:
    # The `up` started at 1000 and its iteration ran at 1003: the lead is 3 s.
    schedule = Schedule().after(typed(record(1, 1003.0)), started=1000.0)
    assert schedule.lead == 3.0
    # Next iteration due at 1013; start at 1013 - 3 + 1 (margin) = 1011, i.e. 6 s after 1005.
    assert schedule.wait(typed(record(1, 1003.0)), now=1005.0) == 6.0
    # An `up` that did not iterate (lastIterationAt before its start) keeps the lead measured before.
    assert schedule.after(typed(record(1, 1003.0)), started=1004.0).lead == 3.0
    assert schedule.wait(typed(record(1, 1003.0)), now=1020.0) == 0.0


def test_an_early_up_that_changed_nothing_prints_no_line(tmp_path: Path) -> None:
    same = record(1, 1001.0)
    records: list[dict[str, Any] | Exception] = [
        same, dict(same), record(2, 1014.0, stage="Failed", weights={"iris-v1": 100, "iris-v2": 0})]
    runner, out, _, _ = make_runner(tmp_path, records)
    assert runner.run(None, require_promotion=False) == FAILED
    progress = [line for line in out.getvalue().splitlines() if line.startswith("[run] iteration")]
    assert len(progress) == 2


def test_a_held_iteration_is_shown_even_though_the_count_did_not_move(tmp_path: Path) -> None:
    records: list[dict[str, Any] | Exception] = [
        record(1, 1001.0), record(1, 1014.0, messages=("held: request-count for iris-v1: no data",)),
        record(2, 1027.0, stage="Completed", promoted="iris-v1")]
    runner, out, _, _ = make_runner(tmp_path, records)
    runner.run(None, require_promotion=False)
    assert "held: request-count for iris-v1: no data" in out.getvalue()


@pytest.mark.parametrize(("final", "require", "code", "verdict"), [
    (record(3, 1.0, "Completed", "iris-v2"), True, OK, "iris-v2 promoted"),
    (record(3, 1.0, "Completed", "iris-v1"), False, OK, "iris-v1 promoted"),
    (record(3, 1.0, "Completed", "iris-v1"), True, FAILED, "promoted the baseline iris-v1"),
    (record(3, 1.0, "Completed", None), False, FAILED, "without promoting"),
    (record(3, 1.0, "Failed", "iris-v1"), False, FAILED, "Failed"),
])
def test_exit_codes(final: dict[str, Any], require: bool, code: int, verdict: str) -> None:
    got, text = exit_code(typed(final), require)
    assert got == code
    assert verdict in text


def test_max_iterations_counts_iterations_not_runs(tmp_path: Path) -> None:
    records: list[dict[str, Any] | Exception] = [
        record(4, 1001.0), record(4, 1001.0), record(5, 1014.0), record(6, 1027.0), record(7, 1040.0)]
    runner, out, ups, _ = make_runner(tmp_path, records, current=record(4, 1001.0))
    assert runner.run(2, require_promotion=False) == STILL_RUNNING
    assert ups.calls == 4  # iterations 4 (not due yet), 4 (early, no-op), 5, 6
    assert "still Running" in out.getvalue()


def test_max_iterations_counts_the_iteration_the_first_up_runs(tmp_path: Path) -> None:
    # The stack was at iteration 3 before the runner started; its first `up` runs iteration 4.
    records: list[dict[str, Any] | Exception] = [record(4, 1001.0), record(5, 1014.0), record(6, 1027.0)]
    runner, _, ups, _ = make_runner(tmp_path, records, current=record(3, 990.0))
    assert runner.run(2, require_promotion=False) == STILL_RUNNING
    assert ups.calls == 2  # iterations 4 and 5: two, not three


def test_max_iterations_on_a_new_stack_counts_from_iteration_0(tmp_path: Path) -> None:
    records: list[dict[str, Any] | Exception] = [record(0, 1001.0), record(1, 1014.0), record(2, 1027.0)]
    runner, _, ups, _ = make_runner(tmp_path, records, current=None)
    assert runner.run(1, require_promotion=False) == STILL_RUNNING
    assert ups.calls == 2


def paused(iteration: int, at: float) -> dict[str, Any]:
    return record(iteration, at, stage="Paused", messages=("paused by control: checking the p95 dashboard",))


def test_a_paused_experiment_is_polled_once_per_interval_with_a_heartbeat_a_minute(tmp_path: Path) -> None:
    # Paused for 20 polls (200 s at intervalSeconds 10), then resumed and completed.
    records: list[dict[str, Any] | Exception] = [
        record(1, 1001.0), *(paused(1, 1001.0) for _ in range(20)),
        record(2, 1300.0), record(3, 1313.0, stage="Completed", promoted="iris-v2")]
    runner, out, ups, interrupt = make_runner(tmp_path, records)
    assert runner.run(None, require_promotion=True) == OK
    assert ups.calls == 23
    waits_while_paused = interrupt.waits[1:21]
    assert waits_while_paused == [10.0] * 20  # never back to back
    lines = out.getvalue().splitlines()
    notices = [line for line in lines if line.startswith("[run] paused: ")]
    assert notices == ["[run] paused: paused by control: checking the p95 dashboard. A person decides: "
                       "`scripts/pulumi config set --path control.action <resume|abort|promote> -s dev` (promote also "
                       "takes control.version); waiting, one `pulumi up` every 10s"]
    beats = [line for line in lines if line.startswith("[run] still paused")]
    assert beats == ["[run] still paused after 1 min; waiting for a control",
                     "[run] still paused after 2 min; waiting for a control",
                     "[run] still paused after 3 min; waiting for a control"]
    assert sum(line.startswith("[run] iteration 1/3 Paused") for line in lines) == 1


def test_exit_on_pause_exits_4_after_saying_why(tmp_path: Path) -> None:
    records: list[dict[str, Any] | Exception] = [paused(2, 1001.0), record(3, 1014.0)]
    runner, out, ups, _ = make_runner(tmp_path, records, exit_on_pause=True)
    assert runner.run(None, require_promotion=False) == PAUSED
    assert ups.calls == 1
    assert "[run] paused: paused by control" in out.getvalue()
    assert "exiting on pause" in out.getvalue()


def test_interrupt_between_runs_stops_without_another_up(tmp_path: Path) -> None:
    records: list[dict[str, Any] | Exception] = [record(1, 1001.0), record(2, 1014.0)]
    runner, out, ups, _ = make_runner(tmp_path, records, interrupt_on_wait=1)
    assert runner.run(None, require_promotion=False) == INTERRUPTED
    assert ups.calls == 1
    assert "interrupted between runs" in out.getvalue()


def test_a_cancelled_up_is_an_interruption_not_an_error(tmp_path: Path) -> None:
    runner, out, _, interrupt = make_runner(tmp_path, [RunError("update canceled")])
    interrupt.set()
    assert runner.run(None, require_promotion=False) == INTERRUPTED
    assert "pulumi up #1 was cancelled" in out.getvalue()


def test_a_failed_up_names_its_log(tmp_path: Path) -> None:
    runner, _, _, _ = make_runner(tmp_path, [RunError("config error: experiment.name")])
    with pytest.raises(RunError, match=r"pulumi up #1 failed: config error: experiment.name \(log: .*up-1.log\)"):
        runner.run(None, require_promotion=False)


def test_a_stack_without_the_experiment_output_is_an_error(tmp_path: Path) -> None:
    clock = FakeClock()
    runner = Runner(up=lambda line: {"other": 1}, out=io.StringIO(), log_dir=tmp_path,
                    interrupt=NoWaitInterrupt(clock), clock=clock)
    with pytest.raises(RunError, match="no `experiment` output"):
        runner.run(None, require_promotion=False)


def test_sigterm_during_an_up_is_passed_to_the_child_once(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr("rollout.ops.runner._children", lambda pid: [4242])
    monkeypatch.setattr("rollout.ops.runner.os.kill", lambda pid, sig: sent.append((pid, sig)))
    interrupt = Interrupt()
    interrupt.handle(signal.SIGTERM, None)
    assert sent == []  # not in an up: nothing to pass on
    interrupt.in_up = True
    interrupt.handle(signal.SIGTERM, None)
    interrupt.handle(signal.SIGTERM, None)
    assert sent == [(4242, signal.SIGINT)]
    assert interrupt.event.is_set()


def test_cli_errors_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rollout.__main__ import main

    assert main(["run", "-s", "dev", "-C", str(tmp_path)]) == ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "has no Pulumi.yaml" in err and "Traceback" not in err
    assert main(["run", "-s", "dev", "--max-iterations", "0"]) == ERROR


CONFIG_ERROR = """Updating (bad):
 +  pulumi:pulumi:Stack seldon-rollout-bad creating (0s) error: invalid stack config:
Diagnostics:
  pulumi:pulumi:Stack (seldon-rollout-bad):
    warning: using pulumi-resource-kubernetes from $PATH at /somewhere/pulumi-resource-kubernetes
    error: invalid stack config:
      seldon-rollout:prometheusUrl: must not carry credentials (user:password@)
      seldon-rollout:experiment.intervalSeconds: must be a whole number, got 'fast'
    error: an unhandled error occurred: Program exited with non-zero exit code: 1

Resources:
    + 1 created
    1 errored
""".splitlines()

PREFLIGHT = """Diagnostics:
  pulumi:pulumi:Stack (seldon-rollout-dev):
    error: update failed
  pulumi-python:dynamic/rollout:Experiment (experiment):
    error: Traceback (most recent call last):
      File "/x/pulumi/dynamic/__main__.py", line 84, in wrapper
        return fn(self, request, context)
               ^^^^^^^^^^^^^^^^^^^^^^^^^^
      File "/x/rollout/provider.py", line 167, in create
        raise PreflightError(f"prometheusUrl {settings.shown_url}: {err}")
    rollout.provider.PreflightError: prometheusUrl http://127.0.0.1:9090: cannot reach it: Connection refused

Resources:
""".splitlines()


def test_a_failed_up_is_told_by_its_diagnostics_without_noise() -> None:
    from rollout.ops.runner import diagnostics

    assert diagnostics(CONFIG_ERROR) == [
        "invalid stack config:",
        "  seldon-rollout:prometheusUrl: must not carry credentials (user:password@)",
        "  seldon-rollout:experiment.intervalSeconds: must be a whole number, got 'fast'"]
    assert diagnostics(PREFLIGHT) == [
        "update failed", "prometheusUrl http://127.0.0.1:9090: cannot reach it: Connection refused"]
    assert diagnostics(["Updating (dev):", "error: something"]) == []


def test_an_unreadable_experiment_output_is_one_clear_error(tmp_path: Path) -> None:
    broken = {k: v for k, v in record(1, 1001.0).items() if k != "startedAt"}
    runner, _, _, _ = make_runner(tmp_path, [broken])
    with pytest.raises(RunError, match=r"the stack's `experiment` output cannot be read: startedAt: must be a unix"):
        runner.run(None, require_promotion=False)
