"""Closed forms of the Performer estimators: the kernels, their MSEs, their moments.

What the random-feature estimators of :mod:`.performer_features` estimate,
and how far they miss:

* the softmax kernel ``SM(x, y) = exp(x^T y)`` and the regularised kernel
  ``SMREG`` that fixed-norm orthogonal features estimate;
* the mean squared errors of Lemma 2 (trigonometric, positive, hyperbolic
  features with iid vectors), the exact MSE of block-orthogonal positive
  features and the bound of Theorem 2;
* the raw moments of one positive feature term and the exact moments of the
  iid positive estimator (for Chebyshev-style bounds on a Monte Carlo MSE).

Everything is computed in float64 from ``s = ||x + y||^2``, ``||x||^2`` and
``||y||^2`` and returned in the inputs' float dtype.

These are the array forms (any leading dims, the inputs' dtype), checked by
the unit tests (tests/test_impl_performer.py) against Monte Carlo and against
each other. The Performer claims state the same closed forms for one pair at
a time in float64 (:mod:`.performer_formulas`), and the sympy derivations
(``proofs/performer.py``) derive them.

References
----------
Choromanski et al. 2021, Rethinking Attention with Performers, ICLR 2021
(arXiv:2009.14794): §2.3 (definition of SM, Eq. (6); SMREG), §2.4 (orthogonal
random features), §3 (Lemma 2: the MSE of the estimators; Theorem 1: SMREG <=
SM; Theorem 2). Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): the trigonometric MSE.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.special import hyp0f1, hyp1f1

from .contract.validate import check_positive_int, check_vector_pair, common_float_dtype

__all__ = [
    "sm_kernel",
    "smreg_kernel",
    "mse_trig",
    "mse_positive",
    "mse_hyperbolic",
    "mse_orthogonal_exact",
    "mse_orthogonal_bound",
    "positive_term_moment",
    "PositiveEstimatorMoments",
    "variance_moments",
]


# --------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------

def sm_kernel(x, y) -> np.ndarray:
    """The softmax kernel ``SM(x, y) = exp(x^T y)``.

    Parameters
    ----------
    x, y : array_like, shape (..., d)
        Pairs of vectors; the shapes must be equal (no broadcasting).

    Returns
    -------
    ndarray, shape (...)
        ``exp(sum_i x_i y_i)``.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, §2.3
    (definition of SM). Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt).
    """
    x, y = check_vector_pair(x, y)
    dtype = common_float_dtype(x, y)
    return np.exp(np.sum(x * y, axis=-1)).astype(dtype, copy=False)  # (...)


def _lambda(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``Lambda = exp(-(||x||^2 + ||y||^2) / 2)`` in float64."""
    return np.exp(-0.5 * (np.sum(x * x, axis=-1) + np.sum(y * y, axis=-1)))


def _sum_sq(z: np.ndarray) -> np.ndarray:
    return np.sum(z * z, axis=-1)


def smreg_kernel(x, y) -> np.ndarray:
    """The regularised softmax kernel estimated by fixed-norm orthogonal features.

    With rows ``omega = sqrt(d) u``, ``u`` uniform on the unit sphere, the
    positive estimator has mean

        SMREG(x, y) = Lambda * 0F1(; d/2; d s / 4),

    where ``s = ||x + y||^2`` and ``Lambda = exp(-(||x||^2 + ||y||^2) / 2)``,
    because ``E_u exp(t u_1) = 0F1(; d/2; t^2 / 4)``. Term by term
    ``(d/2)_k >= (d/2)^k``, so ``0F1(; d/2; d s/4) <= exp(s/2)`` and
    ``SMREG <= SM = Lambda exp(s/2)``, with equality only at ``x = -y``.

    Parameters
    ----------
    x, y : array_like, shape (..., d)
        Pairs of vectors of equal shape.

    Returns
    -------
    ndarray, shape (...)

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, the
    regularized softmax-kernel SMREG (§2.3; Theorem 1 in §3: SMREG <= SM).
    """
    x, y = check_vector_pair(x, y)
    dtype = common_float_dtype(x, y)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    d = x.shape[-1]
    s = _sum_sq(x64 + y64)                                   # (...)
    out = _lambda(x64, y64) * hyp0f1(d / 2.0, d * s / 4.0)   # (...)
    return np.asarray(out).astype(dtype, copy=False)


