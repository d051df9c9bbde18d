"""Operator controls in the pure core: each action's effect, applied once, recorded with time and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rollout.core.control import Control, apply_control, seen_at_start
from rollout.core.state import COMPLETED, FAILED, PAUSED, RUNNING, ExperimentState
from rollout.engine import is_due, iterate, start
from tests.rollout.factories import healthy, seed_spec, snapshot

V1, V2 = "iris-v1", "iris-v2"
SPEC = seed_spec()


def running(iterations: int = 3) -> ExperimentState:
    """The seed after a few iterations with the candidate better: weights 70/30 after three."""
    state = start(SPEC, 0.0)
    for i in range(iterations):
        state = iterate(SPEC, snapshot(**{V1: healthy(10.0), V2: healthy(20.0)}), state, 10.0 * (i + 1))
    return state


def round_trip(state: ExperimentState) -> ExperimentState:
    """What the next `up` reads: the outputs, with the nulls the engine drops removed."""
    outs: dict[str, Any] = {k: v for k, v in state.to_outputs().items() if v is not None}
    if outs.get("appliedControl"):
        outs["appliedControl"] = {k: v for k, v in outs["appliedControl"].items() if v is not None}
    return ExperimentState.from_outputs(outs)


def test_pause_holds_weights_stops_iterations_and_counts_no_errors() -> None:
    before = running()
    paused = apply_control(SPEC, before, Control("pause", reason="checking a dashboard"), 35.0)
    assert paused.stage == PAUSED and paused.weights == before.weights == {V1: 70, V2: 30}
    assert paused.history[-1]["control"]["summary"] == "pause (checking a dashboard)"
    assert paused.history[-1]["time"] == 35.0
    # Intervals pass: nothing is due, and an iteration (even one without data) changes nothing.
    assert not is_due(SPEC, paused, 1000.0)
    assert iterate(SPEC, snapshot(), paused, 1000.0) == paused


def test_resume_restarts_the_interval_from_the_resume() -> None:
    paused = apply_control(SPEC, running(), Control("pause"), 35.0)
    resumed = apply_control(SPEC, paused, Control("resume", reason="looked fine"), 500.0)
    assert resumed.stage == RUNNING and resumed.last_iteration_at == 500.0
    assert not is_due(SPEC, resumed, 505.0) and is_due(SPEC, resumed, 510.0)
    nxt = iterate(SPEC, snapshot(**{V1: healthy(10.0), V2: healthy(20.0)}), resumed, 510.0)
    assert nxt.iteration == 4 and nxt.weights == {V1: 60, V2: 40}


def test_abort_sends_everything_to_the_baseline_and_promotes_nothing() -> None:
    aborted = apply_control(SPEC, running(), Control("abort", reason="incident 42"), 35.0)
    assert (aborted.stage, aborted.weights, aborted.promoted, aborted.winner) == (
        FAILED, {V1: 100, V2: 0}, None, None)
    assert aborted.messages[0].startswith("Aborted by control")


def test_promote_promotes_that_version_now() -> None:
    promoted = apply_control(SPEC, running(), Control("promote", version=V2, reason="approved"), 35.0)
    assert (promoted.stage, promoted.weights, promoted.promoted) == (COMPLETED, {V1: 0, V2: 100}, V2)
    assert promoted.history[-1]["promoted"] == V2


def test_the_same_control_applies_once_across_ups() -> None:
    control = Control("pause", reason="r")
    once = round_trip(apply_control(SPEC, running(), control, 35.0))
    again = apply_control(SPEC, once, control, 45.0)
    assert again == once
    assert sum(1 for h in again.history if "control" in h) == 1


def test_pause_resume_pause_applies_each_change() -> None:
    state = running()
    for t, action in ((35.0, "pause"), (40.0, "resume"), (45.0, "pause")):
        state = round_trip(apply_control(SPEC, state, Control(action), t))
    assert state.stage == PAUSED
    assert [h["control"]["action"] for h in state.history if "control" in h] == ["pause", "resume", "pause"]


@pytest.mark.parametrize(("control", "why"), [
    (Control("resume"), "is Running, not Paused"),
    (Control("promote", version="iris-v9"), "'iris-v9' is not a version"),
])
def test_a_control_that_cannot_apply_is_recorded_once_and_changes_nothing_else(control: Control, why: str) -> None:
    before = running()
    after = apply_control(SPEC, before, control, 35.0)
    assert (after.stage, after.weights, after.iteration) == (before.stage, before.weights, before.iteration)
    assert why in after.messages[-1] and "not applied" in after.messages[-1]
    assert apply_control(SPEC, round_trip(after), control, 45.0) == round_trip(after)


def test_a_finished_experiment_ignores_controls() -> None:
    done = apply_control(SPEC, running(), Control("promote", version=V2), 35.0)
    after = apply_control(SPEC, done, Control("abort"), 40.0)
    assert (after.stage, after.promoted, after.weights) == (COMPLETED, V2, {V1: 0, V2: 100})
    assert "already Completed" in after.messages[-1]
    assert after.messages[0] == done.messages[0]  # the completion message stays


def test_promote_by_control_names_no_algorithm_winner() -> None:
    before = running()
    assert before.winner == V2
    promoted = apply_control(SPEC, before, Control("promote", version=V1, reason="rollback by hand"), 35.0)
    assert (promoted.promoted, promoted.winner) == (V1, None)
    assert promoted.messages == ("Promoted iris-v1 by control (the algorithm's winner was iris-v2)",)


@pytest.mark.parametrize("control", [Control("promote", version=V2, reason="approved"), Control("abort"),
                                     Control("pause"), Control("resume")])
def test_a_control_left_in_the_stack_file_never_acts_on_a_new_experiment(control: Control) -> None:
    fresh = seen_at_start(SPEC, start(SPEC, 100.0), control, 100.0)
    assert (fresh.stage, fresh.weights, fresh.promoted, fresh.winner) == (RUNNING, {V1: 100, V2: 0}, None, None)
    assert "not applied: it was set before this experiment started" in fresh.messages[-1]
    assert fresh.history[-1]["control"]["action"] == control.action
    # The next `up`s see the same control: still nothing, and it is not recorded again.
    again = apply_control(SPEC, round_trip(fresh), control, 110.0)
    assert again == round_trip(fresh)
    # A control set during this experiment acts on it.
    new = Control(control.action, control.version, "for this experiment")
    acted = apply_control(SPEC, round_trip(fresh), new, 120.0)
    assert acted.history[-1]["control"]["reason"] == "for this experiment"
    if control.action in ("promote", "abort", "pause"):
        assert acted.stage != RUNNING


def test_no_control_is_no_change() -> None:
    state = running()
    assert apply_control(SPEC, state, None, 35.0) is state
    assert Control.from_input(None) is None and Control.from_input({}) is None
    assert Control.from_input({"action": "promote", "version": V2}) == Control("promote", V2, "")


def test_freeze_on_failure_holds_the_weights_and_pauses_for_a_person() -> None:
    from tests.rollout.factories import SEED_OBJECTIVES

    seed: list[dict[str, Any]] = [dict(o) for o in SEED_OBJECTIVES]  # type: ignore[call-overload]
    objectives = [dict(o, onFailure="freeze") if "error-rate" in o["metric"] else o for o in seed]
    spec = seed_spec(objectives=objectives)
    state = start(spec, 0.0)
    for i in range(3):
        state = iterate(spec, snapshot(**{V1: healthy(10.0), V2: healthy(20.0)}), state, 10.0 * (i + 1))
    frozen = iterate(spec, snapshot(**{V1: healthy(10.0), V2: healthy(20.0, error_rate=0.05)}), state, 40.0)
    assert (frozen.stage, frozen.weights, frozen.iteration) == (PAUSED, {V1: 70, V2: 30}, 3)
    assert frozen.messages[0].startswith("Frozen: iris-v2 broke error-rate <= 0.01")
    assert frozen.history[-1]["frozen"] is True and frozen.history[-1]["weights"] == {V1: 70, V2: 30}
    assert not is_due(spec, frozen, 1000.0)
    # A person decides: abort rolls back, as `rollback` would have done at once.
    aborted = apply_control(spec, frozen, Control("abort", reason="errors confirmed"), 60.0)
    assert (aborted.stage, aborted.weights) == (FAILED, {V1: 100, V2: 0})
    # The same break under the default (rollback) ends the experiment at once.
    rolled = iterate(SPEC, snapshot(**{V1: healthy(10.0), V2: healthy(20.0, error_rate=0.05)}), running(), 40.0)
    assert (rolled.stage, rolled.weights) == (FAILED, {V1: 100, V2: 0})


def test_describe_and_plot_read_a_record_with_controls(tmp_path: Path) -> None:
    import json

    from rollout.__main__ import main
    from rollout.provider import record_outputs

    state = apply_control(SPEC, running(), Control("pause", reason="dashboards"), 35.0)
    state = apply_control(SPEC, state, Control("promote", version=V2), 45.0)
    record = {k: v for k, v in json.loads(json.dumps(record_outputs(SPEC.to_wire(), {"url": "http://p"}, SPEC, state)))
              .items() if v is not None}  # as the engine stores it: nulls dropped
    src = tmp_path / "r.json"
    src.write_text(json.dumps(record))
    assert main(["plot", "-f", str(src), "-o", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["describe", "-f", str(src)]) == 0
