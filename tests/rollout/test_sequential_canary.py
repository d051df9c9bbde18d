"""The `sequential` algorithm under Canary: no reward test, the candidate wins by meeting its objectives."""

from __future__ import annotations

from rollout.core.outcomes import Observed, Snapshot
from rollout.core.state import COMPLETED, FAILED
from tests.rollout.factories import healthy, seed_spec, snapshot
from tests.rollout.test_engine import V1, V2, candidate_weights, run


def canary_data(error_rate: float, look: int) -> Snapshot:
    """Look `look`'s cumulative readings: 2000 new requests per version per look."""
    base, cand = healthy(0), healthy(0, error_rate=error_rate)
    for outcomes in (base, cand):
        outcomes["request-count"] = Observed(2000.0 * (look + 1))
        outcomes["requests-slower-than-5000ms"] = Observed(0.0)
    return snapshot(**{V1: base, V2: cand})


def test_a_feasible_candidate_climbs_within_the_caps_and_is_promoted_at_the_end() -> None:
    spec = seed_spec(algorithm="sequential", testingPattern="Canary", rewards=[], iterationsPerLoop=6)
    trajectory, state = run(spec, lambda i, s: canary_data(0.0, i), 6)
    assert candidate_weights(trajectory) == [10, 20, 30, 40, 50, 100]
    assert (state.stage, state.winner, state.promoted) == (COMPLETED, V2, V2)
    assert "decided by the sequential test" not in state.messages[0]  # no reward test: it runs its course


def test_a_candidate_whose_error_rate_is_surely_above_the_limit_is_rolled_back() -> None:
    """Changed with issue 16: a share's test needs 3 looks with new requests (one look cannot tell a burst
    from a breach) and the candidate is judged against the baseline within looks: 20% errors on 2000
    requests a look, far above 1% and the baseline's 0, are confirmed within a few looks."""
    spec = seed_spec(algorithm="sequential", testingPattern="Canary", rewards=[], iterationsPerLoop=12)
    trajectory, state = run(spec, lambda i, s: canary_data(0.2, i), 12)
    weights = candidate_weights(trajectory)
    assert weights[:3] == [10, 20, 0]  # held back at look 3, rolled back once confirmed
    assert state.stage == FAILED
    assert "iris-v2 broke error-rate <= 0.01" in state.messages[0]
