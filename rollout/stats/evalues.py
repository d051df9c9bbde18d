"""The statistics behind the `sequential` algorithm: e-values and probabilities, on plain numbers.

Nothing here knows about specs or snapshots; `rollout.stats.sequential` decides with these. All of it is
closed form or a fixed numeric rule (no random draws), so the same numbers give the same results.
Logs of e-values are used throughout: they stay finite where the e-values would overflow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

ETA = (0.04, 0.07, 0.1, 0.14, 0.2, 0.28, 0.4, 0.57, 0.8, 1.2)
"""Log rate ratios of the count test's mixture, on each side (a 4% to 230% higher rate)."""
ETA_WEIGHTS = (0.01, 0.02, 0.04, 0.07, 0.15, 0.22, 0.22, 0.15, 0.08, 0.04)
"""Prior weights of ETA (sum 1): 74% on the 22% to 77% differences a progressive rollout is run to
find, 11% on 10% to 15%, 3% below and 12% above; a discrete mixture with any fixed weights is exactly
valid. Against PRIOR_1 it decides the seed's 43% difference about 10% sooner and a 10% difference
about 15% later (`make bench-decisions`)."""
PRIOR = 2
"""Version of ETA_WEIGHTS, kept in a pair's evidence: an experiment keeps the prior it started with."""
PRIOR_1 = (0.04, 0.07, 0.1, 0.12, 0.14, 0.14, 0.13, 0.11, 0.09, 0.06)
"""The weights before PRIOR 2 (evidence without a prior version): a mixture stays a test martingale
only if its weights do not change while it runs."""
PRIORS = {1: PRIOR_1, PRIOR: ETA_WEIGHTS}
"""Prior weights by version; evidence without a (known) version was started under 1."""
SIGNED = ETA + tuple(-eta for eta in ETA)
"""The grid a pair's running log-likelihood ratios are kept on: "second higher", then "first higher"."""
LOGIT_SHIFTS = (0.25, 0.5, 0.8, 1.1, 1.5, 2.0, 3.0)
"""Alternatives of a proportion's test: log-odds beyond the limit (1.1: three times a 1% limit)."""
BETS = (0.1, 0.25, 0.5, 0.75, 0.9)
"""Fractions of wealth bet on "the mean is above the limit" in the test on batch means."""
MEAN_PRIOR = 0.2
"""Prior scale of a difference of means, in standard deviations of one sample."""


def logsumexp(xs: Sequence[float]) -> float:
    top = max(xs)
    return top + math.log(sum(math.exp(x - top) for x in xs))


def add_look(logs: list[float], y_first: float, y_second: float, ratio: float) -> None:
    """Add one look to a pair's running log-likelihood ratios (on SIGNED), in place.

    Given the look's y_first + y_second events, y_second is Binomial(m, r/(1+r)) under equal rates
    (r = exposure of second / exposure of first) and Binomial(m, theta*r/(1+theta*r)) when the second
    version's rate is theta times the first's; the log ratio of the two is
    y_second*log(theta) + m*log((1+r)/(1+theta*r)).
    """
    m = y_first + y_second
    for j, eta in enumerate(SIGNED):
        logs[j] += y_second * eta + m * math.log((1 + ratio) / (1 + math.exp(eta) * ratio))


def pair_log_e(logs: Sequence[float], weights: Sequence[float] = ETA_WEIGHTS) -> tuple[float, float]:
    """Log e-values (second higher, first higher): each side's mixture with `weights` (on ETA)."""
    half, prior = len(ETA), [math.log(w) for w in weights]
    return (logsumexp([x + w for x, w in zip(logs[:half], prior, strict=True)]),
            logsumexp([x + w for x, w in zip(logs[half:], prior, strict=True)]))


def projected_log_e(z: float, growth: float) -> float:
    """At most the log e-value a count comparison can reach by the end of the budget, optimistically.

    z is the comparison's z-score now and `growth` how many times its information will have grown
    at the end (remaining looks at the current pace). If the true effect were the optimistic end of
    a two-standard-error interval, z would end at (z + 2) sqrt(growth); a likelihood ratio at the
    best alternative then gives (z + 2)^2 growth / 2, and no mixture with weights summing to 1 gets
    more. A candidate for which this stays under the threshold cannot win within the budget.
    """
    return -math.inf if z + 2 <= 0 else (z + 2) ** 2 * growth / 2


