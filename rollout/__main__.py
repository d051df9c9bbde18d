"""`python -m rollout describe|assert|plot`: read an experiment record, from a file or stdin.

`python -m rollout run -s STACK`: run the stack's experiment to its end, one `pulumi up` per interval.
`python -m rollout preview -s STACK`: what the next iteration would decide, changing nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rollout.core.record import ExperimentRecord
from rollout.ops.runner import add_arguments, run_command
from rollout.report.describe import describe, unmet
from rollout.report.record import RecordError, experiment_record


def add_dry_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--stack", required=True, help="the stack (e.g. dev)")
    parser.add_argument("-C", "--cwd", default=".", help="the Pulumi project directory (default: .)")


def _load(path: str) -> ExperimentRecord:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as err:
        raise RecordError(f"cannot read {path}: {err.strerror}") from None
    try:
        document = json.loads(text)
    except ValueError as err:
        raise RecordError(f"{'stdin' if path == '-' else path} is not JSON: {err}") from None
    return experiment_record(document)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rollout", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("describe", "print the status report"), ("assert", "exit 1 unless conditions hold"),
                       ("plot", "write a PNG of weights and metrics per iteration")):
        p = sub.add_parser(name, help=text)
        p.add_argument("-f", "--file", default="-", help="experiment record (JSON); '-' for stdin (default)")
        if name == "assert":
            p.add_argument("--completed", action="store_true", help="the experiment is Completed")
            p.add_argument("--winner-found", action="store_true", help="a winner was found")
        if name == "plot":
            p.add_argument("-o", "--output", default="build/experiment.png", help="PNG to write")
    run = sub.add_parser("run", help="one `pulumi up` per interval until the experiment ends")
    add_arguments(run)
    dry = sub.add_parser("preview", help="what the next iteration would decide, changing nothing (a dry run)")
    add_dry_run_arguments(dry)
    args = parser.parse_args(argv)
    if args.command == "run":
        return run_command(args, sys.stdout, sys.stderr)
    if args.command == "preview":
        from rollout.ops.dryrun import preview_command

        return preview_command(args, sys.stdout, sys.stderr)
    try:
        record = _load(args.file)
    except RecordError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.command == "describe":
        sys.stdout.write(describe(record))
        return 0
    if args.command == "plot":
        from rollout.report.plot import plot_history

        print(plot_history(record, Path(args.output)))
        return 0
    if not (args.completed or args.winner_found):
        print("error: give at least one condition (--completed, --winner-found)", file=sys.stderr)
        return 2
    problems = unmet(record, args.completed, args.winner_found)
    for problem in problems:
        print(f"assertion failed: {problem}", file=sys.stderr)
    if not problems:
        print("all conditions met")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
