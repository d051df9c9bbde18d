"""The sequential algorithm: level under repeated looks, determinism, caps, and the right promotions."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollout.core.decision import Decision
from rollout.core.outcomes import Failed, NoData, Observed, Outcome, Snapshot
from rollout.core.spec import ExperimentSpec
from rollout.core.state import COMPLETED, FAILED, RUNNING, ExperimentState
from rollout.core.validation import SpecError, parse_experiment
from rollout.engine import iterate, start
from rollout.stats.sequential import sequential_decision
from tests.rollout.factories import seed_experiment

V1, V2, V3 = "iris-v1", "iris-v2", "iris-v3"
THIRD = {"name": V3, "variables": {"ns": "ns-third", "sid": "iris", "predictor": "default"}}


def spec_of(*, versions: int = 2, objectives: bool = True, **overrides: Any) -> ExperimentSpec:
    data = seed_experiment(**{"algorithm": "sequential", "iterationsPerLoop": 100,
                              **({} if objectives else {"objectives": []}), **overrides})
    if versions == 3:
        data["versions"] = [*data["versions"], THIRD]
    return parse_experiment(data)


def observed(feedback: float, requests: float | None = None, errors: float = 0.0) -> dict[str, Outcome]:
    """Cumulative values of one version; error-rate = errors / requests. Requests grow with the feedback by
    default: a look whose sample size did not grow adds no evidence to an objective's test."""
    requests = 100.0 + 10 * feedback if requests is None else requests
    return {
        "requests-slower-than-5000ms": Observed(0.0),
        "user-engagement": Observed(feedback),
        "request-count": Observed(requests),
        "error-count": Observed(errors),
        "error-rate": Observed(errors / requests) if requests else NoData("no requests"),
        "mean-latency": Observed(40.0) if requests else NoData("no requests"),
        "95th-percentile-tail-latency": Observed(120.0) if requests else NoData("no requests"),
    }


def snap(**versions: dict[str, Outcome]) -> Snapshot:
    return {(m, v.replace("_", "-")): o for v, outs in versions.items() for m, o in outs.items()}


def poisson(rng: random.Random, lam: float) -> int:
    """Knuth's multiplication method: fine for the small means these tests draw."""
    limit, k, product = math.exp(-lam), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def state_after(decision: Decision, state: ExperimentState) -> ExperimentState:
    return state.evolve(weights=decision.weights, evidence=decision.evidence, iteration=state.iteration + 1)


# -- level under repeated looks ---------------------------------------------------------------------

def _null_runs(runs: int, looks: int, rate: float) -> tuple[float, float]:
    """Share of null runs (equal rates) in which the sequential test ever promotes the candidate, and in
    which a naive one-sided z-test at level 5% on the cumulative counts ever rejects, on the same data."""
    spec = spec_of(objectives=False)
    sequential = naive = 0
    for run in range(runs):
        rng = random.Random(run)
        state = start(spec, 0.0)
        totals = {V1: 0, V2: 0}
        promoted = rejected = False
        for _ in range(looks):
            for v in totals:
                totals[v] += poisson(rng, rate)
            decision = sequential_decision(spec, snap(iris_v1=observed(totals[V1]), iris_v2=observed(totals[V2])),
                                           state)
            state = state_after(decision, state)
            promoted = promoted or decision.winner.winner == V2
            n = totals[V1] + totals[V2]
            rejected = rejected or (n > 0 and (totals[V2] - n / 2) / math.sqrt(n / 4) > 1.645)
        sequential += promoted
        naive += rejected
    return sequential / runs, naive / runs


def test_sequential_test_keeps_its_level_under_repeated_looks_where_a_naive_test_does_not() -> None:
    sequential, naive = _null_runs(runs=400, looks=100, rate=10.0)
    assert sequential <= 0.05
    assert naive >= 0.2  # the same data, the same looks: a fixed-level test piles up false alarms
    assert naive > 4 * max(sequential, 0.01)


