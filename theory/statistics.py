"""Monte Carlo with stated error rates.

Every statistical claim bounds its false-failure probability (the chance that
a correct implementation fails the check because of sampling noise) by at most
``1e-6``, from the exact variance of what it averages. The bound must hold for
heavy-tailed terms too, so the default estimator is the median of means:

    split n samples into g groups of b; each group mean is off by more than
    t = 2 sigma / sqrt(b) with probability <= 1/4 (Chebyshev); the median is
    off only if at least g/2 groups are, which by Hoeffding's inequality has
    probability <= exp(-g/8). Hence g = ceil(8 ln(1/delta)) groups.

References
----------
Nemirovsky & Yudin 1983, *Problem Complexity and Method Efficiency in
Optimization* (median of means); Lugosi & Mendelson 2019, "Mean estimation and
regression under heavy-tailed distributions: a survey", Found. Comput. Math.,
Theorem 2 (the exp(-g/8) form used here with Chebyshev inside each group).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The largest false-failure probability any statistical claim may have.
MAX_FALSE_FAILURE = 1e-6


@dataclass(frozen=True)
class MeanTest:
    """Outcome of testing that samples have a given mean."""

    estimate: float
    expected: float
    halfwidth: float
    samples: int
    groups: int
    delta: float
    method: str

    @property
    def interval(self) -> tuple[float, float]:
        return (self.estimate - self.halfwidth, self.estimate + self.halfwidth)

    @property
    def passed(self) -> bool:
        return bool(abs(self.estimate - self.expected) <= self.halfwidth)

    @property
    def error(self) -> float:
        return abs(self.estimate - self.expected)

    def to_json(self) -> dict:
        return {"estimate": self.estimate, "analytic": self.expected,
                "interval": list(self.interval), "halfwidth": self.halfwidth,
                "samples": self.samples, "groups": self.groups,
                "false_failure_probability": self.delta, "method": self.method}


def mom_groups(delta: float = MAX_FALSE_FAILURE) -> int:
    """Number of groups so that the median of means fails with probability <= delta."""
    if not 0 < delta < 1:
        raise ValueError(f"delta: expected a probability in (0, 1), got {delta}")
    return math.ceil(8.0 * math.log(1.0 / delta))


def median_of_means(samples: np.ndarray, groups: int) -> float:
    """Median of the means of ``groups`` equal consecutive groups (remainder dropped)."""
    samples = np.asarray(samples, dtype=np.float64).ravel()
    b = samples.size // groups
    if b < 1:
        raise ValueError(f"samples: need at least {groups} samples for {groups} groups, "
                         f"got {samples.size}")
    means = samples[: b * groups].reshape(groups, b).mean(axis=1)
    return float(np.median(means))


def test_mean(samples, expected: float, variance: float, *,
              delta: float = MAX_FALSE_FAILURE) -> MeanTest:
    """Test ``E[samples] == expected`` knowing the exact per-sample variance.

    Parameters
    ----------
    samples : array_like
        Independent draws.
    expected : float
        The analytic mean.
    variance : float
        The exact variance of one draw (from the theory, never estimated).
    delta : float
        The false-failure probability, at most :data:`MAX_FALSE_FAILURE`.

    Returns
    -------
    MeanTest
        ``passed`` iff the median of means lies within ``2 sigma / sqrt(b)``
        of ``expected``.
    """
    if delta > MAX_FALSE_FAILURE:
        raise ValueError(f"delta: at most {MAX_FALSE_FAILURE}, got {delta}")
    if not variance >= 0 or not math.isfinite(variance):
        raise ValueError(f"variance: expected a finite value >= 0, got {variance}")
    samples = np.asarray(samples, dtype=np.float64).ravel()
    g = mom_groups(delta)
    b = samples.size // g
    estimate = median_of_means(samples, g)
    halfwidth = 2.0 * math.sqrt(variance / b)
    return MeanTest(estimate, float(expected), halfwidth, b * g, g, delta,
                    "median of means (Chebyshev per group, Hoeffding across groups)")


test_mean.__test__ = False  # not a pytest test despite the name


def hoeffding_tail(n: int, deviation: float) -> float:
    """Hoeffding's bound on a mean of ``n`` independent ``[0, 1]`` variables falling short.

    ``Pr[mean <= E mean - deviation] <= exp(-2 n deviation^2)`` (one-sided).

    Parameters
    ----------
    n : int
        Number of independent variables, ``n >= 1``.
    deviation : float
        The shortfall ``> 0`` (a shortfall ``<= 0`` gives the trivial bound 1).

    Returns
    -------
    float
        The bound, in ``(0, 1]``.

    References
    ----------
    Hoeffding 1963, "Probability Inequalities for Sums of Bounded Random
    Variables", JASA 58, Theorem 1 (Eq. 2.3).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n: expected an integer, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n}")
    deviation = float(deviation)
    if not math.isfinite(deviation):
        raise ValueError(f"deviation: expected a finite number, got {deviation}")
    if deviation <= 0:
        return 1.0
    return math.exp(-2.0 * n * deviation * deviation)
