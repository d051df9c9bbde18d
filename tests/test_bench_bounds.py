"""Wald's floor (`benchmarks.bounds`): the figure quoted beside the broken and slow targets."""

from __future__ import annotations

import math
import random

import pytest

from benchmarks.bounds import at_the_limit, kl, least_requests, per_request_kl
from benchmarks.world import P95_LIMIT, Truth


def test_the_floor_for_the_broken_candidate_is_what_the_formula_gives_by_hand() -> None:
    divergence = 0.03 * math.log(0.03 / 0.001) + 0.97 * math.log(0.97 / 0.999)
    assert per_request_kl(Truth("bad", 1.0, error_rate=0.03), Truth("good", 1.0)) == pytest.approx(divergence)
    by_hand = (0.99 * math.log(0.99 / 0.01) + 0.01 * math.log(0.01 / 0.99)) / divergence
    assert least_requests(divergence) == pytest.approx(by_hand)
    assert 61 < by_hand < 62


def test_wald_s_own_test_needs_at_least_the_floor_and_not_much_more() -> None:
    """The sequential probability ratio test is the rule that comes closest; simulated, its mean sample
    size on the bad candidate sits just above the floor, and its error rates are about 1% each way."""
    good, bad, a, b = 0.001, 0.03, 0.01, 0.01
    upper, lower = math.log((1 - b) / a), math.log(b / (1 - a))
    step = {True: math.log(bad / good), False: math.log((1 - bad) / (1 - good))}

    def run(p: float, rng: random.Random) -> tuple[int, bool]:
        llr, n = 0.0, 0
        while lower < llr < upper:
            n += 1
            llr += step[rng.random() < p]
        return n, llr >= upper

    rng = random.Random(11)
    on_bad = [run(bad, rng) for _ in range(3000)]
    on_good = [run(good, rng) for _ in range(3000)]
    mean = sum(n for n, _ in on_bad) / len(on_bad)
    floor = least_requests(kl((bad, 1 - bad), (good, 1 - good)), a, b)
    assert floor <= mean <= 1.5 * floor
    assert sum(cut for _, cut in on_bad) / 3000 >= 0.98
    assert sum(cut for _, cut in on_good) / 3000 <= 0.02


def test_a_version_at_the_limit_has_its_p95_exactly_there_and_the_slow_floor_is_larger_against_it() -> None:
    slow = Truth("slow", 1.0, median_ms=1000.0, sigma=1.3)
    limit = at_the_limit(slow)
    assert limit.p95_ms == pytest.approx(P95_LIMIT, rel=1e-4) and limit.sigma == slow.sigma
    assert least_requests(per_request_kl(slow, limit)) > 20 * least_requests(per_request_kl(slow, Truth("h", 1.0)))
