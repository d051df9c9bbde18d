"""Parse the experiment at the edge, and say what is wrong as `key.path: message`, every problem at once.

The rules live on the models (`rollout.core.spec`); this module only turns pydantic's errors into lines a
user can act on (`objectives[0].upperLimit: must be a number, got 'fast'`). Nothing here touches the
network.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
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


NOT_SHOWN = "(the value is secret: not shown)"


def _strings(value: Any) -> list[str]:
    """Every string in `value` (nested in mappings and lists too), longest first."""
    if isinstance(value, str):
        return [value]
    items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, (list, tuple)) \
        else ()
    found = [text for key, item in items for text in (*_strings(key), *_strings(item))]
    return sorted(found, key=len, reverse=True)


def _redacted(text: str, value: Any) -> str:
    """`text` without any piece of `value` of four characters or more (a custom rule's message may quote it)."""
    for secret in _strings(value):
        for form in (repr(secret), shown(secret), secret, repr(secret)[:-1], shown(secret)[:-3]):
            if len(form) >= 4:
                text = text.replace(form, "<secret>")
    return text


def message(error: ErrorDetails, secret: bool = False) -> str:
    """What is wrong, in the project's words; custom rules already speak them. Under a `secret` key the
    value is never quoted: the message says what is wrong, and that the value is not shown."""
    kind, ctx = error["type"], error.get("ctx") or {}
    got = NOT_SHOWN if secret else f"got {shown(error['input'])}"
    if kind in _KINDS:
        return f"must be {_KINDS[kind]}, {got}"
    if kind == "missing":
        return "is required"
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return "is not a known key"
    if kind in ("enum", "literal_error"):
        choices = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"must be one of {choices}, {got}"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    text = error["msg"].removeprefix("Value error, ")
    return _redacted(text, error["input"]) if secret else text


def problems_of(err: ValidationError, prefix: str = "", secret: Collection[str] = ()) -> list[Problem]:
    """One problem per error, each on one line; under a top-level key in `secret`, without the value."""
    return [Problem(key_path(e["loc"], prefix), " ".join(message(e, bool(e["loc"]) and e["loc"][0] in secret).split()))
            for e in err.errors()]


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