def test_level_holds_with_request_exposure_and_adaptive_weights() -> None:
    """Feedback follows traffic and the traffic follows the algorithm's own weights: still valid."""
    spec = spec_of(objectives=False, sequential={"exposure": "requests"})
    promoted = 0
    for run in range(200):
        rng = random.Random(10_000 + run)
        state = start(spec, 0.0)
        requests, feedback = {V1: 0, V2: 0}, {V1: 0, V2: 0}
        for _ in range(60):
            for v in requests:
                new = poisson(rng, 50 * state.weights[v] / 100)
                requests[v] += new
                feedback[v] += sum(rng.random() < 0.3 for _ in range(new))
            decision = sequential_decision(spec, snap(iris_v1=observed(feedback[V1], requests[V1]),
                                                      iris_v2=observed(feedback[V2], requests[V2])), state)
            state = state_after(decision, state)
            if decision.winner.winner is not None:
                promoted += decision.winner.winner == V2
                break
    assert promoted / 200 <= 0.05


# -- determinism and evidence ------------------------------------------------------------------------

def _trajectory(seed: int) -> list[dict[str, Any]]:
    spec = spec_of(versions=3, objectives=True, sequential={"exposure": "requests"})
    rng = random.Random(seed)
    state = start(spec, 0.0)
    totals = {v: [0, 0, 0] for v in (V1, V2, V3)}
    for look in range(1, 40):
        for v, q in zip(totals, (0.3, 0.25, 0.4), strict=True):
            new = poisson(rng, 20 * state.weights[v] / 100)
            totals[v][0] += sum(rng.random() < q for _ in range(new))
            totals[v][1] += new
        outcomes = {v.replace("-", "_"): observed(f, r) for v, (f, r, _) in totals.items()}
        state = iterate(spec, snap(**outcomes), state, 10.0 * look)
    return [state.to_outputs()]


def test_same_inputs_give_the_same_outputs() -> None:
    assert _trajectory(7) == _trajectory(7)
    spec = spec_of(versions=3)
    data = snap(iris_v1=observed(70, 500), iris_v2=observed(80, 400), iris_v3=observed(90, 100))
    state = start(spec, 0.0)
    assert sequential_decision(spec, data, state) == sequential_decision(spec, dict(data), state)


def test_evidence_is_plain_json_with_the_promised_keys() -> None:
    spec = spec_of()
    state = start(spec, 0.0)
    for look in range(1, 6):
        decision = sequential_decision(spec, snap(iris_v1=observed(7 * look), iris_v2=observed(10 * look)), state)
        state = state_after(decision, state)
    evidence = json.loads(json.dumps(decision.evidence, allow_nan=False))
    assert evidence["algorithm"] == "sequential" and evidence["alpha"] == 0.05
    assert set(evidence["eValue"]) == {V2} and evidence["eValue"][V2] > 1
    assert evidence["samples"] == {V1: 35, V2: 50}
    assert math.isclose(sum(evidence["probabilityBest"].values()), 1.0)
    assert evidence["probabilityBest"][V2] > 0.9


def test_the_tests_state_survives_the_resource_outputs_round_trip() -> None:
    """Outputs come back as JSON (ints may come back as floats): the next decision must not change."""
    spec = spec_of(sequential={"exposure": "requests"})
    state = start(spec, 0.0)
    for look in range(1, 6):
        state = iterate(spec, snap(iris_v1=observed(7 * look, 40 * look), iris_v2=observed(9 * look, 10 * look)),
                        state, 10.0 * look)
    outputs = json.loads(json.dumps(state.to_outputs(), allow_nan=False), parse_int=float)
    restored = ExperimentState.from_outputs(outputs)
    data = snap(iris_v1=observed(42, 240), iris_v2=observed(54, 60))
    assert sequential_decision(spec, data, restored) == sequential_decision(spec, data, state)


