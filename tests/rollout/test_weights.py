"""Weights: integers summing to 100, within caps, never raised by more than the increment, deterministic."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from rollout.core.validation import parse_experiment
from rollout.core.weights import progressive_weights, round_to_100
from tests.rollout.factories import seed_experiment


def spec_with(n: int, cap: int, increment: int):  # type: ignore[no-untyped-def]
    data = seed_experiment(maxCandidateWeight=cap, maxCandidateWeightIncrement=increment)
    data["versions"] = [{"name": f"v{i}", "variables": {"ns": f"ns{i}", "sid": "iris", "predictor": "default"}}
                        for i in range(n)]
    return parse_experiment(data)


@st.composite
def scenarios(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(2, 6))
    cap = draw(st.integers(0, 100))
    increment = draw(st.integers(0, 100))
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=n - 1, max_size=n - 1)))
    old_values = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    names = [f"v{i}" for i in range(n)]
    best = draw(st.lists(st.sampled_from(names), unique=True, max_size=n))
    return spec_with(n, cap, increment), dict(zip(names, old_values, strict=True)), best


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_progressive_weights_properties(case) -> None:  # type: ignore[no-untyped-def]
    spec, old, best = case
    new = progressive_weights(spec, old, best)
    assert all(isinstance(w, int) for w in new.values())
    assert sum(new.values()) == 100
    assert all(w >= 0 for w in new.values())
    for name in spec.version_names[1:]:
        assert new[name] <= max(spec.max_candidate_weight, 0) or new[name] <= old[name]
        assert new[name] - old[name] <= spec.max_candidate_weight_increment
    assert progressive_weights(spec, dict(old), list(best)) == new


@given(st.lists(st.fractions(min_value=0, max_value=100), min_size=1, max_size=8))
def test_round_to_100_keeps_the_sum_and_stays_within_one(shares: list[Fraction]) -> None:
    total = sum(shares)
    if total == 0:
        return
    scaled = [s * 100 / total for s in shares]
    names = [f"v{i}" for i in range(len(shares))]
    rounded = round_to_100(names, scaled)
    assert sum(rounded.values()) == 100
    assert all(abs(rounded[n] - s) < 1 for n, s in zip(names, scaled, strict=True))


def test_rounding_ties_go_to_the_version_listed_first() -> None:
    assert round_to_100(["b", "a"], [Fraction(101, 2), Fraction(99, 2)]) == {"b": 51, "a": 49}
    assert round_to_100(["a", "b", "c"], [Fraction(100, 3)] * 3) == {"a": 34, "b": 33, "c": 33}
