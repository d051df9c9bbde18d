"""BlueGreen: all traffic to the best feasible version at once, under both algorithms."""

from __future__ import annotations

from rollout.core.outcomes import Observed, Snapshot
from rollout.core.state import COMPLETED, FAILED, ExperimentState
from rollout.engine import iterate, start
from tests.rollout.factories import healthy, no_traffic, seed_spec, snapshot
from tests.rollout.test_engine import V1, V2, candidate_weights, run


def test_candidate_best_from_the_start_takes_all_traffic_in_one_step() -> None:
    trajectory, state = run(seed_spec(deploymentPattern="BlueGreen"),
                            lambda i, s: snapshot(**{V1: healthy(7), V2: healthy(10)}), 10)
    # No exploration share and no increment cap: the winner gets 100% at once (Iter8's BlueGreen).
    assert trajectory == [{V1: 0, V2: 100}] * 10
    assert (state.stage, state.promoted) == (COMPLETED, V2)


def test_candidate_not_yet_feasible_leaves_all_traffic_on_the_baseline_until_it_is() -> None:
    def data(i: int, _: ExperimentState) -> Snapshot:
        return snapshot(**{V1: healthy(7), V2: no_traffic() if i < 2 else healthy(10)})

    trajectory, _ = run(seed_spec(deploymentPattern="BlueGreen"), data, 4)
    assert candidate_weights(trajectory) == [0, 0, 100, 100]


def test_a_better_baseline_keeps_everything_and_is_promoted() -> None:
    trajectory, state = run(seed_spec(deploymentPattern="BlueGreen"),
                            lambda i, s: snapshot(**{V1: healthy(10), V2: healthy(7)}), 10)
    assert candidate_weights(trajectory) == [0] * 10
    assert (state.winner, state.promoted) == (V1, V1)


def test_a_tie_splits_evenly() -> None:
    spec = seed_spec(deploymentPattern="BlueGreen")
    state = iterate(spec, snapshot(**{V1: healthy(7), V2: healthy(7)}), start(spec, 0.0), 10.0)
    assert (state.winner, state.weights) == (None, {V1: 50, V2: 50})


def test_a_candidate_breaking_a_limit_at_100_percent_is_rolled_back_at_once() -> None:
    def data(i: int, _: ExperimentState) -> Snapshot:
        return snapshot(**{V1: healthy(7), V2: healthy(10, error_rate=0.0 if i < 2 else 0.05)})

    trajectory, state = run(seed_spec(deploymentPattern="BlueGreen"), data, 3)
    assert candidate_weights(trajectory) == [100, 100, 0]
    assert state.stage == FAILED
    assert state.promoted is None
    assert "iris-v2 broke error-rate <= 0.01" in state.messages[0]


def test_sequential_blue_green_stays_on_the_baseline_until_decided_then_moves_within_the_caps() -> None:
    spec = seed_spec(algorithm="sequential", deploymentPattern="BlueGreen", iterationsPerLoop=200,
                     maxCandidateWeightIncrement=50)

    def data(i: int, _: ExperimentState) -> Snapshot:
        t = 10.0 * (i + 1)
        base, cand = healthy(round(0.7 * t)), healthy(round(1.0 * t))
        for outcomes in (base, cand):
            outcomes["request-count"] = Observed(5.0 * t)
            outcomes["requests-slower-than-5000ms"] = Observed(0.0)  # the p95's test reads it: never missing
        return snapshot(**{V1: base, V2: cand})

    trajectory, state = run(spec, data, 200)
    weights = candidate_weights(trajectory)
    assert len(state.history) == state.iteration  # the whole run is in the history
    decided_at = next(i for i, h in enumerate(state.history) if h["winner"] == V2)
    assert set(weights[:decided_at]) == {0}  # no winner yet: all on the baseline, no exploration
    assert weights[decided_at:decided_at + 2] == [50, 100]  # then to the winner, 50 points at a time
    assert (state.stage, state.promoted) == (COMPLETED, V2)
