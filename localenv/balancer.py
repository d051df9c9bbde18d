"""Smooth weighted round-robin: a deterministic split that follows the weights exactly.

Each pick adds every destination's weight to its running score, takes the destination with the
highest score (the first one on a tie) and subtracts the total weight from it. With weights 90/10
every window of 10 consecutive picks holds exactly 9 and 1, spread out rather than in a block:
for weights {a: 3, b: 1} the picks are a, a, b, a, a, a, b, a, ... (scores after each pick:
(-1, 1), (-2, 2), (1, -1), (0, 0)). Zero-weight destinations are never picked.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class SmoothWeightedRoundRobin(Generic[T]):
    """Thread-safe picker over (item, weight) pairs; `reset` starts afresh with new weights."""

    def __init__(self, weighted: Sequence[tuple[T, int]] = ()) -> None:
        self._lock = threading.Lock()
        self._items: list[T] = []
        self._weights: list[int] = []
        self._scores: list[int] = []
        self.reset(weighted)

    def reset(self, weighted: Sequence[tuple[T, int]]) -> None:
        if any(w < 0 for _, w in weighted):
            raise ValueError("weights must be non-negative")
        with self._lock:
            self._items = [item for item, _ in weighted]
            self._weights = [w for _, w in weighted]
            self._scores = [0] * len(weighted)

    def pick(self) -> T | None:
        """The next destination, or None when every weight is zero."""
        with self._lock:
            total = sum(self._weights)
            if total == 0:
                return None
            best = 0
            for i, weight in enumerate(self._weights):
                self._scores[i] += weight
                if self._scores[i] > self._scores[best]:
                    best = i
            self._scores[best] -= total
            return self._items[best]
