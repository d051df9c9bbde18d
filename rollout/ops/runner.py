"""`python -m rollout run -s STACK`: one `pulumi up` per interval until the experiment ends.

Each `pulumi up` is at most one iteration (the provider's diff decides from the record and the
clock). The runner starts the next `up` so that it lands just after `lastIterationAt +
intervalSeconds`: an `up` spends some seconds in the engine before the experiment's diff runs (the
*lead*, measured on each run that iterated), so it starts `lead` seconds early, plus a margin.

A Paused experiment (a `pause` control, or an objective with `onFailure: freeze`) waits for a person:
the runner says why and how to go on in one line, then runs one `up` per `intervalSeconds` (a
control set in the stack config meanwhile takes effect at the next one) with a heartbeat line at most
once a minute; with `--exit-on-pause` it exits 4 instead. `--max-iterations N` stops once this
invocation has run N iterations (counted from the record as it was before its first `up`).

Exit codes: 0 Completed with a promotion (a candidate's, with `--require-promotion`); 1 Failed, or
Completed without promoting a candidate when one was required; 2 an error (the `up` failed, no such
stack, no experiment output); 3 stopped by `--max-iterations` while still Running; 4 Paused, with
`--exit-on-pause`; 130 interrupted.

Every `pulumi` runs in a session of its own (rollout/ops/pulumi_own_session), so a Ctrl-C, a SIGINT
to the runner's process group or a SIGTERM reaches the runner alone, which passes exactly one SIGINT
on to the running `pulumi`: it cancels its update cleanly (no lock left), and the runner waits for it
and stops. (A second SIGINT would make `pulumi` stop at once and leave its lock: that is why `pulumi`
must not share the runner's group.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from rollout.core import state as stages
from rollout.core.record import ExperimentRecord
from rollout.core.state import StateError
from rollout.report.describe import progress_line

OK, FAILED, ERROR, STILL_RUNNING, PAUSED, INTERRUPTED = 0, 1, 2, 3, 4, 130
MARGIN_SECONDS = 1.0
"""Slack after the interval: an `up` that comes too early is a no-op and costs one more run."""
HEARTBEAT_SECONDS = 60.0
"""While Paused, at most one "still paused" line per this many seconds."""
MIN_POLL_SECONDS = 1.0
"""While Paused, never two `up`s closer than this, whatever `intervalSeconds` says."""


def pause_notice(record: ExperimentRecord, stack: str) -> str:
    """Why the experiment is Paused and what a person can do about it, in one line."""
    messages = [m for m in record.state.messages if m]
    why = messages[0] if messages else "paused"
    interval = float(record.spec.interval_seconds)
    control = f"scripts/pulumi config set --path control.action <resume|abort|promote> -s {stack}"
    return (f"paused: {why}. A person decides: `{control}` (promote also takes control.version); "
            f"waiting, one `pulumi up` every {max(interval, MIN_POLL_SECONDS):g}s")


class RunError(Exception):
    """A problem the runner reports in one line and exits 2 for."""


def read_record(value: Any) -> ExperimentRecord | None:
    """The stack's `experiment` output, typed; None when there is none; RunError when it is unreadable."""
    if not isinstance(value, Mapping):
        return None
    try:
        return ExperimentRecord.from_outputs(value)
    except StateError as err:
        raise RunError(f"the stack's `experiment` output cannot be read: {err}") from None


@dataclass(frozen=True)
class Schedule:
    """When to start the next `up`, from the record of the last one."""

    lead: float = 0.0
    """Seconds from an `up`'s start to its iteration, measured on the last `up` that iterated."""

    def after(self, record: ExperimentRecord, started: float) -> Schedule:
        last = record.state.last_iteration_at
        return Schedule(last - started) if last >= started else self

    def wait(self, record: ExperimentRecord, now: float) -> float:
        last = record.state.last_iteration_at
        return max(0.0, last + record.spec.interval_seconds - self.lead + MARGIN_SECONDS - now)


def exit_code(record: ExperimentRecord, require_promotion: bool) -> tuple[int, str]:
    """The exit code and a one-line verdict for a record whose stage is final."""
    stage, promoted = record.state.stage, record.state.promoted
    baseline = record.spec.baseline.name
    if stage == stages.FAILED:
        return FAILED, f"experiment Failed; {promoted or 'no version'} promoted"
    if not promoted:
        return FAILED, "experiment Completed without promoting a version"
    if require_promotion and promoted == baseline:
        return FAILED, f"experiment Completed but promoted the baseline {promoted} (--require-promotion)"
    return OK, f"experiment Completed; {promoted} promoted"


OWN_SESSION = Path(__file__).with_name("pulumi_own_session")


