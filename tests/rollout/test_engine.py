"""The pure core, table-driven: trajectories from the notes, holds, rollback, finish, patterns."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rollout.core.outcomes import Failed, NoData, Observed, Outcome, Snapshot
from rollout.core.spec import ExperimentSpec
from rollout.core.state import COMPLETED, FAILED, RUNNING, ExperimentState
from rollout.engine import is_due, iterate, start
from tests.rollout.factories import healthy, no_traffic, seed_experiment, seed_spec, snapshot

V1, V2 = "iris-v1", "iris-v2"


def run(spec: ExperimentSpec, snapshots: Callable[[int, ExperimentState], Snapshot],
        iterations: int) -> tuple[list[dict[str, int]], ExperimentState]:
    """Drive `iterations` iterations, each 10 s apart; returns the weights after each."""
    state = start(spec, 1000.0)
    trajectory = []
    for i in range(iterations):
        now = 1000.0 + 10 * (i + 1)
        assert is_due(spec, state, now) or state.finished
        state = iterate(spec, snapshots(i, state), state, now)
        trajectory.append(dict(state.history[-1]["weights"]) if state.history else dict(state.weights))
    return trajectory, state


def candidate_weights(trajectory: list[dict[str, int]]) -> list[int]:
    return [w[V2] for w in trajectory]


def test_seed_candidate_better_from_the_start_goes_10_to_90_then_is_promoted() -> None:
    spec = seed_spec()
    trajectory, state = run(spec, lambda i, s: snapshot(**{V1: healthy(7), V2: healthy(10)}), 10)
    # The 10th iteration's split (95%) is never written: the experiment completes in the same iteration
    # and the outputs promote iris-v2. The history records what the VirtualService received.
    assert candidate_weights(trajectory) == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert (state.history[-1]["weights"], state.history[-1]["promoted"]) == (state.weights, V2)
    assert state.stage == COMPLETED
    assert state.iteration == 10
    assert (state.winner, state.promoted) == (V2, V2)
    assert state.weights == {V1: 0, V2: 100}
    assert all(sum(w.values()) == 100 for w in trajectory)


def test_candidate_without_data_at_first_gets_the_exploration_share_then_climbs() -> None:
    def data(i: int, _: ExperimentState) -> Snapshot:
        return snapshot(**{V1: healthy(7), V2: no_traffic() if i == 0 else healthy(10)})

    trajectory, state = run(seed_spec(), data, 10)
    assert candidate_weights(trajectory) == [5, 15, 25, 35, 45, 55, 65, 75, 85, 100]
    assert state.promoted == V2


def test_failing_candidate_without_rollback_keeps_iter8s_five_percent_floor() -> None:
    objectives = [{"metric": "error-rate", "upperLimit": 0.01, "rollbackOnFailure": False}]

    def data(i: int, _: ExperimentState) -> Snapshot:
        return snapshot(**{V1: healthy(7), V2: healthy(10, error_rate=0.0 if i < 5 else 0.05)})

    trajectory, state = run(seed_spec(objectives=objectives), data, 8)
    assert candidate_weights(trajectory) == [10, 20, 30, 40, 50, 5, 5, 5]
    assert state.stage == RUNNING


def test_failing_candidate_with_rollback_goes_to_zero_at_once_and_ends_with_the_baseline() -> None:
    def data(i: int, _: ExperimentState) -> Snapshot:
        return snapshot(**{V1: healthy(7), V2: healthy(10, error_rate=0.0 if i < 5 else 0.05)})

    trajectory, state = run(seed_spec(), data, 6)
    assert candidate_weights(trajectory) == [10, 20, 30, 40, 50, 0]
    assert state.stage == FAILED
    assert state.weights == {V1: 100, V2: 0}
    assert state.promoted is None
    assert "iris-v2 broke error-rate <= 0.01 (got 0.05)" in state.messages[0]
    # Finished: further iterations change nothing.
    assert iterate(seed_spec(), snapshot(**{V1: healthy(7), V2: healthy(10)}), state, 9999.0) == state


def test_candidate_without_data_is_not_rolled_back() -> None:
    _, state = run(seed_spec(), lambda i, s: snapshot(**{V1: healthy(7), V2: no_traffic()}), 3)
    assert state.stage == RUNNING
    assert state.weights == {V1: 95, V2: 5}
    assert "iris-v2 not feasible: mean-latency has no data yet" in state.messages


@pytest.mark.parametrize("bad", [Failed("HTTP 500"), Failed("timed out after 5s")])
def test_failed_query_holds_weights_and_does_not_count(bad: Outcome) -> None:
    spec = seed_spec()
    _, state = run(spec, lambda i, s: snapshot(**{V1: healthy(7), V2: healthy(10)}), 3)
    assert state.weights[V2] == 30
    broken = snapshot(**{V1: healthy(7), V2: {**healthy(10), "mean-latency": bad}})
    held = iterate(spec, broken, state, 1040.0)
    assert held.weights == state.weights
    assert held.iteration == state.iteration == 3
    assert held.consecutive_errors == 1
    assert held.stage == RUNNING
    assert "query failed" in held.messages[0]
    assert held.history[-1]["held"] is True
    assert held.last_iteration_at == 1040.0
    resumed = iterate(spec, snapshot(**{V1: healthy(7), V2: healthy(10)}), held, 1050.0)
    assert (resumed.iteration, resumed.weights[V2], resumed.consecutive_errors) == (4, 40, 0)


def test_baseline_without_data_holds() -> None:
    spec = seed_spec()
    state = start(spec, 0.0)
    held = iterate(spec, snapshot(**{V1: no_traffic(), V2: no_traffic()}), state, 10.0)
    assert held.weights == {V1: 100, V2: 0}
    assert held.iteration == 0
    assert "baseline iris-v1: no data" in held.messages[0]


def test_consecutive_error_limit_fails_and_rolls_back_to_the_baseline() -> None:
    spec = seed_spec(consecutiveErrorLimit=3)
    _, state = run(spec, lambda i, s: snapshot(**{V1: healthy(7), V2: healthy(10)}), 4)
    down: Snapshot = {key: Failed("cannot reach prometheus") for key in snapshot(**{V1: healthy(7), V2: healthy(10)})}
    stages = []
    for k in range(3):
        state = iterate(spec, down, state, 2000.0 + 10 * k)
        stages.append((state.stage, state.weights[V2], state.consecutive_errors))
    assert stages == [(RUNNING, 40, 1), (RUNNING, 40, 2), (FAILED, 0, 3)]
    assert state.iteration == 4
    assert "Failed after 3 iterations in a row" in state.messages[0]


def test_values_never_carry_over_from_an_earlier_iteration() -> None:
    spec = seed_spec()
    _, state = run(spec, lambda i, s: snapshot(**{V1: healthy(7), V2: healthy(10)}), 1)
    assert state.values["mean-latency"][V2]["value"] == 20.0
    held = iterate(spec, {k: Failed("down") for k in snapshot(**{V1: healthy(7)})}, state, 1100.0)
    assert held.values["mean-latency"][V1] == {"value": None, "status": "failed", "detail": "down",
                                               "units": "milliseconds"}


def test_tie_on_reward_gives_no_winner_and_splits_exploitation() -> None:
    _, state = run(seed_spec(), lambda i, s: snapshot(**{V1: healthy(7), V2: healthy(7)}), 10)
    assert state.winner is None
    assert state.promoted == V1
    assert state.history[0]["weights"] == {V1: 90, V2: 10}
    assert state.history[-2]["weights"] == {V1: 50, V2: 50}
    assert state.history[-1]["weights"] == {V1: 100, V2: 0}  # no winner: the baseline is kept


def test_lower_is_better_reward() -> None:
    spec = seed_spec(rewards=[{"metric": "mean-latency", "preferredDirection": "Low"}])
    _, state = run(spec, lambda i, s: snapshot(**{V1: healthy(7, latency=30), V2: healthy(7, latency=10)}), 10)
    assert state.promoted == V2


def three_versions(**overrides: object) -> ExperimentSpec:
    data = seed_experiment(**overrides)
    data["versions"] = [*data["versions"], {"name": "iris-v3", "variables": {
        "ns": "ns-candidate-2", "sid": "iris", "predictor": "default"}}]
    from rollout.core.validation import parse_experiment

    return parse_experiment(data)


def test_abn_with_three_versions_picks_the_best_feasible_candidate() -> None:
    spec = three_versions()
    assert spec.testing_pattern.value == "A/B/n"
    infeasible = healthy(50, latency=3000)  # best reward, but breaks mean-latency without rollback
    spec = three_versions(objectives=[{"metric": "mean-latency", "upperLimit": 2000, "rollbackOnFailure": False}])
    trajectory, state = run(spec, lambda i, s: snapshot(**{V1: healthy(7), V2: healthy(10), "iris-v3": infeasible}), 10)
    first = trajectory[0]
    assert first == {V1: 87, V2: 10, "iris-v3": 3}  # mix 3.33/93.33/3.33: v2 capped at +10
    assert all(sum(w.values()) == 100 for w in trajectory)
    assert trajectory[-2]["iris-v3"] == 3
    assert trajectory[-1] == {V1: 0, V2: 100, "iris-v3": 0}
    assert state.promoted == V2


def test_canary_promotes_a_feasible_candidate_and_keeps_the_baseline_otherwise() -> None:
    spec = seed_spec(testingPattern="Canary", rewards=[])
    _, good = run(spec, lambda i, s: snapshot(**{V1: healthy(0), V2: healthy(0)}), 10)
    assert good.promoted == V2
    lenient = seed_spec(testingPattern="Canary", rewards=[],
                        objectives=[{"metric": "mean-latency", "upperLimit": 2000, "rollbackOnFailure": False}])
    _, bad = run(lenient, lambda i, s: snapshot(**{V1: healthy(0), V2: healthy(0, latency=2500)}), 10)
    assert (bad.winner, bad.promoted) == (V1, V1)


def test_fixed_split_never_moves_weights() -> None:
    trajectory, state = run(seed_spec(deploymentPattern="FixedSplit"),
                            lambda i, s: snapshot(**{V1: healthy(7), V2: healthy(10)}), 10)
    assert candidate_weights(trajectory) == [0] * 9 + [100]  # unmoved until the promotion
    assert state.promoted == V2


def test_weight_caps_apply() -> None:
    spec = seed_spec(maxCandidateWeight=50, maxCandidateWeightIncrement=20)
    trajectory, _ = run(spec, lambda i, s: snapshot(**{V1: healthy(7), V2: healthy(10)}), 5)
    assert candidate_weights(trajectory) == [20, 40, 50, 50, 50]


def test_interval_gates_iterations() -> None:
    spec = seed_spec()
    state = start(spec, 100.0)
    assert not is_due(spec, state, 109.9)
    assert is_due(spec, state, 110.0)


def test_history_is_bounded() -> None:
    spec = seed_spec(historyLimit=3, iterationsPerLoop=8)
    _, state = run(spec, lambda i, s: snapshot(**{V1: healthy(7), V2: healthy(10)}), 8)
    assert [h["iteration"] for h in state.history] == [6, 7, 8]


def test_state_survives_the_round_trip_through_outputs_with_float_numbers() -> None:
    spec = seed_spec()
    _, state = run(spec, lambda i, s: snapshot(**{V1: healthy(7), V2: healthy(10)}), 3)
    outs = state.to_outputs()
    as_engine_gives = {**outs, "iteration": 3.0, "weights": {V1: 70.0, V2: 30.0}, "consecutiveErrors": 0.0}
    assert ExperimentState.from_outputs(as_engine_gives) == state


def test_no_data_for_reward_only_on_candidate_skips_it() -> None:
    spec = seed_spec()
    data = snapshot(**{V1: healthy(7), V2: {**healthy(10), "user-engagement": NoData("empty result")}})
    state = iterate(spec, data, start(spec, 0.0), 10.0)
    assert state.winner == V1
    assert state.weights == {V1: 95, V2: 5}


def test_same_inputs_same_state() -> None:
    spec = seed_spec()
    data = snapshot(**{V1: healthy(7.5), V2: healthy(Observed(10).value)})
    assert iterate(spec, data, start(spec, 0.0), 10.0) == iterate(spec, data, start(spec, 0.0), 10.0)


def test_sequential_experiment_ends_once_decided_and_converged() -> None:
    spec = seed_spec(algorithm="sequential", iterationsPerLoop=200)

    def data(i: int, _: ExperimentState) -> Snapshot:
        t = 10.0 * (i + 1)
        base, cand = healthy(round(0.7 * t)), healthy(round(1.0 * t))
        for outcomes in (base, cand):
            outcomes["request-count"] = Observed(5.0 * t)
            outcomes["requests-slower-than-5000ms"] = Observed(0.0)  # the p95's test reads it: never missing
        return snapshot(**{V1: base, V2: cand})

    trajectory, state = run(spec, data, 200)
    assert state.stage == COMPLETED
    assert state.promoted == V2
    assert state.iteration < 200
    assert "decided by the sequential test" in state.messages[0]
    assert state.history[-1]["weights"] == state.history[-2]["weights"]  # ended once the weights stopped moving
    assert state.history[-1]["weights"][V2] > 50
    assert all(sum(w.values()) == 100 for w in trajectory)
    from rollout.report.describe import describe

    text = describe({**state.to_outputs(), "spec": seed_experiment(algorithm="sequential")})
    assert "****** Evidence ******" in text
    assert "probabilityBest" in text
    assert "running" not in text