# --------------------------------------------------------------------------
# closed forms: MSE (Lemma 2, Theorem 2) and moments
# --------------------------------------------------------------------------

def _analytic_inputs(x, y, m):
    x, y = check_vector_pair(x, y)
    m = check_positive_int(m, "m")
    dtype = common_float_dtype(x, y)
    return x.astype(np.float64), y.astype(np.float64), m, dtype


def _out(value, dtype) -> np.ndarray:
    return np.asarray(value, dtype=np.float64).astype(dtype, copy=False)


def mse_trig(x, y, m: int) -> np.ndarray:
    """MSE of the trigonometric estimator with ``m`` iid Gaussian vectors.

    ``MSE = 1/(2m) exp(||x+y||^2) SM(x,y)^{-2} (1 - exp(-||x-y||^2))^2``;
    zero at ``x = y``.

    Parameters
    ----------
    x, y : array_like, shape (..., d)
    m : int

    Returns
    -------
    ndarray, shape (...)

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, Lemma 2.
    Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt).
    """
    x, y, m, dtype = _analytic_inputs(x, y, m)
    # exp(||x+y||^2) SM^{-2} = exp(||x||^2 + ||y||^2)
    val = np.exp(_sum_sq(x) + _sum_sq(y)) * np.expm1(-_sum_sq(x - y)) ** 2 / (2 * m)
    return _out(val, dtype)


def mse_positive(x, y, m: int) -> np.ndarray:
    """MSE of the positive estimator with ``m`` iid Gaussian vectors.

    ``MSE = (1/m) exp(||x+y||^2) SM(x,y)^2 (1 - exp(-||x+y||^2))``; zero at
    ``x = -y``.

    Parameters
    ----------
    x, y : array_like, shape (..., d)
        The kernel's arguments, ``SM(x, y) = exp(x^T y)``, broadcast together.
    m : int
        Number of iid Gaussian vectors, one feature each.

    Returns
    -------
    ndarray, shape (...)
        The MSE per (x, y) pair, in the inputs' float dtype.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, Lemma 2
    (positive random features).
    """
    x, y, m, dtype = _analytic_inputs(x, y, m)
    s = _sum_sq(x + y)
    sm = np.exp(np.sum(x * y, axis=-1))
    val = np.exp(s) * sm ** 2 * (-np.expm1(-s)) / m
    return _out(val, dtype)


def mse_hyperbolic(x, y, m: int) -> np.ndarray:
    """MSE of the hyperbolic estimator (``2m`` features from ``m`` vectors).

    ``MSE^hyp = 1/2 (1 - exp(-||x+y||^2)) MSE^+``.

    Parameters
    ----------
    x, y : array_like, shape (..., d)
        Query and key rows, as for :func:`mse_positive`.
    m : int
        Number of iid Gaussian vectors; each gives the two features ``exp(+-w x)``.

    Returns
    -------
    ndarray, shape (...)
        The MSE per (x, y) pair, at most half that of :func:`mse_positive`.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, Lemma 2
    (hyperbolic variant).
    """
    x, y, m, dtype = _analytic_inputs(x, y, m)
    s = _sum_sq(x + y)
    val = 0.5 * (-np.expm1(-s)) * mse_positive(x, y, m)
    return _out(val, dtype)


def _same_block_pairs(m: int, d: int) -> int:
    """Ordered pairs ``(i, j), i != j`` of rows in the same orthogonal block."""
    b, r = divmod(m, d)
    return b * d * (d - 1) + r * (r - 1)


def _check_d(d, x: np.ndarray) -> int:
    if d is None:
        return x.shape[-1]
    d = check_positive_int(d, "d")
    if d != x.shape[-1]:
        raise ValueError(f"d: expected the input dimension x.shape[-1] = {x.shape[-1]}, "
                         f"got {d}")
    return d


