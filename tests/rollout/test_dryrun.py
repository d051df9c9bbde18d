"""The dry run runs the provider's `update` path (`engine.advance`) on a copy of the state: for every stage
and every control, what it predicts for an `up` now is what `update` does at the same moment on the same data."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from rollout.core.control import Control
from rollout.core.outcomes import Snapshot
from rollout.core.state import COMPLETED, FAILED, PAUSED, RUNNING, ExperimentState
from rollout.ops.dryrun import predict
from rollout.provider import ExperimentProvider, record_outputs, stored_state
from tests.rollout.factories import healthy, seed_experiment, seed_spec, snapshot

NOW = 10_000.0
SPEC = seed_spec()
PROMETHEUS = {"url": "http://127.0.0.1:9", "timeoutSeconds": 5}
RECORD_KEYS = ("stage", "iteration", "weights", "winner", "promoted", "history", "messages", "appliedControl",
               "lastIterationAt", "consecutiveErrors", "values", "assessments")


def state_in(stage: str, due: bool) -> ExperimentState:
    return ExperimentState(stage=stage, started_at=NOW - 100, last_iteration_at=NOW - (30 if due else 3),
                           weights={"iris-v1": 80, "iris-v2": 20}, iteration=2, winner="iris-v2",
                           promoted="iris-v2" if stage == COMPLETED else None)


def data(*_: Any, **__: Any) -> Snapshot:
    return snapshot(**{"iris-v1": healthy(7), "iris-v2": healthy(10)})


STAGES = [(RUNNING, True), (RUNNING, False), (PAUSED, True), (COMPLETED, True), (FAILED, True)]
CONTROLS = [None, Control("pause", reason="r"), Control("resume"), Control("abort"),
            Control("promote", version="iris-v2"), Control("promote", version="iris-v9")]


@pytest.mark.parametrize(("stage", "due"), STAGES)
@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: c.summary() if c else "none")
def test_the_dry_run_predicts_what_update_does_now(stage: str, due: bool, control: Control | None) -> None:
    olds = record_outputs(seed_experiment(), PROMETHEUS, SPEC, state_in(stage, due))
    news = {"experiment": seed_experiment(), "prometheus": PROMETHEUS,
            "control": control.as_dict() if control else {}}
    with mock.patch("rollout.provider.collect_snapshot", data), mock.patch("rollout.provider.time.time",
                                                                          lambda: NOW):
        outs = ExperimentProvider().update("e", olds, news).outs
    assert outs is not None
    prediction = predict(SPEC, stored_state(SPEC, olds), control, NOW, lambda _state: data())
    predicted = record_outputs(seed_experiment(), PROMETHEUS, SPEC, prediction.now)
    assert {k: predicted.get(k) for k in RECORD_KEYS} == {k: outs.get(k) for k in RECORD_KEYS}


def test_when_the_interval_has_not_passed_the_next_up_that_iterates_is_predicted_and_said() -> None:
    state = state_in(RUNNING, due=False)
    prediction = predict(SPEC, state, None, NOW, lambda _state: data())
    assert prediction.now == state  # an `up` now changes nothing
    assert prediction.next.iteration == 3
    assert prediction.when.startswith("the first `pulumi up` in 7s (the interval has not passed")


def test_after_a_resume_the_iteration_waits_for_an_interval_from_the_resume() -> None:
    paused = state_in(PAUSED, due=True)
    prediction = predict(SPEC, paused, Control("resume"), NOW, lambda _state: data())
    assert (prediction.now.stage, prediction.now.iteration) == (RUNNING, 2)  # what `update` does now
    assert "in 10s" in prediction.when and "applies the control and nothing else" in prediction.when


@pytest.mark.parametrize(("stage", "said"), [(COMPLETED, "never: the experiment is Completed"),
                                             (FAILED, "never: the experiment is Failed"),
                                             (PAUSED, "not until a control")])
def test_a_finished_or_paused_experiment_is_not_said_to_iterate(stage: str, said: str) -> None:
    prediction = predict(SPEC, state_in(stage, due=True), None, NOW, lambda _state: data())
    assert prediction.when.startswith(said)
    assert prediction.next.iteration == 2
