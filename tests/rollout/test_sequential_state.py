"""The state fuzzing of tests/rollout/test_provider_state.py, on a `sequential` experiment's stored evidence.

In process, Prometheus replaced by a stub snapshot: good outputs after a few iterations, then parts of
`evidence` (the running tests, their fingerprints and numbers, the verdict) deleted or replaced by values of
any type. `update` never raises; the experiment either goes on or ends Failed (100% baseline) with a message
naming the field under `evidence`.
"""

from __future__ import annotations

import copy
import time
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from rollout.core.outcomes import Observed, Snapshot
from rollout.core.spec import ExperimentSpec
from rollout.core.state import FAILED, PRIVATE_OUTPUT, ExperimentState
from rollout.core.validation import parse_experiment
from rollout.engine import iterate, start
from rollout.provider import RECORD_KEYS, ExperimentProvider, record_outputs, stored_state
from tests.rollout.factories import healthy, seed_experiment, snapshot
from tests.rollout.test_provider_state import junk

EXPERIMENT = seed_experiment(algorithm="sequential", iterationsPerLoop=100)
NEWS = {"experiment": EXPERIMENT, "prometheus": {"url": "http://127.0.0.1:9", "timeoutSeconds": 5}}
PROVIDER = ExperimentProvider()


def data(look: int) -> Snapshot:
    outs = {"iris-v1": healthy(7.0 * look), "iris-v2": healthy(10.0 * look)}
    for v in outs.values():
        v["request-count"] = Observed(100.0 * look)
        v["requests-slower-than-5000ms"] = Observed(0.0)
    return snapshot(**outs)


def stub_snapshot(spec: ExperimentSpec, *_: Any, **__: Any) -> Snapshot:
    return data(5)


def good_olds() -> dict[str, Any]:
    """The outputs after 4 sequential iterations, due again."""
    spec = parse_experiment(EXPERIMENT)
    now = time.time()
    state: ExperimentState = start(spec, now - 100)
    for look in range(1, 5):
        state = iterate(spec, data(look), state, now - 100 + 10 * look)
    assert state.evidence["running"]["tests"]
    outs = record_outputs(EXPERIMENT, NEWS["prometheus"], spec, state.evolve(last_iteration_at=now - 30))
    assert "running" not in outs["evidence"]  # the bookkeeping is stored apart from what people read
    outs["evidence"]["running"] = outs.pop(PRIVATE_OUTPUT)  # one tree to damage; split again in `malformed`
    return outs


GOOD = good_olds()
PATHS = [("running",), ("running", "format"), ("running", "tests"), ("decided",), ("algorithm",)]
PATHS += [("running", "tests", name) for name in GOOD["evidence"]["running"]["tests"]]
PATHS += [("running", "tests", name, key) for name in GOOD["evidence"]["running"]["tests"]
          for key in ("fingerprint", "state")]


@st.composite
def malformed(draw: st.DrawFn) -> dict[str, Any]:
    olds = copy.deepcopy(GOOD)
    for path in draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=4, unique=True)):
        node = olds["evidence"]
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        if draw(st.booleans()):
            node.pop(path[-1], None)
        else:
            node[path[-1]] = draw(junk)
    if draw(st.booleans()):  # as the provider stores it (else inline, as records before the split did)
        olds[PRIVATE_OUTPUT] = olds["evidence"].pop("running", None)
    return olds


@settings(max_examples=200, deadline=None)
@given(malformed())
def test_update_never_raises_on_a_malformed_sequential_evidence(olds: dict[str, Any]) -> None:
    spec = parse_experiment(EXPERIMENT)
    with mock.patch("rollout.provider.collect_snapshot", stub_snapshot):
        outs = PROVIDER.update("quickstart-exp", olds, NEWS).outs
    assert outs is not None
    state = stored_state(spec, outs)
    assert sum(state.weights.values()) == 100
    if state.stage == FAILED:
        assert state.weights == {"iris-v1": 100, "iris-v2": 0}
        assert "evidence" in state.messages[0], state.messages[0]


def test_the_good_evidence_goes_on() -> None:
    spec = parse_experiment(EXPERIMENT)
    good = copy.deepcopy(GOOD)
    good[PRIVATE_OUTPUT] = good["evidence"].pop("running")
    with mock.patch("rollout.provider.collect_snapshot", stub_snapshot):
        outs = PROVIDER.update("quickstart-exp", good, NEWS).outs
    assert outs is not None
    assert stored_state(spec, outs).stage != FAILED
    # The public record has the evidence people read; the bookkeeping went on in its own output.
    assert "running" not in outs["evidence"] and set(outs[PRIVATE_OUTPUT]["tests"]) == set(good[PRIVATE_OUTPUT]["tests"])
    assert PRIVATE_OUTPUT not in RECORD_KEYS
