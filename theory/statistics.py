"""Monte Carlo with stated error rates.

Every statistical claim bounds its false-failure probability (the chance that
a correct implementation fails the check because of sampling noise) by at most
``1e-6``, from the exact variance of what it averages. The bound must hold for
heavy-tailed terms too, so the default estimator is the median of means:

    split n samples into g groups of b; each group mean is off by more than
    t = 2 sigma / sqrt(b) with probability <= 1/4 (Chebyshev); the median is
    off only if at least g/2 groups are, which by Hoeffding's inequality has
    probability <= exp(-g/8). Hence g = ceil(8 ln(1/delta)) groups.

When every draw lies in a range ``[a, b]`` known in advance (a bounded error,
a normalised output), :func:`empirical_bernstein_interval` gives a confidence
interval without any variance from the theory: Maurer & Pontil's empirical
Bernstein bound, whose price is a term ``7 (b - a) ln(4/delta) / (3 (n - 1))``.
:func:`test_ratio` turns two such intervals into one for a ratio of means.

A statistical claim gathers its tests (:func:`mean_test`, a :class:`StatTest`
each, or a :class:`RatioStatTest`) and its exact side conditions into one
:class:`~transformer_theory.theory.claim.Evidence` with
:func:`statistical_evidence`; :func:`mc_size` sizes a median of means whose
tests share the claim's error budget by the union bound.

References
----------
Maurer & Pontil 2009, "Empirical Bernstein Bounds and Sample Variance
Penalization", COLT (arXiv:0907.3740), Theorem 4 (the empirical Bernstein
interval).
Nemirovsky & Yudin 1983, *Problem Complexity and Method Efficiency in
Optimization* (median of means); Lugosi & Mendelson 2019, "Mean estimation and
regression under heavy-tailed distributions: a survey", Found. Comput. Math.,
Theorem 2 (the exp(-g/8) form used here with Chebyshev inside each group).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .claim import Evidence

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


# --------------------------------------------------------------------------
# bounded samples: the empirical Bernstein interval and ratios of means
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class BoundedMeanInterval:
    """A confidence interval for the mean of independent draws with a known range.

    Attributes
    ----------
    estimate : float
        The sample mean.
    lower, upper : float
        The interval; it contains the true mean with probability at least
        ``1 - delta`` (and is clipped to ``value_range``, where the mean lies).
    samples : int
        Number of draws ``n``.
    sample_variance : float
        The unbiased sample variance ``V_n`` (``ddof=1``).
    value_range : (float, float)
        The interval ``[a, b]`` every draw lies in (known before sampling).
    delta : float
        The two-sided non-coverage probability.
    method : str
    """

    estimate: float
    lower: float
    upper: float
    samples: int
    sample_variance: float
    value_range: tuple[float, float]
    delta: float
    method: str

    @property
    def interval(self) -> tuple[float, float]:
        return (self.lower, self.upper)

    @property
    def halfwidth(self) -> float:
        """The larger distance from the estimate to an end of the interval."""
        return max(self.estimate - self.lower, self.upper - self.estimate)

    def contains(self, value: float) -> bool:
        return bool(self.lower <= value <= self.upper)

    def to_json(self) -> dict:
        return {"estimate": self.estimate, "interval": [self.lower, self.upper],
                "halfwidth": self.halfwidth, "samples": self.samples,
                "sample_variance": self.sample_variance,
                "value_range": list(self.value_range),
                "false_failure_probability": self.delta, "method": self.method}


def _check_delta(delta) -> float:
    delta = float(delta)
    if not 0 < delta < 1:
        raise ValueError(f"delta: expected a probability in (0, 1), got {delta}")
    return delta


def _check_range(value_range, name: str) -> tuple[float, float]:
    try:
        a, b = (float(t) for t in value_range)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a pair (a, b) of numbers, got {value_range!r}") \
            from None
    if not (math.isfinite(a) and math.isfinite(b) and a < b):
        raise ValueError(f"{name}: expected finite a < b, got ({a}, {b})")
    return a, b


def _bounded_samples(samples, value_range: tuple[float, float], name: str) -> np.ndarray:
    x = np.asarray(samples)
    if x.dtype == np.bool_ or x.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False).ravel()
    if x.size < 2:
        raise ValueError(f"{name}: expected at least 2 draws, got {x.size}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    a, b = value_range
    lo, hi = float(np.min(x)), float(np.max(x))
    if lo < a or hi > b:
        raise ValueError(f"{name}: expected every draw in [{a}, {b}], got values in "
                         f"[{lo}, {hi}]")
    return x


def empirical_bernstein_halfwidth(n: int, sample_variance: float, width: float,
                                  delta: float) -> float:
    """Half-width of the two-sided empirical Bernstein interval.

    ``sqrt(2 V_n ln(4/delta) / n) + 7 (b - a) ln(4/delta) / (3 (n - 1))``:
    Maurer & Pontil's Theorem 4 (one-sided, ``ln(2/delta')``) applied to the
    draws and to their reflection ``a + b - X`` with ``delta' = delta/2`` each,
    after the affine map of ``[a, b]`` onto ``[0, 1]`` (``V_n`` scales by
    ``(b - a)^2``).

    Parameters
    ----------
    n : int
        Number of draws, ``n >= 2``.
    sample_variance : float
        The unbiased sample variance ``V_n = sum_{i<j} (X_i - X_j)^2 / (n (n-1))``.
    width : float
        ``b - a``, the length of the known range.
    delta : float
        Two-sided non-coverage probability in ``(0, 1)``.

    Returns
    -------
    float

    References
    ----------
    Maurer & Pontil 2009, "Empirical Bernstein Bounds and Sample Variance
    Penalization", COLT, Theorem 4.
    """
    log_term = math.log(4.0 / delta)
    return (math.sqrt(2.0 * sample_variance * log_term / n)
            + 7.0 * width * log_term / (3.0 * (n - 1)))


def empirical_bernstein_interval(samples, value_range, *,
                                 delta: float = MAX_FALSE_FAILURE) -> BoundedMeanInterval:
    """A confidence interval for ``E X`` from iid draws known to lie in ``[a, b]``.

    Maurer & Pontil's empirical Bernstein inequality (Theorem 4): for iid
    ``Z_1..Z_n`` in ``[0, 1]`` and ``delta > 0``, with probability at least
    ``1 - delta``,

        E Z - mean(Z) <= sqrt(2 V_n ln(2/delta) / n) + 7 ln(2/delta) / (3 (n - 1)),

    ``V_n`` the unbiased sample variance. Applied to ``Z = (X - a)/(b - a)``
    and to ``1 - Z``, each at ``delta/2``, it gives the two-sided interval
    ``mean(X) +- h`` with ``h`` from :func:`empirical_bernstein_halfwidth`,
    which misses ``E X`` with probability at most ``delta``. No variance is
    assumed: the range ``[a, b]`` pays for it, through the ``7 (b - a)/3n``
    term. The interval is clipped to ``[a, b]``.

    Parameters
    ----------
    samples : array_like
        Independent, identically distributed draws (flattened), at least 2,
        every one in ``value_range`` (a draw outside it is refused: the bound
        would not hold).
    value_range : (float, float)
        ``(a, b)``, finite with ``a < b``, known before sampling.
    delta : float
        Two-sided non-coverage probability in ``(0, 1)``. A claim uses at most
        :data:`MAX_FALSE_FAILURE` (its share of it); larger values are for
        checking coverage by simulation.

    Returns
    -------
    BoundedMeanInterval

    References
    ----------
    Maurer & Pontil 2009, "Empirical Bernstein Bounds and Sample Variance
    Penalization", COLT (arXiv:0907.3740), Theorem 4. Audibert, Munos &
    Szepesvari 2009, "Exploration-exploitation tradeoff using variance
    estimates in multi-armed bandits", TCS 410, Theorem 1 (an empirical
    Bernstein bound with constants ``ln(3/delta)`` and ``3``).
    """
    return _eb_interval(samples, value_range, delta, "samples", "value_range")


def _eb_interval(samples, value_range, delta, name: str, range_name: str) -> BoundedMeanInterval:
    delta = _check_delta(delta)
    a, b = _check_range(value_range, range_name)
    x = _bounded_samples(samples, (a, b), name)
    n = x.size
    mean = float(np.mean(x))
    var = float(np.var(x, ddof=1))
    h = empirical_bernstein_halfwidth(n, var, b - a, delta)
    return BoundedMeanInterval(
        estimate=mean, lower=max(a, mean - h), upper=min(b, mean + h), samples=n,
        sample_variance=var, value_range=(a, b), delta=delta,
        method="empirical Bernstein interval (Maurer & Pontil 2009, Theorem 4, both tails "
               "at delta/2) from the known range of each draw")


@dataclass(frozen=True)
class RatioTest:
    """Outcome of testing that a ratio of two nonnegative means lies in a target interval.

    The interval ``[lo_N / hi_D, hi_N / lo_D]`` built from the two mean
    intervals contains ``E N / E D`` whenever both of them cover, so with
    probability at least ``1 - (delta_N + delta_D)`` (union bound).

    ``passed`` follows the suite's convention for statistical claims: fail
    only when the data are incompatible with the statement, i.e. when the
    ratio interval is disjoint from ``target``; a true statement then fails
    with probability at most ``delta``. ``inside`` is the stronger, positive
    confirmation that the whole ratio interval lies in ``target``.

    Attributes
    ----------
    numerator, denominator : BoundedMeanInterval
    target : (float, float)
        The stated range of the ratio.
    expected : float or None
        A nominal analytic value (e.g. a first-order one) reported as ``nominal``;
        not used in the decision.
    """

    numerator: BoundedMeanInterval
    denominator: BoundedMeanInterval
    target: tuple[float, float]
    expected: float | None = None

    @property
    def estimate(self) -> float:
        den = self.denominator.estimate
        return self.numerator.estimate / den if den > 0 else math.inf

    @property
    def interval(self) -> tuple[float, float]:
        num, den = self.numerator, self.denominator
        lo = num.lower / den.upper
        hi = num.upper / den.lower if den.lower > 0 else math.inf
        return (lo, hi)

    @property
    def delta(self) -> float:
        return self.numerator.delta + self.denominator.delta

    @property
    def samples(self) -> int:
        return self.numerator.samples + self.denominator.samples

    @property
    def passed(self) -> bool:
        lo, hi = self.interval
        return bool(lo <= self.target[1] and hi >= self.target[0])

    @property
    def inside(self) -> bool:
        lo, hi = self.interval
        return bool(self.target[0] <= lo and hi <= self.target[1])

    @property
    def error(self) -> float:
        """Distance from the estimate to the target interval (0 inside it)."""
        t0, t1 = self.target
        return max(t0 - self.estimate, self.estimate - t1, 0.0)

    @property
    def halfwidth(self) -> float:
        """The interval's extent on the side facing the target (both sides if inside).

        ``error / halfwidth > 1`` exactly when the test fails.
        """
        lo, hi = self.interval
        est = self.estimate
        if est > self.target[1]:
            return est - lo
        if est < self.target[0]:
            return hi - est
        return max(est - lo, hi - est)

    def to_json(self) -> dict:
        lo, hi = self.interval
        # "analytic" is the statement's range (the report puts it beside the interval);
        # the nominal value is only shown
        return {"estimate": self.estimate, "interval": [lo, hi],
                "analytic": f"[{self.target[0]:g}, {self.target[1]:g}]",
                "nominal": self.expected, "target": list(self.target), "passed": self.passed,
                "interval_inside_target": self.inside, "samples": self.samples,
                "false_failure_probability": self.delta,
                "method": ("ratio of two empirical Bernstein intervals, "
                           "[lo_N / hi_D, hi_N / lo_D] (union bound); fails only when it is "
                           f"disjoint from [{self.target[0]:g}, {self.target[1]:g}]")}


def test_ratio(numerator_samples, denominator_samples, *, numerator_range,
               denominator_range, target, delta: float = MAX_FALSE_FAILURE,
               expected: float | None = None) -> RatioTest:
    """Test ``E N / E D in target`` from iid draws of two nonnegative bounded variables.

    Each mean gets an :func:`empirical_bernstein_interval` at ``delta / 2``.

    Parameters
    ----------
    numerator_samples, denominator_samples : array_like
        Independent draws of ``N`` and of ``D`` (the two sets independent or not:
        only the union bound is used).
    numerator_range, denominator_range : (float, float)
        Known ranges ``[a, b]`` with ``a >= 0`` (nonnegative variables).
    target : (float, float)
        The stated range ``[t0, t1]`` of the ratio, ``0 <= t0 <= t1``.
    delta : float
        The total false-failure probability, in ``(0, 1)``.
    expected : float, optional
        A nominal analytic value for display.

    Returns
    -------
    RatioTest

    References
    ----------
    Maurer & Pontil 2009, COLT, Theorem 4 (each interval); the union bound.
    """
    delta = _check_delta(delta)
    for name, value in (("numerator_range", numerator_range),
                        ("denominator_range", denominator_range)):
        a, b = _check_range(value, name)
        if a < 0:
            raise ValueError(f"{name}: expected a range of nonnegative values, got ({a}, {b})")
    try:
        t0, t1 = (float(t) for t in target)
    except (TypeError, ValueError):
        raise TypeError(f"target: expected a pair (t0, t1) of numbers, got {target!r}") from None
    if not (math.isfinite(t0) and math.isfinite(t1) and 0 <= t0 <= t1):
        raise ValueError(f"target: expected finite 0 <= t0 <= t1, got ({t0}, {t1})")
    num = _eb_interval(numerator_samples, numerator_range, delta / 2, "numerator_samples",
                       "numerator_range")
    den = _eb_interval(denominator_samples, denominator_range, delta / 2,
                       "denominator_samples", "denominator_range")
    return RatioTest(num, den, (t0, t1), None if expected is None else float(expected))


test_ratio.__test__ = False  # not a pytest test despite the name


# --------------------------------------------------------------------------
# evidence of statistical claims
# --------------------------------------------------------------------------

def mc_size(ctx, per_group: int, tests: int) -> int:
    """Samples for a median of means over ``tests`` tests sharing the error budget.

    Each test gets ``MAX_FALSE_FAILURE / tests`` (the union bound), hence
    ``ceil(8 ln(tests / MAX_FALSE_FAILURE))`` groups of ``per_group`` samples,
    times the profile's Monte Carlo scale.

    Parameters
    ----------
    ctx : runner.Context
        The check's context; ``ctx.profile.mc_scale`` multiplies the size.
    per_group : int
        Samples per group at scale 1.
    tests : int
        Number of tests splitting :data:`MAX_FALSE_FAILURE`.

    Returns
    -------
    int

    References
    ----------
    Lugosi & Mendelson 2019, Found. Comput. Math., Theorem 2 (the number of groups).
    """
    groups = math.ceil(8 * math.log(tests / MAX_FALSE_FAILURE))
    return groups * per_group * ctx.profile.mc_scale


def mc_shards(profile) -> int:
    """Shards of a pooled Monte Carlo claim's run (``Claim.shards``): the profile's scale.

    Under thorough (``mc_scale`` 8) a run splits into 8 tasks for ``--jobs`` and Dask,
    each drawing about what one dev run draws; ci and dev do not shard, so their draws
    are exactly those of an unsharded run.
    """
    return max(1, int(profile.mc_scale))


def shard_size(ctx, n: int) -> int:
    """How many of a pooled claim's ``n`` draws this shard makes (all of them unsharded)."""
    return len(ctx.shard_range(n))