class Interrupt:
    """SIGINT/SIGTERM: ask the loop to stop, and let a running `pulumi` cancel its update."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.in_up = False
        self._forwarded = False

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        self.event.set()
        if self.in_up and not self._forwarded:
            self._forwarded = True
            for pid in _children(os.getpid()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGINT)

    @contextlib.contextmanager
    def installed(self) -> Iterator[Interrupt]:
        previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def diagnostics(lines: list[str]) -> list[str]:
    """The errors of a failed `up`, as the engine's Diagnostics section gives them, without its noise.

    Each `error:` line starts a block, and lines indented deeper continue it. Warnings, resource
    headers and the engine's "unhandled error" line go; a provider's Python traceback is cut to its
    exception's message (the first line back at the block's depth).
    """
    try:
        start = next(i for i, text in enumerate(lines) if text.strip() == "Diagnostics:")
    except StopIteration:
        return []
    found: list[str] = []
    kind, depth = "", 0  # the block being read: "error", "traceback", "skip" or "" (none)
    for text in lines[start + 1:]:
        stripped = text.strip()
        if stripped in ("Resources:", "Outputs:") or stripped.startswith("Duration:"):
            break
        if not stripped:
            continue
        at = len(text) - len(text.lstrip())
        if stripped.startswith(("error:", "warning:")):
            message = stripped.split(":", 1)[1].strip()
            kind, depth = ("skip" if stripped.startswith("warning:") or "an unhandled error occurred" in message
                           else "traceback" if message.startswith("Traceback (most recent call last)") else "error"), at
            if kind == "error":
                found.append(message)
        elif kind == "traceback" and at == depth:
            found.append(stripped.split(": ", 1)[-1])  # `module.SomeError: message` -> message
            kind = ""
        elif kind == "error" and at > depth:
            found.append("  " + stripped)
        elif at <= depth:
            kind = ""  # a resource's header ends the block
    return found


Up = Callable[[Callable[[str], None]], Mapping[str, Any]]
"""Runs one `pulumi up`, passing each output line to the callback; returns the stack's outputs."""


@dataclass
class Runner:
    up: Up
    out: TextIO
    log_dir: Path
    interrupt: Interrupt
    clock: Callable[[], float] = time.time
    current: Callable[[], ExperimentRecord | None] = lambda: None
    """The stack's record before the first `up` (None when it has none yet): where iterations count from."""
    stack: str = "STACK"
    exit_on_pause: bool = False

    def run(self, max_iterations: int | None, require_promotion: bool) -> int:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        schedule, shown, runs = Schedule(), None, 0
        before = self.current()
        started_at = before.state.started_at if before else None
        first = before.state.iteration if before else 0
        paused_since: float | None = None
        last_beat = 0.0
        while True:
            runs += 1
            started = self.clock()
            record = self._one_up(runs)
            if record is None:
                return INTERRUPTED
            schedule = schedule.after(record, started)
            state = record.state
            iteration = state.iteration
            if state.started_at != started_at:  # a new experiment (replaced): it counts from 0
                started_at, first = state.started_at, 0 if before else first
            moment = (state.last_iteration_at, state.stage)
            if moment != shown:  # an `up` that came a moment early changed nothing: no new line
                self._say(progress_line(record))
                shown = moment
            if state.stage in stages.FINAL_STAGES:
                code, verdict = exit_code(record, require_promotion)
                self._say(f"{verdict} after {runs} pulumi up run(s)")
                return code
            if max_iterations is not None and iteration - first >= max_iterations:
                self._say(f"stopped after {max_iterations} iteration(s); the experiment is still "
                          f"{state.stage}")
                return STILL_RUNNING
            now = self.clock()
            if state.stage == stages.PAUSED:
                if paused_since is None:
                    paused_since = last_beat = now
                    self._say(pause_notice(record, self.stack))
                    if self.exit_on_pause:
                        self._say("exiting on pause (--exit-on-pause); run again once a person has decided")
                        return PAUSED
                elif now - last_beat >= HEARTBEAT_SECONDS:
                    last_beat = now
                    self._say(f"still paused after {int((now - paused_since) // 60)} min; waiting for a control")
                wait = max(float(record.spec.interval_seconds), MIN_POLL_SECONDS)
            else:
                paused_since = None
                wait = schedule.wait(record, now)
            if self.interrupt.event.wait(wait):
                self._say("interrupted between runs; nothing is in progress")
                return INTERRUPTED

    def _one_up(self, n: int) -> ExperimentRecord | None:
        log_path = self.log_dir / f"up-{n}.log"
        seen: list[str] = []
        with log_path.open("w") as log:
            def line(text: str) -> None:
                seen.append(text)
                log.write(text + "\n")
                log.flush()

            self.interrupt.in_up = True
            try:
                outputs = self.up(line)
            except RunError as err:
                if self.interrupt.event.is_set():
                    self._say(f"interrupted: pulumi up #{n} was cancelled (log: {log_path})")
                    return None
                why = diagnostics(seen)
                if why:
                    raise RunError(f"pulumi up #{n} failed (log: {log_path}):\n  " + "\n  ".join(why)) from None
                raise RunError(f"pulumi up #{n} failed: {err} (log: {log_path})") from None
            finally:
                self.interrupt.in_up = False
        record = read_record(outputs.get("experiment"))
        if record is None:
            raise RunError("the stack has no `experiment` output: is this the seldon-rollout project?")
        if self.interrupt.event.is_set() and record.state.stage not in stages.FINAL_STAGES:
            self._say(f"interrupted after pulumi up #{n} finished")
            self._say(progress_line(record))
            return None
        return record

    def _say(self, text: str) -> None:
        self.out.write(f"[run] {text}\n")
        self.out.flush()