def mse_orthogonal_exact(x, y, m: int, d: int | None = None) -> np.ndarray:
    """Exact MSE of the positive estimator with block-orthogonal chi-norm rows.

    With ``s = ||x+y||^2``, ``Lambda = exp(-(||x||^2+||y||^2)/2)``,
    ``m = b d + r`` (``b`` full blocks) and ``P = b d(d-1) + r(r-1)`` ordered
    pairs of rows that share a block,

        MSE = Lambda^2 [ (e^{2s} - e^s)/m + (P/m^2) (1F1(d; d/2; s/2) - e^s) ].

    Derivation: the variance of one term is ``Lambda^2 (e^{2s} - e^s)``; rows
    of different blocks are independent; for two rows of one block,
    ``omega_i + omega_j = R u`` with ``u`` uniform on the sphere and
    ``R^2 = chi_i^2 + chi_j^2 ~ chi^2_{2d}`` independent of ``u``, so
    ``E exp((omega_i + omega_j)^T z) = E_R 0F1(; d/2; R^2 s/4)
    = 1F1(d; d/2; s/2)``. The tests confirm it by Monte Carlo. Valid for
    :func:`orthogonal_gaussian` with ``scaling="chi"``.

    Parameters
    ----------
    x, y : array_like, shape (..., d)
    m : int
        Number of rows of ``W``.
    d : int, optional
        Input dimension; must equal ``x.shape[-1]`` if given.

    Returns
    -------
    ndarray, shape (...)

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, §2.4 and
    the proof of Theorem 2 (§3; the same-block covariance term).
    """
    x, y, m, dtype = _analytic_inputs(x, y, m)
    d = _check_d(d, x)
    s = _sum_sq(x + y)
    lam2 = _lambda(x, y) ** 2
    pairs = _same_block_pairs(m, d)
    iid_part = np.exp(s) * np.expm1(s) / m
    pair_part = pairs / m ** 2 * (hyp1f1(d, d / 2.0, s / 2.0) - np.exp(s))
    return _out(lam2 * (iid_part + pair_part), dtype)


def mse_orthogonal_bound(x, y, m: int, d: int | None = None) -> np.ndarray:
    """Theorem 2 upper bound on the MSE of orthogonal positive features.

    ``MSE^ort+ <= MSE^+ - (P/m^2) 2/(d+2) (SM(x,y) - Lambda)^2``, with
    ``P`` the ordered same-block pairs of :func:`mse_orthogonal_exact`. For
    ``m <= d`` (one block, the setting of the paper) ``P/m^2 = (m-1)/m`` and
    this is exactly Theorem 2: ``MSE^+ - 2(m-1)/(m(d+2)) (SM - Lambda)^2``.
    For ``m > d`` the paper's ``(m-1)/m`` would over-count the correlated
    pairs (rows of different blocks are independent) and is not a bound; the
    ``P/m^2`` form follows from the same per-pair covariance inequality.

    Parameters
    ----------
    x, y : array_like, shape (..., d)
    m : int
    d : int, optional
        Input dimension; must equal ``x.shape[-1]`` if given.

    Returns
    -------
    ndarray, shape (...)

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, §3,
    Theorem 2 (final version).
    """
    x, y, m, dtype = _analytic_inputs(x, y, m)
    d = _check_d(d, x)
    lam = _lambda(x, y)
    sm = np.exp(np.sum(x * y, axis=-1))
    reduction = _same_block_pairs(m, d) / m ** 2 * 2.0 / (d + 2) * (sm - lam) ** 2
    return _out(mse_positive(x, y, m) - reduction, dtype)


