"""Strict PromQL templating: `$name` and `${name}` from a version's variables, nothing left over."""

from __future__ import annotations

from collections.abc import Mapping
from string import Template

ELAPSED_TIME = "elapsedTime"
"""Whole seconds since the experiment started (at least 1), as Iter8 defines it."""


def elapsed_seconds(started_at: float, now: float) -> int:
    """Whole seconds since the start, at least 1 (Iter8's `${elapsedTime}`)."""
    return max(1, int(now - started_at))


class TemplateError(ValueError):
    """A query template is malformed or names a variable that has no value."""


def template_variables(query: str) -> set[str]:
    """The variable names a query uses; raises TemplateError when the template is malformed."""
    template = Template(query)
    if not template.is_valid():
        raise TemplateError("has a malformed $-placeholder (write $$ for a literal dollar)")
    return set(template.get_identifiers())


def render(query: str, variables: Mapping[str, str]) -> str:
    """Fill `query`; an unknown variable is an error, never left in the PromQL.

    >>> render("up{ns='$ns'}[${elapsedTime}s]", {"ns": "a", "elapsedTime": "30"})
    "up{ns='a'}[30s]"
    """
    try:
        return Template(query).substitute(variables)
    except KeyError as err:
        raise TemplateError(f"unknown variable ${err.args[0]}") from None
    except ValueError as err:
        raise TemplateError(f"malformed template: {err}") from None