def add_batch_mean(logs: list[float], batch_mean: float, limit: float) -> None:
    """Add one look's batch mean of a nonnegative quantity (a latency) to the bets on BETS, in place.

    Under "the mean is within `limit`" each look's batch mean M >= 0 has expectation <= limit, so
    1 + lam * (M / limit - 1) >= 1 - lam > 0 has expectation <= 1 for every lam in [0, 1): the
    product over looks is a test supermartingale, exactly, whatever the distribution (a betting
    e-process; Waudby-Smith and Ramdas, 2023). The mixture over BETS with equal weights is one too.
    """
    for j, lam in enumerate(BETS):
        logs[j] += math.log(1 + lam * (batch_mean / limit - 1))


def bets_log_e(logs: Sequence[float]) -> float:
    return logsumexp(list(logs)) - math.log(len(logs))


def half_normal_log_e(score: float, info: float, tau2: float) -> float:
    """Log of the mixture of exp(d*score - d^2*info/2) over d ~ N(0, tau2) restricted to d >= 0.

    With score = difference/variance and info = 1/variance this is the one-sided normal-mixture
    e-value for "the difference is above 0" (closed form; Robbins' mixture, one-sided).
    """
    scale = 1 + tau2 * info
    tail = 0.5 * math.erfc(-math.sqrt(tau2 / scale) * score / math.sqrt(2))
    return math.log(2) - 0.5 * math.log(scale) + tau2 * score**2 / (2 * scale) + math.log(max(tail, 1e-300))


def chi2_lower(df: float) -> float:
    """About the 5% quantile of chi-square(df) (Wilson-Hilferty), for an upper 95% bound on a variance."""
    root = 1 - 2 / (9 * df) - 1.645 * math.sqrt(2 / (9 * df))
    return df * max(root, 0.05) ** 3


def proportion_log_e(share: float, n: float, upper: float | None, lower: float | None) -> float:
    """Log e-value that samples in [0, 1] (mean `share` over `n`) break the limits.

    For p beyond the limit p0, (p/p0)^x ((1-p)/(1-p0))^(1-x) has expectation <= 1 for every sample
    x in [0, 1] with mean within p0 (it is convex in x), so the product over samples, mixed over a
    few p on a log-odds grid, is a test supermartingale. A limit of 0 or 1 is moved inside by 1e-9.
    """
    terms = []
    for limit, side in ((upper, 1), (lower, -1)):
        if limit is not None:
            p0 = min(max(limit, 1e-9), 1 - 1e-9)
            for shift in LOGIT_SHIFTS:
                p = 1 / (1 + (1 - p0) / p0 * math.exp(-side * shift))
                terms.append(share * n * math.log(p / p0) + (1 - share) * n * math.log((1 - p) / (1 - p0)))
    return logsumexp(terms) - math.log(len(terms)) if terms else 0.0


def probability_best(estimate: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """P(each version's value is the highest) for independent normals (mean, sd).

    Two versions: closed form. More: P(v best) = integral of phi(z) * prod over u of
    Phi((m_v + s_v z - m_u) / s_u), by Simpson's rule on 81 points over z in [-6, 6], normalised.
    """
    items = sorted(estimate.items())
    if len(items) < 2:
        return {name: 1.0 for name, _ in items}
    if len(items) == 2:
        (a, (ma, sa)), (b, (mb, sb)) = items
        pa = 0.5 * math.erfc(-(ma - mb) / math.sqrt(2 * (sa**2 + sb**2)))
        return {a: pa, b: 1 - pa}
    raw = {}
    for name, (m, s) in items:
        total = 0.0
        for k in range(81):
            z = -6 + 12 * k / 80
            x, density = m + s * z, math.exp(-z * z / 2)
            for other, (mo, so) in items:
                if other != name:
                    density *= 0.5 * math.erfc(-(x - mo) / (so * math.sqrt(2)))
            total += density * (1 if k in (0, 80) else 4 if k % 2 else 2)
        raw[name] = total
    norm = sum(raw.values()) or 1.0
    return {name: p / norm for name, p in raw.items()}