def test_an_experiment_keeps_the_prior_weights_it_started_with() -> None:
    """A mixture is a test martingale only with fixed weights: the prior's version is part of each reward
    test's fingerprint, and evidence of an older layout (no fingerprints, like the PRIOR 1 era's) is not
    continued under other weights: every test restarts, and the restart is recorded."""
    from rollout.stats.evalues import ETA_WEIGHTS, pair_log_e

    spec = spec_of()
    state = start(spec, 0.0)
    for look in range(1, 9):
        decision = sequential_decision(spec, snap(iris_v1=observed(7 * look), iris_v2=observed(10 * look)), state)
        state = state_after(decision, state)
    logs = decision.evidence["running"]["tests"][f"reward|{V1}|{V2}"]["state"][4:]
    assert decision.evidence["eValue"][V2] == pytest.approx(math.exp(pair_log_e(logs, ETA_WEIGHTS)[0]))
    legacy = {**decision.evidence, "running": {"pairs": {f"{V1}|{V2}": logs}, "totals": {}}}
    again = sequential_decision(spec, snap(iris_v1=observed(63), iris_v2=observed(90)), state.evolve(evidence=legacy))
    assert again.evidence["restarted"] and again.evidence["eValue"][V2] == 1.0


# -- caps (property tests) ---------------------------------------------------------------------------

@st.composite
def situations(draw: st.DrawFn) -> tuple[ExperimentSpec, Snapshot, ExperimentState]:
    n = draw(st.integers(2, 3))
    spec = spec_of(versions=n, maxCandidateWeight=draw(st.integers(0, 100)),
                   maxCandidateWeightIncrement=draw(st.integers(0, 100)),
                   sequential={"explorationFloor": draw(st.integers(0, 20)),
                               "exposure": draw(st.sampled_from(["time", "requests"]))})
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=n - 1, max_size=n - 1)))
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    old = dict(zip(spec.version_names, weights, strict=True))
    outcomes: Snapshot = {}
    for v in spec.version_names:
        requests = draw(st.integers(0, 2000))
        errors = draw(st.integers(0, requests))
        outcomes.update(snap(**{v: observed(draw(st.integers(0, 500)), requests, errors)}))
    return spec, outcomes, ExperimentState(stage=RUNNING, started_at=0.0, last_iteration_at=0.0, weights=old)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(situations())
def test_weights_are_integers_summing_to_100_within_the_caps_and_the_floor(
        case: tuple[ExperimentSpec, Snapshot, ExperimentState]) -> None:
    spec, data, state = case
    decision = sequential_decision(spec, data, state)
    weights = decision.weights
    assert list(weights) == list(spec.version_names)
    assert all(isinstance(w, int) and w >= 0 for w in weights.values())
    assert sum(weights.values()) == 100
    floor = spec.sequential.exploration_floor
    for v in spec.version_names[1:]:
        old = state.weights[v]
        assert weights[v] <= spec.max_candidate_weight
        assert weights[v] <= old + spec.max_candidate_weight_increment or weights[v] <= old
        held = not next(a for a in decision.assessments if a.version == v).feasible
        if v in decision.evidence.get("outOfPlay", []):
            assert weights[v] == 0  # beaten, broken or futile: its traffic goes back
        elif held and "decided" not in decision.evidence:
            assert weights[v] <= max(floor, 1, old)  # held back by an objective: floor / e-value**2 at most
        elif "decided" not in decision.evidence:
            assert weights[v] >= min(floor, old + spec.max_candidate_weight_increment, spec.max_candidate_weight)
    if "decided" not in decision.evidence:
        assert weights[V1] >= floor


# -- the right decisions on clear data ---------------------------------------------------------------

def _engine_run(spec: ExperimentSpec, data: Any, looks: int) -> ExperimentState:
    state = start(spec, 0.0)
    for look in range(1, looks + 1):
        state = iterate(spec, data(look, state), state, 10.0 * look)
    return state


