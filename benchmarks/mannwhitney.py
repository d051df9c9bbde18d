"""Mann-Whitney U test, one-sided, normal approximation with the tie correction (as Kayenta's judge uses it)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def mann_whitney_p(x: Sequence[float], y: Sequence[float]) -> float:
    """P-value for "x tends to be larger than y" (one-sided); 1.0 when either sample is empty.

    Ranks the pooled samples (ties get their mean rank), U = rank sum of x - n(n+1)/2, and compares
    U with its null mean nm/2 and variance nm/12 ((n+m+1) - sum(t^3 - t)/((n+m)(n+m-1))), with a
    continuity correction of 1/2.

    >>> round(mann_whitney_p([5, 6, 7], [1, 2, 3]), 3)
    0.04
    """
    n, m = len(x), len(y)
    if not n or not m:
        return 1.0
    pooled = sorted([(v, 0) for v in x] + [(v, 1) for v in y])
    ranks_x, ties, i = 0.0, 0.0, 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        mean_rank = (i + j) / 2 + 1
        ranks_x += mean_rank * sum(1 for k in range(i, j + 1) if pooled[k][1] == 0)
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    u = ranks_x - n * (n + 1) / 2
    total = n + m
    var = n * m / 12 * ((total + 1) - ties / (total * (total - 1)))
    if var <= 0:
        return 1.0
    z = (u - n * m / 2 - 0.5) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2))
