"""The `sequential` algorithm's running evidence, kept from look to look: each test's numbers with the
fingerprint of the configuration they were gathered under.

A test's evidence is valid only for the question it answers: the same metric, query, limit, alpha and
algorithm. Each entry of `running.tests` is `{"fingerprint": ..., "state": [numbers]}`; when the
fingerprint of the configuration now differs (a reward metric, a query, a limit or alpha edited while
the experiment runs) that test starts again from nothing, and the restart is recorded. An entry that
is there but cannot be read (not a mapping, numbers of the wrong kind or count) is no fresh start:
stored state that cannot be trusted ends the experiment, with the field named (`EvidenceError`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from rollout.core.state import PRIVATE_OUTPUT, StateError

FORMAT = 3
"""Version of the running evidence's layout. Evidence of an older layout (no `format`) has no
fingerprints: every test restarts once, recorded, rather than continue on numbers of unknown meaning.
A change of any test's numbers (their count or meaning) needs a new FORMAT and a way to read the old one:
otherwise running experiments would end on evidence they can no longer read."""


STORED = PRIVATE_OUTPUT
"""Where the running evidence is stored (the resource's output beside the record; `evidence.running` inside
the engine): unreadable parts are named from there."""


class EvidenceError(StateError):
    """The stored `evidence` of a `sequential` experiment cannot be read: names the field."""


def fingerprint(*parts: Any) -> str:
    """A short hash of what a test depends on (metric names, queries, limits, alpha, algorithm, layout)."""
    text = json.dumps([FORMAT, *parts], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Running:
    """Reads the tests' stored evidence (strictly) and collects this look's."""

    def __init__(self, evidence: Mapping[str, Any], iterations: int = 0) -> None:
        """`evidence` as stored; `iterations` the experiment has run (under another algorithm when the
        evidence is not the sequential one's)."""
        self.restarted: list[str] = []
        self.legacy = False
        """Evidence of an older layout: every test restarts."""
        self.tests: dict[str, dict[str, Any]] = {}
        self._old: Mapping[str, Any] = {}
        if evidence.get("algorithm") != "sequential":
            if evidence or iterations:  # switched from another algorithm while running: its data are not counted
                self.restarted.append("every test (the algorithm changed to sequential)")
                self.legacy = True
            return
        running = evidence.get("running", {})
        if not isinstance(running, Mapping):
            raise EvidenceError(STORED, f"must be a mapping, got {type(running).__name__}")
        if "format" not in running and running:
            self.restarted.append("every test (evidence from an older version of the algorithm)")
            self.legacy = True
            return
        if running.get("format", FORMAT) != FORMAT:
            raise EvidenceError(f"{STORED}.format", f"must be {FORMAT}, got {running.get('format')!r}")
        tests = running.get("tests", {})
        if not isinstance(tests, Mapping):
            raise EvidenceError(f"{STORED}.tests", f"must be a mapping, got {type(tests).__name__}")
        self._old = tests

    def take(self, name: str, print_: str, size: int) -> list[float] | None:
        """The stored numbers of test `name` gathered under `print_`, or None to start it (absent, or
        gathered under another configuration: then the restart is recorded)."""
        entry = self._old.get(name)
        if entry is None:
            return None
        where = f"{STORED}.tests.{name}"
        if not isinstance(entry, Mapping):
            raise EvidenceError(where, f"must be a mapping, got {type(entry).__name__}")
        stored = entry.get("fingerprint")
        if not isinstance(stored, str):
            raise EvidenceError(f"{where}.fingerprint", f"must be a string, got {type(stored).__name__}")
        if stored != print_:
            self.restarted.append(name)
            return None
        state = entry.get("state")
        if not (isinstance(state, list) and len(state) == size and all(_finite(x) for x in state)):
            raise EvidenceError(f"{where}.state", f"must be a list of {size} finite numbers, got {_shown(state)}")
        return [float(x) for x in state]

    def begin(self, name: str, size: int, current: Sequence[float | None]) -> list[float]:
        """A test's first numbers: zeros, from the experiment's start; a test that restarts (another
        configuration, an older layout) starts from the totals now instead, so data it was not started on
        (and may have been chosen on) is never counted in its first look."""
        state = [0.0] * size
        if (name in self.restarted or self.legacy) and None not in current:
            state[:len(current)] = [float(x or 0.0) for x in current]
        return state

    def put(self, name: str, print_: str, state: list[float]) -> None:
        self.tests[name] = {"fingerprint": print_, "state": list(state)}

    def stored(self) -> dict[str, Any]:
        """This look's running evidence, as kept in the record."""
        return {"format": FORMAT, "tests": dict(sorted(self.tests.items()))}


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