def pooled_draws(subject, ctx, draw, decide) -> Evidence:
    """Run a pooled Monte Carlo claim: its draws here, its tests on all the draws.

    Parameters
    ----------
    subject : Subject
    ctx : runner.Context
    draw : callable
        ``draw(subject, ctx) -> dict`` of arrays: this shard's share of each sample
        (:func:`shard_size`, drawn from ``ctx.rng``, whose stream is the shard's own);
        what every shard must draw alike, such as the test point, comes from
        ``ctx.whole()``.
    decide : callable
        ``decide(ctx, draws) -> Evidence``: the tests, on the draws of every shard
        concatenated in shard order (the claim's ``pool``).

    Returns
    -------
    Evidence
        Unsharded (ci, dev): ``decide(ctx, draw(subject, ctx))``. One shard of
        several: the shard's draws in ``Evidence.partial``, which
        ``runner.pool_shards`` concatenates and hands to ``decide``, so a sharded run
        makes one test on as many draws as an unsharded one, at the stated
        false-failure probability and power, whatever the number of workers.
    """
    draws = draw(subject, ctx)
    if ctx.shards == 1:
        return decide(ctx, draws)
    cases = sum(len(v) for v in draws.values())
    return Evidence(passed=True, cases=cases,
                    detail=f"shard {ctx.shard + 1} of {ctx.shards}: {cases} draws",
                    partial=(ctx.whole(), draws))


