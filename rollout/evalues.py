"""The statistics behind the `sequential` algorithm: e-values and probabilities, on plain numbers.

Nothing here knows about specs or snapshots; `rollout.sequential` decides with these. All of it is
closed form or a fixed numeric rule (no random draws), so the same numbers give the same results.
Logs of e-values are used throughout: they stay finite where the e-values would overflow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

ETA = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.55, 0.7, 1.0, 1.4)
"""Log rate ratios of the count test's mixture, on each side, with equal prior weights."""
SIGNED = ETA + tuple(-eta for eta in ETA)
"""The grid a pair's running log-likelihood ratios are kept on: "second higher", then "first higher"."""
LOGIT_SHIFTS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
"""Alternatives of a proportion's test: log-odds beyond the limit, equal prior weights."""
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


def pair_log_e(logs: Sequence[float]) -> tuple[float, float]:
    """Log e-values (second higher, first higher): each side's mixture with equal weights."""
    half, weight = len(ETA), math.log(len(ETA))
    return logsumexp(logs[:half]) - weight, logsumexp(logs[half:]) - weight


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
