"""What one metric query for one version can come back as.

Three outcomes, never a bare number: a finite value was observed; the backend answered but has no
usable value (empty result, NaN: the version had no traffic); or the backend failed (HTTP error,
timeout, garbage, `status: error`, ambiguous result). The core treats them differently: "no data"
makes an objective unmet, "failed" holds the weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Observed:
    value: float
    query: str = field(default="", compare=False)
    """The rendered PromQL that produced the value (for the record; outcomes compare without it)."""
    retries: int = field(default=0, compare=False)
    """How many times its request was retried."""


@dataclass(frozen=True)
class NoData:
    reason: str
    query: str = field(default="", compare=False)
    retries: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Failed:
    reason: str
    query: str = field(default="", compare=False)
    retries: int = field(default=0, compare=False)


Outcome = Observed | NoData | Failed

Snapshot = dict[tuple[str, str], Outcome]
"""(metric name, version name) -> outcome, for one iteration."""


def value_of(outcome: Outcome | None) -> float | None:
    return outcome.value if isinstance(outcome, Observed) else None
