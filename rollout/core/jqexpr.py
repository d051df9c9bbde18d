"""jq (the `jq` package, bindings to libjq): compiling a metric's expression, and its sandbox (pure).

A metric's jq expression comes from the stack file, which anyone who can open a pull request edits: it
is untrusted. It may read only the Prometheus response it is given.

- `sandbox_problem` refuses, at validation, every builtin that reads or writes anything else (`$ENV`,
  `env`, `input`, `inputs`, `input_filename`, `input_line_number`, `$__loc__`, `debug`, `stderr`,
  `halt`, `halt_error`, the clock and time zone, module search paths, `import`/`include`/`modulemeta`)
  and expressions longer than MAX_LENGTH. `getpath` is allowed: it reads only its own input.
- `rollout.metrics.evaluate.first_value` evaluates a *plain path*
  (`.data.result[0].value[1] | tonumber`: fields, literal
  indexes and a few builtins that take no argument, joined by pipes; the seed's and Iter8's expressions)
  in this process: it cannot loop and costs microseconds. Anything else (iteration, arguments, operators,
  definitions, regular expressions, ...) runs in a child process with an empty environment, a memory
  limit and a deadline: a runaway expression is a JqError, never a hung `up`. libjq
  cannot be interrupted from Python, hence the process; the child costs tens of milliseconds, paid only
  by an expression that is not a plain path. docs/security.md gives the reasons.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jq

MAX_LENGTH = 2000
"""Characters in one expression: more is refused (an expression reads one number from a response)."""


class JqError(ValueError):
    """A jq expression did not compile, or failed on its input."""


_ENVIRONMENT = "reads the provider host's environment"
_OUTSIDE = "reads something other than the Prometheus response"
_WRITES = "writes to the provider's logs"
_HALTS = "stops the process"
_MODULES = "loads jq modules from the provider host's disk"
REFUSED: dict[str, str] = {
    "$ENV": _ENVIRONMENT, "env": _ENVIRONMENT,
    "input": _OUTSIDE, "inputs": _OUTSIDE, "input_filename": _OUTSIDE, "input_line_number": _OUTSIDE,
    "$__loc__": _OUTSIDE, "$__prog_args": _OUTSIDE, "get_search_list": _OUTSIDE,
    "get_prog_origin": _OUTSIDE, "get_jq_origin": _OUTSIDE, "builtins": _OUTSIDE,
    "now": "reads the provider host's clock", "localtime": "reads the provider host's time zone",
    "strflocaltime": "reads the provider host's time zone",
    "debug": _WRITES, "stderr": _WRITES, "halt": _HALTS, "halt_error": _HALTS,
    "import": _MODULES, "include": _MODULES, "modulemeta": _MODULES,
}
"""Every way out of the input the jq 1.8 manual lists, with why it is refused."""

_PLAIN_CALLS = ("tonumber", "tostring", "length", "first", "last", "floor", "ceil", "round", "fabs", "abs",
                "sqrt", "type", "not", "isnan", "isinfinite", "isnormal", "values", "numbers", "add", "min",
                "max", "keys", "ascii_downcase", "ascii_upcase", "trim", "empty", "null", "true", "false")
_SEGMENT = r'(?:\.[A-Za-z_][A-Za-z0-9_]*|\.?\[\s*-?\d+\s*\]|\.?\[\s*"[^"\\]*"\s*\]|\."[^"\\]*")\??'
_STAGE = rf"\s*(?:\.|(?:{_SEGMENT})+|(?:{'|'.join(_PLAIN_CALLS)}))\s*"
_PLAIN = re.compile(rf"{_STAGE}(?:\|{_STAGE})*")
"""A pipeline of paths with literal indexes and argument-less builtins whose output is no larger than
their input: each stage is one value, so the whole runs in time linear in the response."""


def is_plain(expression: str) -> bool:
    """True when `expression` is a plain path (evaluated in this process, see the module's docstring)."""
    return _PLAIN.fullmatch(expression) is not None


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*")


def _names(expression: str) -> list[str]:
    """The names the expression uses as code: function calls and keywords (`env`), variables (`$ENV`).

    Fields (`.env`, `."env"`) and object keys (`{env: 1}`, but `{env}` is `.env`) are not code. Strings
    are scanned for interpolations (`"\\(env)"`). When unsure, a name counts as code (a refusal too many
    is safe; the child process has an empty environment besides).
    """
    found: list[str] = []
    i, n = 0, len(expression)
    brackets: list[str] = []  # open brackets, to tell object keys from calls
    after_key_start = False   # just after `{` or `,` inside an object: a name there is a key
    while i < n:
        c = expression[i]
        if c.isspace():
            i += 1
            continue
        if c == "#":  # a comment, to the end of the line (jq continues one after a backslash: code to us)
            while i < n and expression[i] != "\n":
                i += 1
            continue
        key_position, after_key_start = after_key_start, False
        if c == '"':
            i = _string(expression, i + 1, found)
        elif c == "$":
            j = i + 1
            while j < n and expression[j].isspace():
                j += 1
            match = _IDENT.match(expression, j)
            if match:
                found.append("$" + match.group())
                i = match.end()
            else:
                i = j
        elif c == "." and i + 1 < n and (expression[i + 1].isalpha() or expression[i + 1] == "_"):
            match = _IDENT.match(expression, i + 1)
            i = match.end() if match else i + 1  # a field
        elif c == "@":
            match = _IDENT.match(expression, i + 1)
            i = match.end() if match else i + 1  # a format (@base64, @sh, ...): reads only its input
        elif c.isalpha() or c == "_":
            match = _IDENT.match(expression, i)
            assert match is not None
            name, i = match.group(), match.end()
            rest = expression[i:].lstrip()
            is_key = key_position and brackets and brackets[-1] == "{" and rest[:1] in (":", ",", "}") \
                and rest[:2] != "::"
            if not is_key:
                found.append(name)
        else:
            if c in "([{":
                brackets.append(c)
                after_key_start = c == "{"
            elif c in ")]}":
                if brackets:
                    brackets.pop()
            elif c == "," and brackets and brackets[-1] == "{":
                after_key_start = True
            i += 1
    return found


def _string(expression: str, i: int, found: list[str]) -> int:
    """Scan a string literal from after its opening quote; the names in its interpolations go to `found`.
    Returns the index after the closing quote."""
    n = len(expression)
    while i < n:
        c = expression[i]
        if c == '"':
            return i + 1
        if c == "\\" and i + 1 < n and expression[i + 1] == "(":
            depth, j = 1, i + 2
            start = j
            while j < n and depth:  # the interpolation's code, to its closing parenthesis
                if expression[j] == '"':
                    j = _string(expression, j + 1, [])
                    continue
                depth += {"(": 1, ")": -1}.get(expression[j], 0)
                j += 1
            found.extend(_names(expression[start:j - 1] if not depth else expression[start:j]))
            i = j
            continue
        i += 2 if c == "\\" else 1
    return n


def sandbox_problem(expression: str) -> str | None:
    """Why `expression` may not run, None when it may: it must read only the Prometheus response."""
    if len(expression) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    for name in _names(expression):
        reason = REFUSED.get(name) or (_OUTSIDE if name.startswith("$__") else None)
        if reason is None and "::" in name:
            reason = _MODULES
        if reason:
            return f"may read only the Prometheus response: `{name}` {reason}"
    return None


@functools.lru_cache(maxsize=256)
def compile_expression(expression: str) -> Any:
    """Compile once per expression; raises JqError with jq's own message, or the sandbox's refusal."""
    problem = sandbox_problem(expression)
    if problem:
        raise JqError(problem)
    try:
        return jq.compile(expression)
    except ValueError as err:
        raise JqError(str(err).strip()) from None
