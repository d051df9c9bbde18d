"""Reading an experiment record from what a person hands the tools: the record, or all stack outputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollout.core.record import ExperimentRecord
from rollout.core.state import StateError


class RecordError(ValueError):
    """The input is not an experiment record."""


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
        return ExperimentRecord.from_outputs(document)
    except StateError as err:
        raise RecordError(f"not a valid experiment record: {err}") from None