def select_stack(stack_name: str, work_dir: Path, create: bool) -> Any:
    """The stack, in a local workspace on the project, through the Automation API.

    The CLI is the `pulumi` on PATH: the one `make toolchain` builds (scripts/pulumi-env puts it
    first), or a user's own.
    """
    from pulumi import automation as auto

    try:
        command = auto.PulumiCommand()
        command.command = str(OWN_SESSION)  # the same `pulumi`, in a session of its own (see the module doc)
    except (OSError, subprocess.CalledProcessError, auto.errors.InvalidVersionError) as err:
        raise RunError(f"no usable `pulumi` CLI on PATH ({err}); run `make toolchain` and "
                       "`. scripts/pulumi-env`, or install Pulumi") from None
    options = auto.LocalWorkspaceOptions(work_dir=str(work_dir), pulumi_command=command)
    try:
        if create:
            stack = auto.create_or_select_stack(stack_name, work_dir=str(work_dir), opts=options)
        else:
            stack = auto.select_stack(stack_name, work_dir=str(work_dir), opts=options)
    except auto.errors.StackNotFoundError:
        raise RunError(f"no stack {stack_name!r} in {work_dir} (create it with `pulumi stack init "
                       f"{stack_name}`, or pass --create)") from None
    except auto.errors.CommandError as err:
        raise RunError(_last_lines(str(err))) from None
    return stack


def automation_up(stack_name: str, work_dir: Path, create: bool) -> Up:
    """One `pulumi up` of `stack_name` per call (see select_stack)."""
    from pulumi import automation as auto

    stack = select_stack(stack_name, work_dir, create)

    def up(line: Callable[[str], None]) -> Mapping[str, Any]:
        try:
            result = stack.up(on_output=line, on_error=line, color="never")
        except auto.errors.ConcurrentUpdateError:
            raise RunError(f"stack {stack_name!r} is locked by another update") from None
        except auto.errors.CommandError as err:
            raise RunError(_last_lines(str(err))) from None
        return {name: output.value for name, output in result.outputs.items()}

    return up


def automation_record(stack_name: str, work_dir: Path) -> Callable[[], ExperimentRecord | None]:
    """Reads the stack's `experiment` output as it is now (None when the stack or its output is missing)."""
    from pulumi import automation as auto

    def current() -> ExperimentRecord | None:
        try:
            stack = select_stack(stack_name, work_dir, create=False)
            record = stack.outputs().get("experiment")
        except (RunError, auto.errors.CommandError):
            return None
        return read_record(record.value) if record is not None else None

    return current


def _last_lines(text: str, n: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-n:]) or "no output"


def add_arguments(parser: Any) -> None:
    parser.add_argument("-s", "--stack", required=True, help="the stack to run (e.g. dev)")
    parser.add_argument("-C", "--cwd", default=".", help="the Pulumi project directory (default: .)")
    parser.add_argument("--max-iterations", type=int, default=None,
                        help="stop after this many iterations (exit 3 if still Running)")
    parser.add_argument("--require-promotion", action="store_true",
                        help="exit 1 unless a candidate (not the baseline) is promoted")
    parser.add_argument("--exit-on-pause", action="store_true",
                        help="exit 4 when the experiment is Paused, instead of waiting for a control")
    parser.add_argument("--create", action="store_true", help="create the stack if it does not exist")
    parser.add_argument("--log-dir", default=None, help="where each `up`'s log goes (default build/run/STACK)")


def run_command(args: Any, out: TextIO, err: TextIO) -> int:
    if args.max_iterations is not None and args.max_iterations < 1:
        err.write("error: --max-iterations must be at least 1\n")
        return ERROR
    work_dir = Path(args.cwd).resolve()
    if not (work_dir / "Pulumi.yaml").is_file():
        err.write(f"error: {work_dir} has no Pulumi.yaml (give the project directory with -C)\n")
        return ERROR
    log_dir = Path(args.log_dir) if args.log_dir else work_dir / "build" / "run" / args.stack
    interrupt = Interrupt()
    with interrupt.installed():
        try:
            up = automation_up(args.stack, work_dir, args.create)
            runner = Runner(up=up, out=out, log_dir=log_dir, interrupt=interrupt,
                            current=automation_record(args.stack, work_dir), stack=args.stack,
                            exit_on_pause=bool(getattr(args, "exit_on_pause", False)))
            return runner.run(args.max_iterations, args.require_promotion)
        except RunError as problem:
            err.write(f"error: {problem}\n")
            return ERROR
