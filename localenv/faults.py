"""Faults on demand, per namespace (one namespace = one version): an error rate and extra latency.

Errors are deterministic, not random: with error rate r the n-th prediction fails exactly when
floor(n*r) > floor((n-1)*r), so rate 0.05 fails the 20th, 40th, ... prediction and any window of
N predictions holds N*r errors up to one. Faults affect predictions only (the executor's call to
the model); feedback is always answered.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class BadFaults(ValueError):
    """A fault document that is not `{namespace: {"errorRate": 0..1, "extraLatencyMs": >=0} | null}`."""


@dataclass(frozen=True)
class Fault:
    error_rate: float = 0.0
    """Fraction of predictions answered with HTTP 500, in [0, 1]."""
    extra_latency_ms: float = 0.0
    """Milliseconds added to every prediction's model call."""

    def to_json(self) -> dict[str, float]:
        return {"errorRate": self.error_rate, "extraLatencyMs": self.extra_latency_ms}


def parse_faults(document: Any) -> dict[str, Fault | None]:
    """`{"ns-candidate": {"errorRate": 0.05, "extraLatencyMs": 0}}`; null clears a namespace."""
    if not isinstance(document, dict):
        raise BadFaults("faults must be a JSON object keyed by namespace")
    parsed: dict[str, Fault | None] = {}
    for namespace, body in document.items():
        if body is None:
            parsed[namespace] = None
            continue
        if not isinstance(body, dict) or set(body) - {"errorRate", "extraLatencyMs"}:
            raise BadFaults(f"{namespace}: expected keys errorRate and extraLatencyMs, got {body!r}")
        rate, latency = body.get("errorRate", 0.0), body.get("extraLatencyMs", 0.0)
        for name, value in (("errorRate", rate), ("extraLatencyMs", latency)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise BadFaults(f"{namespace}: {name} must be a finite number, got {value!r}")
        if not 0.0 <= rate <= 1.0:
            raise BadFaults(f"{namespace}: errorRate must lie in [0, 1], got {rate}")
        if latency < 0:
            raise BadFaults(f"{namespace}: extraLatencyMs must be >= 0, got {latency}")
        parsed[namespace] = Fault(float(rate), float(latency))
    return parsed


class Faults:
    """The faults in force and each namespace's prediction counter (for the deterministic errors)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}
        self._counts: dict[str, int] = {}

    def update(self, changes: Mapping[str, Fault | None]) -> None:
        """Set (or with None clear) the given namespaces' faults; their error counters restart."""
        with self._lock:
            for namespace, fault in changes.items():
                self._counts.pop(namespace, None)
                if fault is None:
                    self._faults.pop(namespace, None)
                else:
                    self._faults[namespace] = fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._counts.clear()

    def snapshot(self) -> dict[str, Fault]:
        with self._lock:
            return dict(self._faults)

    def next_prediction(self, namespace: str) -> tuple[bool, float]:
        """Whether this prediction in `namespace` fails, and the seconds of latency to add."""
        with self._lock:
            fault = self._faults.get(namespace)
            if fault is None:
                return False, 0.0
            n = self._counts.get(namespace, 0) + 1
            self._counts[namespace] = n
            fails = math.floor(n * fault.error_rate + 1e-9) > math.floor((n - 1) * fault.error_rate + 1e-9)
            return fails, fault.extra_latency_ms / 1000.0
