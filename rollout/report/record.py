"""The experiment record (the provider's outputs, `pulumi stack output experiment`), read once into types.

`describe` and `plot` take this; the spec inside is the same model the engine runs on. Keys the reader
does not know are ignored, so a record from a newer release still reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from rollout.core.spec import ExperimentSpec
from rollout.core.validation import problems_of


class RecordError(ValueError):
    """The input is not an experiment record."""


class _Read(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", alias_generator=to_camel, validate_by_name=True,
                              validate_by_alias=True)


class MetricValue(_Read):
    """One metric's last value for one version."""

    value: float | None = None
    status: str = "ok"
    """`ok`, `no data` or `failed`."""
    detail: str = ""
    units: str = ""


class ExperimentRecord(_Read):
    name: str = ""
    spec: ExperimentSpec
    prometheus_url: str = ""
    stage: str
    started_at: float | None = None
    last_iteration_at: float | None = None
    iteration: int = 0
    consecutive_errors: int = 0
    weights: dict[str, int]
    winner: str | None = None
    promoted: str | None = None
    assessments: dict[str, dict[str, bool]] = Field(default_factory=dict)
    """version -> objective condition -> met."""
    values: dict[str, dict[str, MetricValue]] = Field(default_factory=dict)
    """metric -> version -> last value."""
    evidence: dict[str, Any] = Field(default_factory=dict)
    history: tuple[dict[str, Any], ...] = ()
    messages: tuple[str, ...] = ()

    @property
    def versions(self) -> tuple[str, ...]:
        return self.spec.version_names

    def units(self, metric: str) -> str:
        return next((e.units for e in self.values.get(metric, {}).values() if e.units), "")


def experiment_record(document: Any) -> ExperimentRecord:
    """Read the record itself, or the whole `pulumi stack output --json` document."""
    if isinstance(document, ExperimentRecord):
        return document
    if isinstance(document, Mapping) and isinstance(document.get("experiment"), Mapping):
        document = document["experiment"]
    if not isinstance(document, Mapping) or "stage" not in document or "weights" not in document:
        raise RecordError("not an experiment record: expected the output of "
                          "`pulumi stack output experiment --json` (with stage and weights)")
    try:
        return ExperimentRecord.model_validate(document)
    except ValidationError as err:
        raise RecordError("not a valid experiment record: "
                          + "; ".join(str(p) for p in problems_of(err))) from None