def test_seed_rewards_promote_the_candidate_once_the_evidence_is_in() -> None:
    spec = spec_of(iterationsPerLoop=30)
    state = _engine_run(spec, lambda k, s: snap(iris_v1=observed(7 * k, 50 * k), iris_v2=observed(10 * k, 50 * k)), 30)
    first = next(h["iteration"] for h in state.history if h["winner"] == V2)
    assert 5 <= first <= 25  # not on the first noisy looks, not never
    assert (state.stage, state.promoted) == (COMPLETED, V2)
    candidate = [h["weights"][V2] for h in state.history]
    assert candidate[:3] == [10, 20, 30] and candidate[-2] == 100


def test_a_clearly_worse_candidate_is_decided_against_and_drained() -> None:
    spec = spec_of()
    state = _engine_run(spec, lambda k, s: snap(iris_v1=observed(10 * k), iris_v2=observed(5 * k)), 20)
    assert state.winner == V1 and state.weights == {V1: 100, V2: 0}


def test_three_versions_promote_the_best() -> None:
    spec = spec_of(versions=3)
    state = _engine_run(spec, lambda k, s: snap(iris_v1=observed(10 * k), iris_v2=observed(7 * k),
                                                 iris_v3=observed(15 * k)), 30)
    assert state.winner == V3
    assert state.weights[V3] > state.weights[V1] > 0 or state.weights[V3] == 100


def test_equal_versions_get_no_winner() -> None:
    spec = spec_of()
    state = _engine_run(spec, lambda k, s: snap(iris_v1=observed(10 * k), iris_v2=observed(10 * k)), 30)
    assert state.winner is None
    assert state.weights[V2] >= spec.sequential.exploration_floor


def looks(spec: ExperimentSpec, per_look: list[tuple[tuple[float, float, float], tuple[float, float, float]]],
          state: ExperimentState | None = None) -> tuple[Decision, ExperimentState]:
    """Run looks of (feedback, requests, errors) increments per version; the readings are cumulative."""
    state = state or start(spec, 0.0)
    totals = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    decision = None
    for look in per_look:
        for total, step in zip(totals, look, strict=True):
            total[:] = [a + b for a, b in zip(total, step, strict=True)]
        decision = sequential_decision(spec, snap(iris_v1=observed(*totals[0]), iris_v2=observed(*totals[1])), state)
        state = state_after(decision, state)
    assert decision is not None
    return decision, state


def test_one_noisy_error_reading_is_no_rollback_but_a_confident_breach_is() -> None:
    """Changed with issue 16: one look's errors are no evidence (a burst looks the same); a share's test
    needs 3 looks with new requests, and a candidate is judged against what the baseline suffered."""
    spec = spec_of()
    noisy, _ = looks(spec, [((7, 500, 0), (10, 20, 1)), ((7, 500, 0), (10, 20, 0)), ((7, 500, 0), (10, 20, 0))])
    assert not noisy.assessments[1].rollback  # 1 error in 60 requests, in one look: not sure of anything
    sure, state = looks(spec, [((7, 500, 0), (10, 400, 20))] * 6)
    assert sure.assessments[1].rollback and "error-rate" in sure.assessments[1].broken[0]
    ended = iterate(spec, snap(iris_v1=observed(49, 3500), iris_v2=observed(70, 2800, 140)), state, 70.0)
    assert ended.stage == FAILED and ended.weights == {V1: 100, V2: 0}


def test_a_candidate_held_back_to_0_percent_is_kept_out_and_the_experiment_ends() -> None:
    """floor / e-value**2 under half a percent rounds to 0%: with no traffic nothing can clear the
    candidate, so it is out of play and the baseline is the decision, said in the reason."""
    spec = spec_of()
    decision, _ = looks(spec, [((7, 2000, 0), (10, 10, 1))] * 3)  # 1 of every 10 requests fails
    harm = decision.evidence["objectiveEValue"][V2]["error-rate"]
    assert spec.sequential.exploration_floor / harm**2 < 0.5
    assert decision.evidence["keptOut"] == [V2] and decision.weights == {V1: 100, V2: 0}
    assert decision.winner.winner == V1 and decision.final
    assert f"{V2} kept out: error-rate" in decision.winner.reason


