"""Exact Poisson and binomial draws from a seeded `random.Random`, in pure Python.

Both split the problem with an order statistic (Ahrens and Dieter's method, as in Knuth's TAOCP vol. 2,
3.4.1), so a draw costs O(log n) calls instead of O(n):
- Poisson(lam): the m-th arrival of a unit-rate process comes at Gamma(m). If it is after lam, the
  arrivals before lam are the first m-1 (uniform on [0, x]) that fall below lam: Binomial(m-1, lam/x);
  otherwise m arrivals are in and Poisson(lam - x) more follow.
- Binomial(n, p): the a-th smallest of n uniforms is Beta(a, n-a+1). If it is above p, the successes
  are among the a-1 below it: Binomial(a-1, p/x); otherwise those a are successes and the other n-a
  are uniform on [x, 1]: Binomial(n-a, (p-x)/(1-x)).
"""

from __future__ import annotations

import math
import random


def poisson(rng: random.Random, lam: float) -> int:
    count = 0
    while lam > 20:
        m = int(lam * 7 / 8)
        x = rng.gammavariate(m, 1.0)
        if x > lam:
            return count + binomial(rng, m - 1, lam / x)
        count += m
        lam -= x
    u, k, term = rng.random(), 0, math.exp(-lam)
    total = term
    while u > total and term > 0:
        k += 1
        term *= lam / k
        total += term
    return count + k


def binomial(rng: random.Random, n: int, p: float) -> int:
    count = 0
    while n > 24:
        a = n // 2 + 1
        x = rng.betavariate(a, n - a + 1)
        if x >= p:
            n, p = a - 1, p / x
        else:
            count += a
            n, p = n - a, (p - x) / (1 - x)
    return count + sum(1 for _ in range(n) if rng.random() < p)