@dataclass
class StatTest:
    """One median-of-means test with its label.

    ``sided="two"``: passes when the analytic mean lies in the interval;
    ``sided="upper"``: the analytic value is an upper bound on the mean and the
    test passes when the interval reaches down to it (``estimate - halfwidth
    <= bound``); the false-failure probability is the same ``delta``.

    Attributes
    ----------
    label : str
        The key of the test in ``Evidence.statistics``.
    test : MeanTest
    sided : {"two", "upper"}
    """

    label: str
    test: MeanTest
    sided: str = "two"

    @property
    def passed(self) -> bool:
        if self.sided == "upper":
            return bool(self.test.estimate - self.test.halfwidth <= self.test.expected)
        return self.test.passed

    @property
    def ratio(self) -> float:
        """The error against the half-width, ``> 1`` exactly when the test fails."""
        t = self.test
        excess = t.estimate - t.expected if self.sided == "upper" else abs(t.estimate - t.expected)
        return max(excess, 0.0) / t.halfwidth if t.halfwidth > 0 else math.inf

    def to_json(self) -> dict:
        out = self.test.to_json()
        if self.sided == "upper":
            out["method"] += "; one-sided: the analytic value is an upper bound on the mean"
        return out

    def failure_note(self) -> str:
        t = self.test
        return (f"{self.label}: estimate {t.estimate:.4g} vs analytic {t.expected:.4g} "
                f"(half-width {t.halfwidth:.3g})")