def test_with_no_exploration_floor_a_version_without_data_still_gets_one_percent_and_is_not_kept_out() -> None:
    spec = spec_of(sequential={"explorationFloor": 0})
    state = start(spec, 0.0)
    first = sequential_decision(spec, snap(iris_v1=observed(7, 50), iris_v2=observed(0, 0)), state)
    assert "keptOut" not in first.evidence and not first.final
    assert first.weights == {V1: 99, V2: 1}  # no data yet: at 0% it could never be assessed
    leaning, _ = looks(spec, [((7, 2000, 0), (10, 10, 1))] * 3)
    assert "keptOut" not in leaning.evidence or leaning.weights == {V1: 100, V2: 0}


def _revenue_spec() -> ExperimentSpec:
    reward = {"name": "revenue", "query": "sum(revenue{ns=\"$ns\"}[${elapsedTime}s])", "sampleSize": "request-count"}
    data = seed_experiment(algorithm="sequential", iterationsPerLoop=60, objectives=[],
                           rewards=[{"metric": "revenue"}])
    data["metrics"] = [*data["metrics"], reward]
    return parse_experiment(data)


def _revenue_run(spec: ExperimentSpec, seed: int, draw: Any, looks: int) -> list[Decision]:
    """Per look, each version gets 5 to 50 new samples of draw(rng, version); cumulative means."""
    rng = random.Random(seed)
    state = start(spec, 0.0)
    sums = {V1: [0.0, 0], V2: [0.0, 0]}
    decisions = []
    for _ in range(looks):
        for v in sums:
            new = rng.choice([5, 20, 50])
            sums[v][0] += sum(draw(rng, v) for _ in range(new))
            sums[v][1] += new
        outcomes: dict[str, dict[str, Outcome]] = {v.replace("-", "_"): {"revenue": Observed(s / n), "request-count": Observed(float(n)),
                                          "user-engagement": Observed(0.0)} for v, (s, n) in sums.items()}
        decisions.append(sequential_decision(spec, snap(**outcomes), state))
        state = state_after(decisions[-1], state)
    return decisions


def test_gauge_rewards_use_a_test_on_means() -> None:
    decisions = _revenue_run(_revenue_spec(), 3, lambda rng, v: rng.gauss(10.0 if v == V1 else 12.0, 4.0), 40)
    assert all(d.winner.winner is None for d in decisions[:2])  # two batches: the variance is barely known
    assert decisions[-1].evidence["rewardTest"] == "means" and decisions[-1].winner.winner == V2


def test_means_test_keeps_its_level_on_skewed_null_data() -> None:
    spec = _revenue_spec()
    runs = [_revenue_run(spec, seed, lambda rng, v: rng.expovariate(0.1), 40) for seed in range(100)]
    assert sum(any(d.winner.winner == V2 for d in run) for run in runs) / len(runs) <= 0.05


def test_missing_request_counts_with_request_exposure_hold_without_promotion() -> None:
    spec = spec_of(sequential={"exposure": "requests"})
    state = ExperimentState(stage=RUNNING, started_at=0.0, last_iteration_at=0.0, weights={V1: 70, V2: 30})
    data = snap(iris_v1=observed(700, 1000), iris_v2=observed(1000, 1000))
    data[("request-count", V2)] = Failed("timeout")
    after = iterate(spec, data, state, 10.0)  # a failed query the tests read holds the iteration (issue 16)
    assert after.weights == {V1: 70, V2: 30} and after.winner is None and after.consecutive_errors == 1
    assert "request-count" in after.messages[0]


def test_request_exposure_needs_a_request_count_metric() -> None:
    with pytest.raises(SpecError, match=r"sequential\.exposure"):
        parse_experiment(seed_experiment(algorithm="sequential", requestCount=None,
                                         sequential={"exposure": "requests"}))
    with pytest.raises(SpecError, match=r"sequential\.exposure"):
        parse_experiment(seed_experiment(algorithm="sequential", sequential={"exposure": "weekly"}))
