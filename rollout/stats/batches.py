"""Looks as batches: what one look adds to a test, from cumulative `increase()` readings.

Prometheus' `increase(x[<since the start>])` is extrapolated, so a reading is not an integer and can
be a little lower than the last one although nothing was lost (counter resets inside the window are
already accounted for by `increase()` itself). Three rules follow, for every test:
- **Only new information.** A batch is the difference between this reading and the totals the test
  last used. Unless the sample size grew by at least one (`MIN_GROWTH`) the look adds nothing and the
  totals stay: the next look's batch spans both looks, so no reading is ever counted twice.
- **A drop is not a reset.** A total lower than the last one (a sum of nonnegative values, a count)
  is held like a look without growth, never rebased: rebasing would count the whole total again.
- **Within looks.** Two versions are compared on the batches of the same looks (stratified by look):
  a change of level both share (traffic, a drift of the reward) cancels in each look's difference,
  whatever the weights, so it can never make a winner.

`paired_log_e` is the stratified comparison of two versions' per-look means: the difference of the
batch means d_t has variance s^2/h_t (h_t = 1/(1/n_u + 1/n_v), s^2 the per-sample variance); the
per-sample variance is estimated from the spread of the d_t themselves (so a drift both versions
share does not inflate it, and clustered samples within a look do), bounded above at 95% (chi-square),
and no lower than `floor` (the binomial variance for shares). With these the normal mixture on
sum(h_t d_t) is an e-process as the number of looks grows (valid asymptotically, not exactly). The
prior scale is in units of that standard deviation, so multiplying every value by a constant (cents
for dollars) changes no e-value.
"""

from __future__ import annotations

import math

from rollout.stats.evalues import MEAN_PRIOR, chi2_lower, half_normal_log_e

MIN_GROWTH = 1.0
"""A look adds evidence only when its sample size grew by at least this (one request, one event)."""
PAIR_SIZE = 10
"""[n_u, t_u, n_v, t_v] totals last used, looks k, sum h, sum h d, sum h d^2, pooled n, pooled total."""


def grown(n0: float, n: float) -> bool:
    return n - n0 >= MIN_GROWTH


def paired_look(state: list[float], nu: float, tu: float, nv: float, tv: float, nonnegative: bool) -> bool:
    """Add one look of two versions (cumulative sample sizes n and totals t) to `state`, in place.

    False (state unchanged) when the look holds no new information for both: a sample size that did
    not grow by MIN_GROWTH, or (for sums of nonnegative values) a total that dropped.
    """
    nu0, tu0, nv0, tv0 = state[:4]
    dnu, dnv, dtu, dtv = nu - nu0, nv - nv0, tu - tu0, tv - tv0
    if not (grown(nu0, nu) and grown(nv0, nv)) or (nonnegative and (dtu < 0 or dtv < 0)):
        return False
    d, h = dtv / dnv - dtu / dnu, 1 / (1 / dnu + 1 / dnv)
    state[:4] = [nu, tu, nv, tv]
    state[4] += 1
    state[5] += h
    state[6] += h * d
    state[7] += h * d * d
    state[8] += dnu + dnv
    state[9] += dtu + dtv
    return True


def pooled_share(state: list[float]) -> float:
    return min(max(state[9] / state[8], 0.0), 1.0) if state[8] > 0 else 0.0


def paired_variance(state: list[float], floor: float) -> float | None:
    """An upper 95% bound on the per-sample variance, from the looks' differences; None before 2 looks."""
    k, h, hd, hd2 = state[4:8]
    if k < 2 or h <= 0:
        return None
    spread = max(hd2 - hd * hd / h, 0.0)
    return max(spread / chi2_lower(k - 1), floor, 1e-300)


def paired_log_e(state: list[float], floor: float) -> tuple[float, float, tuple[float, float] | None]:
    """Log e-values that v's mean is above u's and below it, and (difference, sd) of the estimate."""
    variance = paired_variance(state, floor)
    if variance is None:
        return 0.0, 0.0, None
    h, hd = state[5], state[6]
    score, info, tau2 = hd / variance, h / variance, MEAN_PRIOR**2 * variance
    estimate = (hd / h, math.sqrt(variance / h))
    return half_normal_log_e(score, info, tau2), half_normal_log_e(-score, info, tau2), estimate
