from __future__ import annotations

from collections import Counter

import pytest

from localenv.balancer import SmoothWeightedRoundRobin


def test_docstring_sequence() -> None:
    picker = SmoothWeightedRoundRobin([("a", 3), ("b", 1)])
    assert [picker.pick() for _ in range(8)] == ["a", "a", "b", "a", "a", "a", "b", "a"]


@pytest.mark.parametrize(("a", "b"), [(90, 10), (70, 30), (50, 50), (5, 95), (100, 0), (0, 100), (1, 99)])
def test_every_window_of_a_hundred_picks_holds_the_weights_exactly(a: int, b: int) -> None:
    picker = SmoothWeightedRoundRobin([("v1", a), ("v2", b)])
    picks = [picker.pick() for _ in range(300)]
    for start in range(0, 300, 100):
        assert Counter(picks[start:start + 100]) == Counter({k: n for k, n in (("v1", a), ("v2", b)) if n})


def test_picks_are_spread_not_in_blocks() -> None:
    picker = SmoothWeightedRoundRobin([("v1", 90), ("v2", 10)])
    picks = [picker.pick() for _ in range(100)]
    assert all(Counter(picks[i:i + 10])["v2"] == 1 for i in range(0, 100, 10))


def test_all_zero_weights_pick_nothing_and_reset_takes_new_weights() -> None:
    picker = SmoothWeightedRoundRobin([("v1", 0), ("v2", 0)])
    assert picker.pick() is None
    picker.reset([("v1", 1), ("v2", 1)])
    assert [picker.pick() for _ in range(4)] == ["v1", "v2", "v1", "v2"]


def test_negative_weight_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        SmoothWeightedRoundRobin([("v1", -1)])
