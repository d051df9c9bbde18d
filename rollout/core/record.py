"""The experiment record: what an Experiment resource's outputs hold, as one type.

The provider writes it (`to_outputs`) and every reader takes it back with `from_outputs`: the
provider's next `update`, the runner, the Notifier, `describe`, `plot`, the dry run. It is

- the spec, as the user wrote it (`spec_inputs`, stored as given so that `diff` compares like with
  like) and parsed (`spec`);
- the status: `state`, an ExperimentState (stage, weights, iteration, history, ...), which the engine
  takes and returns;
- where the metrics came from (`prometheus_url`, credentials removed) and the inputs' hash.

`from_outputs` is strict where the engine needs it to be and names the first unreadable field
(StateError); keys it does not know are ignored, so a record from a newer release still reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rollout.core.spec import ExperimentSpec
from rollout.core.state import ExperimentState, StateError
from rollout.core.validation import SpecError, parse_experiment

STATE_KEYS = ("stage", "startedAt", "lastIterationAt", "iteration", "consecutiveErrors", "weights", "winner",
              "promoted", "assessments", "values", "evidence", "history", "messages", "appliedControl")
"""The state's keys in the outputs people read (ExperimentState.to_outputs also writes PRIVATE_OUTPUT: the
algorithm's bookkeeping, an output of the resource, not part of the record people read)."""
OUTPUT_KEYS = ("name", "spec", "prometheusUrl", *STATE_KEYS)
"""The record's keys in the outputs, as people read them (`pulumi stack output experiment`)."""


@dataclass(frozen=True)
class MetricValue:
    """One metric's last value for one version."""

    value: float | None = None
    status: str = "ok"
    """`ok`, `no data` or `failed`."""
    detail: str = ""
    units: str = ""

    @classmethod
    def read(cls, raw: Any) -> MetricValue | None:
        if not isinstance(raw, Mapping):
            return None
        value = raw.get("value")
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        return cls(number, str(raw.get("status") or "ok"), str(raw.get("detail") or ""), str(raw.get("units") or ""))


@dataclass(frozen=True)
class ExperimentRecord:
    spec: ExperimentSpec
    state: ExperimentState
    spec_inputs: Mapping[str, Any] = field(default_factory=dict)
    """The spec as written in the stack (what `diff` compares the next inputs with)."""
    prometheus_url: str = ""
    inputs_hash: str = ""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def versions(self) -> tuple[str, ...]:
        return self.spec.version_names

    def value(self, metric: str, version: str) -> MetricValue | None:
        return MetricValue.read((self.state.values.get(metric) or {}).get(version))

    def units(self, metric: str) -> str:
        found = (self.value(metric, v) for v in (self.state.values.get(metric) or {}))
        return next((v.units for v in found if v is not None and v.units), "")

    def to_outputs(self) -> dict[str, Any]:
        return {"name": self.spec.name, "spec": dict(self.spec_inputs), "prometheusUrl": self.prometheus_url,
                "inputsHash": self.inputs_hash, **self.state.to_outputs()}

    @classmethod
    def from_outputs(cls, outs: Mapping[str, Any]) -> ExperimentRecord:
        """The record in an Experiment's outputs; StateError names the first field that is unreadable."""
        raw = outs.get("spec")
        if not isinstance(raw, Mapping):
            raise StateError("spec", "is required: the experiment's mapping")
        try:
            spec = parse_experiment(raw, "spec")
        except SpecError as err:
            first = err.problems[0]
            raise StateError(first.field, "; ".join([first.message, *map(str, err.problems[1:])])) from None
        state = ExperimentState.from_outputs(outs)
        if sorted(state.weights) != sorted(spec.version_names):
            raise StateError("weights", f"must name the versions {', '.join(spec.version_names)}, "
                                        f"got {', '.join(state.weights) or 'none'}")
        return cls(spec, state, raw, str(outs.get("prometheusUrl") or ""), str(outs.get("inputsHash") or ""))