@dataclass
class RatioStatTest:
    """A :class:`RatioTest` with its label.

    Same interface as :class:`StatTest` (``label``, ``test``, ``passed``,
    ``ratio``, ``to_json``, ``failure_note``), so :func:`statistical_evidence`
    gates it like the mean tests: it fails only when the ratio interval is
    disjoint from the target (``ratio > 1`` exactly then).
    """

    label: str
    test: RatioTest

    @property
    def passed(self) -> bool:
        return self.test.passed

    @property
    def ratio(self) -> float:
        t = self.test
        return t.error / t.halfwidth if t.halfwidth > 0 else (math.inf if t.error else 0.0)

    def to_json(self) -> dict:
        return self.test.to_json()

    def failure_note(self) -> str:
        t = self.test
        lo, hi = t.interval
        return (f"{self.label}: estimate {t.estimate:.4g}, interval [{lo:.4g}, {hi:.4g}] is "
                f"disjoint from [{t.target[0]:g}, {t.target[1]:g}]")


def mean_test(label: str, samples, expected: float, variance: float, delta: float,
              sided: str = "two") -> StatTest:
    """:func:`test_mean` with a label (and a side).

    Parameters
    ----------
    label : str
    samples : array_like
        Independent draws.
    expected : float
        The analytic mean (``sided="two"``) or an upper bound on it (``"upper"``).
    variance : float
        The exact variance of one draw.
    delta : float
        This test's share of the claim's false-failure probability.
    sided : {"two", "upper"}

    Returns
    -------
    StatTest
    """
    return StatTest(label, test_mean(samples, expected, variance, delta=delta), sided)


