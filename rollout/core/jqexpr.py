"""The one place that talks to jq (the `jq` package, bindings to libjq)."""

from __future__ import annotations

import functools
from typing import Any

import jq


class JqError(ValueError):
    """A jq expression did not compile, or failed on its input."""


@functools.lru_cache(maxsize=256)
def compile_expression(expression: str) -> Any:
    """Compile once per expression; raises JqError with jq's own message."""
    try:
        return jq.compile(expression)
    except ValueError as err:
        raise JqError(str(err).strip()) from None


def first_value(expression: str, document: Any) -> Any:
    """The first output of `expression` on `document` (None when it outputs nothing)."""
    program = compile_expression(expression)
    try:
        return program.input_value(document).first()
    except StopIteration:
        return None
    except ValueError as err:
        raise JqError(str(err).strip()) from None
