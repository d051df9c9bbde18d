"""Stage 4: traffic weights, as integers summing to 100, deterministic.

Computed in exact fractions, so the same inputs always give the same integers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

from rollout.core.spec import DeploymentPattern, ExperimentSpec

EXPLORATION = Fraction(1, 10)
"""Share of traffic spread evenly over all versions (Iter8's 10%)."""


def baseline_only(spec: ExperimentSpec) -> dict[str, int]:
    """100% to the baseline, 0% to every candidate: at the start, and after a rollback."""
    return {name: (100 if i == 0 else 0) for i, name in enumerate(spec.version_names)}


def round_to_100(names: Sequence[str], shares: Sequence[Fraction]) -> dict[str, int]:
    """Largest-remainder rounding of percentages that sum to 100.

    Ties on the remainder go to the version listed first (the baseline before candidates), so
    the result never depends on chance.

    >>> round_to_100(["a", "b", "c"], [Fraction(100, 3)] * 3)
    {'a': 34, 'b': 33, 'c': 33}
    """
    floors = [int(s) for s in shares]  # shares are >= 0, so int() is floor
    left = 100 - sum(floors)
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return dict(zip(names, floors, strict=True))


def cap_candidates(spec: ExperimentSpec, old: Mapping[str, int], target: Sequence[Fraction]) -> list[Fraction]:
    """Hold each candidate within its caps; whatever it may not take goes to the baseline.

    A candidate may rise by at most `maxCandidateWeightIncrement` per iteration and never above
    `maxCandidateWeight`; decreases are not limited.
    """
    shares = list(target)
    for i in range(1, len(shares)):
        previous = old.get(spec.versions[i].name, 0)
        excess = max(Fraction(0),
                     shares[i] - previous - spec.max_candidate_weight_increment,
                     shares[i] - spec.max_candidate_weight)
        shares[i] -= excess
        shares[0] += excess
    return shares


def progressive_weights(spec: ExperimentSpec, old: Mapping[str, int], best: Sequence[str]) -> dict[str, int]:
    """Iter8 v2's Progressive weights.

    exploration gives each of n versions 1/n; exploitation gives the best versions 1/|best| each
    (all to the baseline when there is none); the mix is 10% exploration + 90% exploitation, then
    candidates are capped (see `cap_candidates`) and the result rounded.

    Worked example, the seed's two versions with the candidate best, old weights 100/0, caps 100
    and 10: mix = baseline 0.1*50 = 5, candidate 0.1*50 + 0.9*100 = 95; the candidate may rise by
    10 only, so excess = 95 - 0 - 10 = 85 moves to the baseline: 90/10. From 90/10 it is 80/20, and
    so on until 10/90; from there the mix itself (5/95) is within the caps: 5/95.
    """
    names = spec.version_names
    n = len(names)
    if spec.deployment_pattern is DeploymentPattern.FIXED_SPLIT:
        return {name: int(old.get(name, 0)) for name in names}
    exploit = [Fraction(0)] * n
    if best:
        for name in best:
            exploit[names.index(name)] = Fraction(1, len(best))
    else:
        exploit[0] = Fraction(1)
    if spec.deployment_pattern is DeploymentPattern.BLUE_GREEN:
        return round_to_100(names, [100 * e for e in exploit])
    mix = [100 * (EXPLORATION / n + (1 - EXPLORATION) * e) for e in exploit]
    return round_to_100(names, cap_candidates(spec, old, mix))
