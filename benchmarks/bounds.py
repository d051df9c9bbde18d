"""The least traffic any rule must send to a bad candidate to tell it from a good one (Wald's bound).

A rule that watches a candidate's requests and ends by cutting it (rollback, or keeping it out) or
keeping it is a sequential test of "good" against "bad". If it keeps a good candidate with
probability >= 1 - a and cuts a bad one with probability >= 1 - b, then on average it needs at least

    E_bad[N] >= ((1 - b) log((1 - b) / a) + b log(b / (1 - a))) / KL(bad || good)

of the bad candidate's requests (Wald, 1945; Siegmund, "Sequential Analysis", 1985, ch. 2), whatever
it does with them: weights, holds, probes. KL is per request, over everything a rule can read: the
error (Bernoulli) and the latency's histogram bucket (the simulated world draws them independently).
The bound is a floor for every contender, ours included: a rule that beats it on the bad candidate
must cut the good one more often than `a`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from benchmarks.world import P95_LIMIT, Truth


def kl(p: Sequence[float], q: Sequence[float]) -> float:
    """Kullback-Leibler divergence of two distributions on the same outcomes, in nats."""
    return sum(x * math.log(x / y) for x, y in zip(p, q, strict=True) if x > 0)


def per_request_kl(bad: Truth, good: Truth) -> float:
    """What one request tells `bad` from `good`: its error and its latency bucket."""
    errors = kl((bad.error_rate, 1 - bad.error_rate), (good.error_rate, 1 - good.error_rate))
    return errors + kl(bad.bucket_shares(), good.bucket_shares())


def least_requests(divergence: float, a: float = 0.01, b: float = 0.01) -> float:
    """Wald's floor on the bad candidate's requests, for error rates `a` (good cut) and `b` (bad kept)."""
    return ((1 - b) * math.log((1 - b) / a) + b * math.log(b / (1 - a))) / divergence


def at_the_limit(bad: Truth) -> Truth:
    """A version with `bad`'s latency spread whose p95 is exactly the limit (within its objective)."""
    return Truth(f"{bad.name}-at-limit", bad.reward, bad.error_rate,
                 P95_LIMIT / math.exp(1.6449 * bad.sigma), bad.sigma)