def statistical_evidence(tests: list, *, detail: str, checks=(), figure=None,
                         extra_statistics: dict | None = None,
                         delta_total: float = MAX_FALSE_FAILURE, cases: int | None = None,
                         tolerance_reason: str | None = None) -> Evidence:
    """Evidence of a statistical claim: every test and every exact check must pass.

    Parameters
    ----------
    tests : list of StatTest or RatioStatTest
        Their ``to_json()`` become ``Evidence.statistics`` under their labels;
        the test with the largest ``ratio`` gives ``max_error`` and ``tolerance``.
    detail : str
        What was run; the stated total false-failure probability and the
        first failures are appended.
    checks : iterable of (bool, str)
        Deterministic conditions and the note shown when one fails.
    figure : dict, optional
        Figure data (the report's JSON protocol).
    extra_statistics : dict, optional
        Further entries of ``Evidence.statistics`` (tests gated through ``checks``).
    delta_total : float
        The claim's total false-failure probability (union bound over its tests).
    cases : int, optional
        Cases tried; by default the samples of all tests.
    tolerance_reason : str, optional
        By default: median-of-means half-width from the exact variance.

    Returns
    -------
    Evidence

    References
    ----------
    Lugosi & Mendelson 2019 (median of means); Maurer & Pontil 2009, Theorem 4
    (the ratio tests' intervals).
    """
    failing = [t for t in tests if not t.passed]
    failed_checks = [note for ok, note in checks if not ok]
    passed = not failing and not failed_checks
    text = detail + f" Stated false-failure probability <= {delta_total:.0e} (union bound)."
    if failing:
        text += " Failed: " + "; ".join(t.failure_note() for t in failing[:3])
    if failed_checks:
        text += " Failed: " + "; ".join(failed_checks[:3])
    statistics = {t.label: t.to_json() for t in tests}
    statistics.update(extra_statistics or {})
    worst = max(tests, key=lambda t: t.ratio) if tests else None
    return Evidence(
        passed=passed,
        cases=cases if cases is not None else sum(t.test.samples for t in tests),
        max_error=worst.test.error if worst else None,
        tolerance=worst.test.halfwidth if worst else None,
        tolerance_reason=tolerance_reason or (
            "median-of-means half-width from the exact variance of the samples; "
            f"total false-failure probability {delta_total:.0e}"),
        detail=text, statistics=statistics, figure=figure)
