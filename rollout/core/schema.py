"""The building blocks of the project's models: a frozen camelCase base, bounded numbers, and problems
raised at their own locations (so a whole list of them is reported at once)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

Loc = tuple[str | int, ...]


class Model(BaseModel):
    """Frozen, no unknown keys, camelCase keys, finite numbers only."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, validate_by_name=True,
                              validate_by_alias=True, serialize_by_alias=True, allow_inf_nan=False,
                              protected_namespaces=())


def raise_problems(title: str, problems: Sequence[tuple[Loc, str]], value: Any) -> None:
    """Raise every problem at once, each at its own location (relative to the value being validated)."""
    if problems:
        raise ValidationError.from_exception_data(title, [
            InitErrorDetails(type=PydanticCustomError("rule", "{message}", {"message": message}), loc=loc,
                             input=value) for loc, message in problems])


def _reject_bool(kind: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, bool):  # a bool is an int to Python, never a number in config
            raise PydanticCustomError("not_bool", "must be {kind}, got {value}", {"kind": kind, "value": repr(value)})
        return value
    return check


def in_range(low: float | None, high: float | None, *, open_ends: bool = False) -> Callable[[Any], Any]:
    """A bound check; with `open_ends` the bounds themselves are out (0 < alpha < 1)."""
    def check(value: float) -> float:
        below = low is not None and (value <= low if open_ends else value < low)
        above = high is not None and (value >= high if open_ends else value > high)
        if below or above:
            if low is not None and high is not None:
                bounds = f"between {low:g} and {high:g}" + (" (exclusive)" if open_ends else "")
            elif low is not None:
                bounds = f"above {low:g}" if open_ends else f"at least {low:g}"
            else:
                bounds = f"below {high:g}" if open_ends else f"at most {high:g}"
            raise PydanticCustomError("range", "must be {bounds}, got {value}", {"bounds": bounds, "value": value})
        return value
    return check


def _non_empty(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("empty", "must be a non-empty string")
    return value


def _short(metric_ref: str) -> str:
    """Iter8 names metrics `namespace/name`; the namespace is where they are stored, not part of the name."""
    return metric_ref.rsplit("/", 1)[-1]


Number = Annotated[float, BeforeValidator(_reject_bool("a number"))]
Whole = Annotated[int, BeforeValidator(_reject_bool("a whole number"))]
AtLeastOne = Annotated[Whole, AfterValidator(in_range(1, None))]
Percent = Annotated[Whole, AfterValidator(in_range(0, 100))]
Positive = Annotated[Number, AfterValidator(in_range(0, None, open_ends=True))]
NonEmpty = Annotated[str, AfterValidator(_non_empty)]
MetricRef = Annotated[NonEmpty, AfterValidator(_short)]


def url_problem(value: Any, credentials_go_to: str) -> str | None:
    """What is wrong with `value` as an http(s) server's URL, None when nothing: it has the scheme http or https
    and a host, no credentials (`user:password@`: they would be stored in plain text, and go elsewhere), no
    query string (`?access_token=...` is a credential too, and a path is appended to the URL) and no fragment.
    The value is quoted only when none of those is in it."""
    if isinstance(value, str) and "@" in value.split("?", 1)[0].split("#", 1)[0]:
        return f"must not carry credentials (user:password@); put them in {credentials_go_to}"
    if isinstance(value, str) and "?" in value:
        return (f"must not have a query string (not shown: it may hold a credential, which belongs in "
                f"{credentials_go_to}; the API path is appended to the URL)")
    if isinstance(value, str) and "#" in value:
        return "must not have a fragment (#...; not shown)"
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
        fine = parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # not a URL at all (an unclosed IPv6 bracket)
        fine = False
    return None if fine else f"must start with http:// or https:// and name a host, got {value!r}"


def unknown_metrics(refs: Sequence[tuple[Loc, str | None]], known: set[str]) -> list[tuple[Loc, str]]:
    """A problem for each reference to a metric that is not defined."""
    listed = ", ".join(sorted(known)) or "none"
    return [(loc, f"unknown metric {name!r} (known: {listed})") for loc, name in refs
            if name is not None and name not in known]


def duplicates(names: Sequence[str | None]) -> list[tuple[Loc, str]]:
    """A problem at each item whose name an earlier item has (None: an item without a name)."""
    return [((i, "name"), f"duplicate name {name!r}") for i, name in enumerate(names)
            if name is not None and name in names[:i]]


def with_problems(err: ValidationError, problems: Sequence[tuple[Loc, str]]) -> ValidationError:
    """`err` and `problems` as one error: every problem at once, but none at a location `err` reports already."""
    found = err.errors()
    seen = {e["loc"] for e in found}
    return ValidationError.from_exception_data(err.title, [
        *(InitErrorDetails(type=PydanticCustomError(e["type"], "{message}", {**e.get("ctx", {}), "message": e["msg"]}),
                           loc=e["loc"], input=e["input"]) for e in found),
        *(InitErrorDetails(type=PydanticCustomError("rule", "{message}", {"message": message}), loc=loc, input=None)
          for loc, message in problems if loc not in seen)])