def positive_term_moment(x, y, k) -> np.ndarray:
    """Raw moment ``E[T^k]`` of one positive feature term (one omega).

    ``T = exp(omega^T x - ||x||^2/2) exp(omega^T y - ||y||^2/2) = Lambda
    exp(omega^T z)``, ``z = x + y``, ``omega ~ N(0, I_d)``; the estimator
    ``SM^+_m`` is the mean of ``m`` such terms. Since
    ``E exp(k omega^T z) = exp(k^2 s/2)`` with ``s = ||z||^2``,

        E[T^k] = Lambda^k exp(k^2 s / 2).

    ``k = 1`` gives ``SM(x, y)``.

    Parameters
    ----------
    x, y : array_like, shape (..., d)
    k : float
        Order of the moment (any finite real).

    Returns
    -------
    ndarray, shape (...)

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, Lemma 1
    (the term) and the proof of Lemma 2 (its moments).
    """
    x, y = check_vector_pair(x, y)
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, float, np.integer,
                                                                np.floating)):
        raise TypeError(f"k: expected a real number, got {type(k).__name__}")
    if not math.isfinite(float(k)):
        raise ValueError(f"k: expected a finite number, got {k}")
    k = float(k)
    dtype = common_float_dtype(x, y)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    log_lam = -0.5 * (_sum_sq(x64) + _sum_sq(y64))
    return _out(np.exp(k * log_lam + 0.5 * k * k * _sum_sq(x64 + y64)), dtype)


class PositiveEstimatorMoments(NamedTuple):
    """Exact moments of ``SM^+_m`` (iid Gaussian vectors); see :func:`variance_moments`."""

    mean: np.ndarray
    """``E[SM^+_m] = SM(x, y)``."""
    mse: np.ndarray
    """``E[(SM^+_m - SM)^2]`` (= the variance; equals :func:`mse_positive`)."""
    fourth_central_moment: np.ndarray
    """``E[(SM^+_m - SM)^4]``."""
    squared_error_variance: np.ndarray
    """``Var[(SM^+_m - SM)^2] = E[(SM^+_m - SM)^4] - MSE^2``."""


def variance_moments(x, y, m: int) -> PositiveEstimatorMoments:
    """Exact moments of the iid positive estimator, for Chebyshev-style bounds.

    A Monte Carlo check of the MSE averages ``n`` squared errors
    ``(SM^+_m - SM)^2``; their variance is ``E[(SM^+_m - SM)^4] - MSE^2``.
    From the raw moments of one term (:func:`positive_term_moment`), with
    ``u = e^s``, ``e = u - 1 = expm1(s)``:

    * ``sigma^2 = Var T = Lambda^2 u e``;
    * ``mu_4 = E(T - SM)^4 = Lambda^4 (u^8 - 4u^5 + 6u^3 - 3u^2)
      = Lambda^4 u^2 (3e^2 + 16e^3 + 15e^4 + 6e^5 + e^6)`` (the expanded
      form avoids cancellation near ``s = 0``);
    * for the mean of ``m`` iid terms: ``MSE = sigma^2/m`` and
      ``E(mean - SM)^4 = (mu_4 + 3(m-1) sigma^4) / m^3``.

    Parameters
    ----------
    x, y : array_like, shape (..., d)
    m : int

    Returns
    -------
    PositiveEstimatorMoments
        ``(mean, mse, fourth_central_moment, squared_error_variance)``, each of
        shape (...).

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, Lemma 1
    and Lemma 2 (the estimator and its second moment); the fourth moment is
    the same computation one order higher.
    """
    x, y, m, dtype = _analytic_inputs(x, y, m)
    s = _sum_sq(x + y)
    u, e = np.exp(s), np.expm1(s)
    lam2 = _lambda(x, y) ** 2
    mean = np.exp(np.sum(x * y, axis=-1))
    sigma2 = lam2 * u * e
    mu4 = lam2 ** 2 * u ** 2 * e ** 2 * (3 + e * (16 + e * (15 + e * (6 + e))))
    mse = sigma2 / m
    fourth = (mu4 + 3 * (m - 1) * sigma2 ** 2) / m ** 3
    return PositiveEstimatorMoments(
        mean=_out(mean, dtype),
        mse=_out(mse, dtype),
        fourth_central_moment=_out(fourth, dtype),
        squared_error_variance=_out(fourth - mse ** 2, dtype),
    )
