"""Unit tests of the empirical Bernstein interval and the ratio test of theory/statistics.py.

The interval is Maurer & Pontil 2009, Theorem 4, two-sided: ``mean +- h`` with
``h = sqrt(2 V_n ln(4/delta)/n) + 7 (b - a) ln(4/delta) / (3 (n - 1))``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from transformer_theory.theory.statistics import (
    MAX_FALSE_FAILURE,
    BoundedMeanInterval,
    RatioTest,
    empirical_bernstein_halfwidth,
    empirical_bernstein_interval,
    test_ratio,
)

#: delta with ln(4/delta) = 2, for values by hand.
DELTA_LOG2 = 4 * math.exp(-2)


# --------------------------------------------------------------------------
# the interval: values by hand
# --------------------------------------------------------------------------

def test_halfwidth_by_hand():
    # V_n = 0.25 * 100/99, n = 100, width 2, ln(4/delta) = 2
    v = 0.25 * 100 / 99
    h = empirical_bernstein_halfwidth(100, v, 2.0, DELTA_LOG2)
    assert h == pytest.approx(math.sqrt(2 * v * 2 / 100) + 7 * 2 * 2 / (3 * 99), rel=1e-14)
    assert h == pytest.approx(0.1005038 + 0.0942761, abs=1e-7)


def test_interval_by_hand():
    x = np.array([0.0, 1.0] * 50)                       # mean 1/2, V_n = 0.25 * 100/99
    iv = empirical_bernstein_interval(x, (0.0, 2.0), delta=DELTA_LOG2)
    assert isinstance(iv, BoundedMeanInterval)
    assert iv.estimate == 0.5 and iv.samples == 100
    assert iv.sample_variance == pytest.approx(0.25 * 100 / 99, rel=1e-14)
    assert iv.interval == pytest.approx((0.5 - 0.1947799, 0.5 + 0.1947799), abs=1e-7)
    assert iv.halfwidth == pytest.approx(0.1947799, abs=1e-7)
    assert iv.delta == DELTA_LOG2 and iv.value_range == (0.0, 2.0)
    assert iv.contains(0.5) and not iv.contains(0.75)
    js = iv.to_json()
    assert js["interval"] == [iv.lower, iv.upper]
    assert js["false_failure_probability"] == DELTA_LOG2
    assert "Maurer & Pontil" in js["method"]


def test_interval_is_clipped_to_the_range():
    iv = empirical_bernstein_interval(np.zeros(50), (0.0, 1.0), delta=0.05)
    h = 7 * math.log(4 / 0.05) / (3 * 49)                 # V_n = 0: only the range term
    assert iv.lower == 0.0 and iv.upper == pytest.approx(h, rel=1e-14)
    wide = empirical_bernstein_interval([0.0, 1.0], (0.0, 1.0), delta=0.5)
    assert wide.interval == (0.0, 1.0)


def test_interval_is_affine_equivariant():
    rng = np.random.default_rng(0)
    x = rng.beta(2, 5, size=500)
    base = empirical_bernstein_interval(x, (0.0, 1.0), delta=0.01)
    moved = empirical_bernstein_interval(-3.0 + 4.0 * x, (-3.0, 1.0), delta=0.01)
    assert moved.estimate == pytest.approx(-3.0 + 4.0 * base.estimate, rel=1e-12)
    assert moved.lower == pytest.approx(-3.0 + 4.0 * base.lower, rel=1e-12)
    assert moved.upper == pytest.approx(-3.0 + 4.0 * base.upper, rel=1e-12)


def test_interval_beats_hoeffding_on_low_variance_draws():
    rng = np.random.default_rng(1)
    x = rng.beta(50, 50, size=20_000)                     # sd ~0.05 in a range of 1
    iv = empirical_bernstein_interval(x, (0.0, 1.0), delta=1e-6)
    hoeffding = math.sqrt(math.log(2 / 1e-6) / (2 * x.size))
    assert iv.halfwidth < 0.5 * hoeffding
    assert iv.contains(0.5)


def test_interval_accepts_integer_draws_and_the_default_delta():
    iv = empirical_bernstein_interval(np.array([0, 1, 1, 0, 1]), (0, 1))
    assert iv.delta == MAX_FALSE_FAILURE and iv.estimate == pytest.approx(0.6)


# --------------------------------------------------------------------------
# coverage by simulation
# --------------------------------------------------------------------------

@pytest.mark.parametrize("draw,mean,value_range,n", [
    (lambda rng, n: rng.binomial(1, 0.1, n), 0.1, (0.0, 1.0), 40),
    (lambda rng, n: rng.beta(2.0, 5.0, n), 2 / 7, (0.0, 1.0), 30),
    (lambda rng, n: 3.0 * rng.beta(0.3, 3.0, n) - 1.0, 3 * 0.3 / 3.3 - 1.0, (-1.0, 2.0), 200),
])
def test_interval_covers_the_true_mean(draw, mean, value_range, n):
    delta, repeats = 0.05, 2000
    rng = np.random.default_rng(2)
    misses = sum(not empirical_bernstein_interval(draw(rng, n), value_range, delta=delta)
                 .contains(mean) for _ in range(repeats))
    assert misses <= delta * repeats


def test_ratio_interval_covers_the_true_ratio():
    delta, repeats = 0.1, 1000
    rng = np.random.default_rng(3)
    misses = 0
    for _ in range(repeats):
        num = rng.beta(2.0, 2.0, 300)                     # mean 1/2
        den = 0.25 * rng.beta(1.0, 3.0, 300)              # mean 1/16
        t = test_ratio(num, den, numerator_range=(0, 1), denominator_range=(0, 0.25),
                       target=(8.0, 8.0), delta=delta)
        misses += not t.passed                            # a point target: covered iff passed
    assert misses <= delta * repeats


# --------------------------------------------------------------------------
# the ratio test
# --------------------------------------------------------------------------

def _iv(lo, est, hi, n=10, delta=1e-7):
    return BoundedMeanInterval(est, lo, hi, n, 0.0, (0.0, 1.0), delta, "m")


def test_ratio_interval_and_decisions_by_hand():
    t = RatioTest(_iv(0.6, 0.8, 1.0), _iv(0.15, 0.2, 0.25), (3.0, 5.0), expected=4.0)
    assert t.estimate == pytest.approx(4.0)
    assert t.interval == pytest.approx((0.6 / 0.25, 1.0 / 0.15))   # (2.4, 6.67)
    assert t.passed and not t.inside and t.error == 0.0
    assert t.delta == pytest.approx(2e-7) and t.samples == 20
    tight = RatioTest(_iv(0.75, 0.8, 0.85), _iv(0.19, 0.2, 0.21), (3.0, 5.0))
    assert tight.passed and tight.inside
    low = RatioTest(_iv(0.3, 0.4, 0.5), _iv(0.19, 0.2, 0.21), (3.0, 5.0))    # ratio ~2
    assert not low.passed and not low.inside
    assert low.error == pytest.approx(1.0)
    assert low.halfwidth == pytest.approx(0.5 / 0.19 - 2.0)
    assert low.error / low.halfwidth > 1                   # fails exactly when > 1
    high = RatioTest(_iv(1.3, 1.4, 1.5), _iv(0.19, 0.2, 0.21), (3.0, 5.0))   # ratio 7
    assert not high.passed and high.halfwidth == pytest.approx(7.0 - 1.3 / 0.21)
    js = low.to_json()
    assert js["passed"] is False and js["interval_inside_target"] is False
    assert js["target"] == [3.0, 5.0] and js["false_failure_probability"] == pytest.approx(2e-7)
    assert js["analytic"] == "[3, 5]" and js["nominal"] is None
    assert t.to_json()["nominal"] == 4.0


def test_ratio_with_a_zero_lower_denominator_is_unbounded_above():
    t = RatioTest(_iv(0.1, 0.2, 0.3), _iv(0.0, 0.01, 0.05), (3.0, 5.0))
    assert t.interval == (0.1 / 0.05, math.inf) and t.passed and not t.inside
    zero = RatioTest(_iv(0.1, 0.2, 0.3), _iv(0.0, 0.0, 0.05), (3.0, 5.0))
    assert zero.estimate == math.inf


def test_test_ratio_splits_delta_and_decides():
    rng = np.random.default_rng(4)
    num = rng.uniform(0, 0.8, 20_000)                     # mean 0.4
    den = rng.uniform(0, 0.2, 20_000)                     # mean 0.1: ratio 4
    t = test_ratio(num, den, numerator_range=(0, 0.8), denominator_range=(0, 0.2),
                   target=(3, 5), delta=1e-6, expected=4.0)
    assert t.numerator.delta == t.denominator.delta == 5e-7
    assert t.passed and t.inside and t.expected == 4.0
    assert t.estimate == pytest.approx(4.0, rel=0.05)
    halved = test_ratio(num / 2, den, numerator_range=(0, 0.4), denominator_range=(0, 0.2),
                        target=(3, 5), delta=1e-6)       # ratio 2
    assert not halved.passed


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------

@pytest.mark.parametrize("delta", [0.0, 1.0, -0.1, math.nan])
def test_interval_rejects_a_bad_delta(delta):
    with pytest.raises(ValueError, match="delta: expected a probability"):
        empirical_bernstein_interval(np.ones(5), (0, 1), delta=delta)


@pytest.mark.parametrize("value_range,exc,match", [
    ((1.0, 1.0), ValueError, "value_range: expected finite a < b"),
    ((2.0, 1.0), ValueError, "value_range: expected finite a < b"),
    ((0.0, math.inf), ValueError, "value_range: expected finite a < b"),
    (1.0, TypeError, "value_range: expected a pair"),
    ((0.0, 1.0, 2.0), TypeError, "value_range: expected a pair"),
    (("a", 1.0), TypeError, "value_range: expected a pair"),
])
def test_interval_rejects_a_bad_range(value_range, exc, match):
    with pytest.raises(exc, match=match):
        empirical_bernstein_interval(np.ones(5) * 0.5, value_range)


@pytest.mark.parametrize("samples,exc,match", [
    (np.array([0.5]), ValueError, "samples: expected at least 2 draws, got 1"),
    (np.array([0.5, np.nan]), ValueError, "samples: contains NaN"),
    (np.array([0.5, 1.5]), ValueError, r"samples: expected every draw in \[0.0, 1.0\]"),
    (np.array([-0.1, 0.5]), ValueError, r"samples: expected every draw in \[0.0, 1.0\]"),
    (np.array([True, False]), TypeError, "samples: expected real numbers, got dtype bool"),
    (np.array([0.5 + 0j, 0.1]), TypeError, "samples: expected real numbers, got dtype complex"),
    (np.array(["a", "b"]), TypeError, "samples: expected real numbers"),
])
def test_interval_rejects_bad_samples(samples, exc, match):
    with pytest.raises(exc, match=match):
        empirical_bernstein_interval(samples, (0.0, 1.0))


def test_test_ratio_rejects_bad_input():
    ok = np.full(10, 0.5)
    kw = dict(numerator_range=(0, 1), denominator_range=(0, 1), target=(3, 5))
    with pytest.raises(ValueError, match="numerator_range: expected a range of nonnegative"):
        test_ratio(ok, ok, **{**kw, "numerator_range": (-1, 1)})
    with pytest.raises(ValueError, match="denominator_range: expected a range of nonnegative"):
        test_ratio(ok, ok, **{**kw, "denominator_range": (-1, 1)})
    with pytest.raises(ValueError, match="denominator_range: expected finite a < b"):
        test_ratio(ok, ok, **{**kw, "denominator_range": (1, 0)})
    with pytest.raises(ValueError, match="target: expected finite 0 <= t0 <= t1"):
        test_ratio(ok, ok, **{**kw, "target": (5, 3)})
    with pytest.raises(ValueError, match="target: expected finite 0 <= t0 <= t1"):
        test_ratio(ok, ok, **{**kw, "target": (-1, 3)})
    with pytest.raises(TypeError, match="target: expected a pair"):
        test_ratio(ok, ok, **{**kw, "target": 4.0})
    with pytest.raises(ValueError, match="numerator_samples: expected every draw"):
        test_ratio(ok * 3, ok, **kw)
    with pytest.raises(ValueError, match="denominator_samples: contains NaN"):
        test_ratio(ok, np.append(ok, np.nan), **kw)
    with pytest.raises(ValueError, match="delta: expected a probability"):
        test_ratio(ok, ok, **kw, delta=2.0)
