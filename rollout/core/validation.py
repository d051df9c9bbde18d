"""Parse the experiment at the edge, and say what is wrong as `key.path: message`, every problem at once.

The rules live on the models (`rollout.core.spec`); this module only turns pydantic's errors into lines a
user can act on (`objectives[0].upperLimit: must be a number, got 'fast'`). Nothing here touches the
network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from rollout.core.spec import ExperimentSpec
from rollout.core.text import shown


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the config: where, and what."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class SpecError(ValueError):
    """The experiment is invalid; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("invalid experiment: " + "; ".join(str(p) for p in problems))


def key_path(loc: Iterable[str | int], prefix: str = "") -> str:
    """`("objectives", 0, "upperLimit")` -> `objectives[0].upperLimit`."""
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


_KINDS = {
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "a string",
    "list_type": "a list", "tuple_type": "a list", "dict_type": "an object (a mapping)",
    "model_type": "an object (a mapping)", "model_attributes_type": "an object (a mapping)",
    "dataclass_type": "an object (a mapping)",
}


def message(error: ErrorDetails) -> str:
    """What is wrong, in the project's words; custom rules already speak them."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in _KINDS:
        return f"must be {_KINDS[kind]}, got {shown(error['input'])}"
    if kind == "missing":
        return "is required"
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return "is not a known key"
    if kind in ("enum", "literal_error"):
        choices = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"must be one of {choices}, got {shown(error['input'])}"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    return error["msg"].removeprefix("Value error, ")


def problems_of(err: ValidationError, prefix: str = "") -> list[Problem]:
    """One problem per error, each on one line."""
    return [Problem(key_path(e["loc"], prefix), " ".join(message(e).split())) for e in err.errors()]


def parse_experiment(data: Any, prefix: str = "") -> ExperimentSpec:
    """Validate `data` (camelCase keys, as in stack config and the provider's inputs) into the typed spec.

    Raises SpecError listing every problem found, each path under `prefix`.
    """
    if not isinstance(data, Mapping):
        raise SpecError([Problem(prefix or "experiment", "must be a mapping")])
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(problems_of(err, prefix)) from None


def validate(data: Any, prefix: str = "") -> list[Problem]:
    """Every problem with `data`, as a list (empty when valid)."""
    try:
        parse_experiment(data, prefix)
    except SpecError as err:
        return err.problems
    return []
