"""Evaluating a metric's jq expression on a Prometheus response, within the sandbox (rollout.core.jqexpr).

A plain path runs in this process (microseconds, it cannot loop); any other expression runs in a child
process with an empty environment, a memory limit and a deadline, because libjq cannot be interrupted
from Python: a runaway expression is a JqError for that metric, never a hung `up`. This is I/O (a
process), so it lives here, beside the Prometheus client, and not in the pure core.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from rollout.core.jqexpr import JqError, compile_expression, is_plain

DEADLINE_SECONDS = 2.0
"""Wall-clock budget of one evaluation in the child process (start-up included)."""
MEMORY_LIMIT_BYTES = 1 << 30
"""Address space of the child process: an expression that builds huge values fails there."""


_CHILD = f"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT_BYTES}, {MEMORY_LIMIT_BYTES}))
import jq
job = json.load(sys.stdin)
try:
    out = {{"value": jq.compile(job["e"]).input_value(job["d"]).first()}}
except StopIteration:
    out = {{"value": None}}
except (ValueError, MemoryError) as err:
    out = {{"error": str(err).strip() or type(err).__name__}}
sys.stdout.write(json.dumps(out))
"""


def bounded_value(expression: str, document: Any, deadline: float) -> Any:
    """`expression`'s first output on `document` in a child process (empty environment, memory limit)."""
    try:
        done = subprocess.run([sys.executable, "-I", "-c", _CHILD], input=json.dumps({"e": expression, "d": document}),
                              capture_output=True, text=True, timeout=deadline, env={}, check=False)
    except subprocess.TimeoutExpired:
        raise JqError(f"did not finish within {deadline:g}s (a runaway expression?)") from None
    try:
        out = json.loads(done.stdout)
    except ValueError:
        raise JqError(f"the evaluation failed (exit status {done.returncode})") from None
    if "error" in out:
        raise JqError(str(out["error"]))
    return out["value"]


def first_value(expression: str, document: Any, deadline: float = DEADLINE_SECONDS) -> Any:
    """The first output of `expression` on `document` (None when it outputs nothing).

    A plain path runs here; any other expression in a child process, within `deadline` seconds."""
    program = compile_expression(expression)
    if not is_plain(expression):
        return bounded_value(expression, document, deadline)
    try:
        return program.input_value(document).first()
    except StopIteration:
        return None
    except ValueError as err:
        raise JqError(str(err).strip()) from None
