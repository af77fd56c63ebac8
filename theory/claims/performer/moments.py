"""Exact moments of the Performer estimators: what the Monte Carlo intervals are computed from.

A statistical claim tests a mean by median of means with the *exact* variance
of what it averages (:mod:`transformer_theory.theory.statistics`). For an
estimate ``phi(x)^T phi(y)`` that variance, and that of its squared error,
follow from the raw moments of one random vector's term,
``E exp(c w^T u) = exp(c^2 ||u||^2 / 2)`` (iid features), and from the joint
moments of the rows of a Haar block (orthogonal features;
:func:`orthogonal_joint_mgf`). Raw moments cancel in central ones, so they
are computed with 40 decimal digits (mpmath).

The analytic statements themselves (Lemma 2, Theorem 2, the exact orthogonal
MSE, SMREG) are in :mod:`transformer_theory.impl.performer_formulas`.

References
----------
Choromanski et al. 2021, Rethinking Attention with Performers, ICLR: Lemma 1
(§2.3), the proofs of Lemma 2 and Theorem 2 (§3 and its appendix; the
same-block covariance) and SMREG (§2.3). Yu et al. 2016, Orthogonal Random Features, NeurIPS.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import mpmath
import numpy as np
from scipy import special

from transformer_theory.impl.contract.validate import check_feature_kind
from transformer_theory.impl.performer_formulas import PairGeometry, same_block_pairs, smreg


@dataclass(frozen=True)
class EstimatorMoments:
    """Exact moments of one estimate ``phi(x)^T phi(y)``.

    Attributes
    ----------
    mean : float
        Its expectation.
    variance : float
        Its variance.
    mse : float
        ``E (estimate - SM)^2``.
    sq_error_variance : float
        ``Var (estimate - SM)^2``: the variance of the samples a Monte Carlo
        MSE averages.
    """

    mean: float
    variance: float
    mse: float
    sq_error_variance: float


#: Decimal digits of the exact-moment arithmetic (raw moments cancel in central ones).
_DIGITS = 40


def term_raw_moment(kind: str, k: int, g: PairGeometry) -> mpmath.mpf:
    """``E[T^k]`` for one random vector's term ``T`` of the estimator (iid ``w``).

    From ``E exp(c w^T u) = exp(c^2 ||u||^2 / 2)`` and ``E cos(c w^T u) =
    exp(-c^2 ||u||^2 / 2)``:

    * positive, ``T = Lambda e^{w^T z}``: ``Lambda^k e^{k^2 s/2}``;
    * hyperbolic, ``T = Lambda cosh(w^T z)``:
      ``Lambda^k 2^{-k} sum_j C(k,j) e^{(k-2j)^2 s/2}``;
    * trig, ``T = Lambda^{-1} cos(w^T (x - y))``:
      ``Lambda^{-k} 2^{-k} sum_j C(k,j) e^{-(k-2j)^2 t/2}``.

    Parameters
    ----------
    kind : {"trig", "positive", "hyperbolic"}
    k : int
        Order, ``k >= 0``.
    g : PairGeometry

    Returns
    -------
    mpmath.mpf

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, Lemma 1
    and the proof of Lemma 2.
    """
    check_feature_kind(kind)
    with mpmath.workdps(_DIGITS):
        s, t = mpmath.mpf(g.s), mpmath.mpf(g.t)
        log_lam = -(s + t) / 4
        if kind == "positive":
            return mpmath.exp(k * log_lam + k * k * s / 2)
        sign = 1 if kind == "hyperbolic" else -1          # cosh: e^{+...s/2}; cos: e^{-...t/2}
        norm = s if kind == "hyperbolic" else t
        spread = mpmath.fsum(mpmath.binomial(k, j) * mpmath.exp(sign * (k - 2 * j) ** 2 * norm / 2)
                             for j in range(k + 1))
        return mpmath.exp(sign * k * log_lam) * spread / 2 ** k


def central_moments(raw: Callable[[int], mpmath.mpf]
                    ) -> tuple[mpmath.mpf, mpmath.mpf, mpmath.mpf]:
    """Mean, second and fourth central moments from raw moments ``raw(k)``.

    ``mu_2 = E T^2 - mu^2`` and ``mu_4 = E T^4 - 4 mu E T^3 + 6 mu^2 E T^2 - 3 mu^4``.

    Parameters
    ----------
    raw : callable
        ``raw(k)`` is ``E T^k`` for ``k = 1, ..., 4``.

    Returns
    -------
    (mpmath.mpf, mpmath.mpf, mpmath.mpf)
        ``mu``, ``mu_2`` and ``mu_4``.
    """
    mu = raw(1)
    mu2 = raw(2) - mu ** 2
    mu4 = raw(4) - 4 * mu * raw(3) + 6 * mu ** 2 * raw(2) - 3 * mu ** 4
    return mu, mu2, mu4


def iid_estimator_moments(kind: str, g: PairGeometry, m: int) -> EstimatorMoments:
    """Exact moments of the mean of ``m`` iid terms (computed with 40 digits).

    ``Var = mu_2 / m`` and ``E(mean - mu)^4 = (mu_4 + 3(m-1) mu_2^2) / m^3``.

    Parameters
    ----------
    kind : {"trig", "positive", "hyperbolic"}
    g : PairGeometry
    m : int

    Returns
    -------
    EstimatorMoments
    """
    with mpmath.workdps(_DIGITS):
        mu, mu2, mu4 = central_moments(lambda k: term_raw_moment(kind, k, g))
        var = mu2 / m
        fourth = (mu4 + 3 * (m - 1) * mu2 ** 2) / mpmath.mpf(m) ** 3
        bias2 = (mu - mpmath.mpf(g.sm)) ** 2
        return EstimatorMoments(float(mu), float(var), float(var + bias2),
                                float(fourth - var ** 2))


@lru_cache(maxsize=4096)
def orthogonal_joint_mgf(powers: tuple[int, ...], s: float, d: int) -> float:
    """``E exp(sum_i p_i w_i^T z)`` for distinct rows ``w_i`` of one chi-norm orthogonal block.

    With ``w_i = rho_i u_i`` (``u_i`` orthonormal rows of a Haar matrix,
    ``rho_i ~ chi_d`` iid), ``(u_i^T z / ||z||)_i`` are coordinates of a
    uniform unit vector, ``E rho^{2k} = 2^k (d/2)_k`` and ``E prod c_i^{2k_i}
    = prod (1/2)_{k_i} / (d/2)_K``, so with ``beta_i = p_i^2 s / 2``

        E exp(...) = sum_K [t^K] prod_i (1 - beta_i t)^{-d/2} / (d/2)_K.

    One row gives ``e^{beta}``; two rows with ``p = (1, 1)`` give
    ``1F1(d; d/2; s/2)``. All terms are positive (no cancellation).

    Parameters
    ----------
    powers : tuple of int
        The ``p_i`` (zeros are ignored); at most ``d`` nonzero.
    s : float
        ``||z||^2``.
    d : int

    Returns
    -------
    float

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, proof of
    Theorem 2 (the pair moment); Yu et al. 2016, Orthogonal Random Features.
    """
    powers = tuple(p for p in powers if p)
    if len(powers) > d:
        raise ValueError(f"powers: at most d = {d} distinct rows in one block, got {powers}")
    if not powers:
        return 1.0
    half = d / 2
    betas = [p * p * s / 2 for p in powers]
    top = max(betas)
    if top == 0:
        return 1.0
    n_terms = 64 + int(8 * len(powers) * top)
    while True:
        k = np.arange(n_terms + 1, dtype=np.float64)                   # (K+1,)
        coeffs = np.zeros(n_terms + 1)
        coeffs[0] = 1.0
        for beta in betas:
            # (d/2)_k (beta/top)^k / k!: the series of (1 - beta t)^{-d/2} in u = top t
            series = np.concatenate([[1.0], np.cumprod((half + k[:-1]) * (beta / top) / k[1:])])
            coeffs = np.convolve(coeffs, series)[: n_terms + 1]
        # top^K / (d/2)_K, built as a product of ratios (no overflow)
        weights = np.concatenate([[1.0], np.cumprod(top / (half + k[:-1]))])
        terms = coeffs * weights
        total = float(np.sum(terms))
        if terms[-1] <= 1e-18 * total and terms[-1] <= terms[-2]:
            return total
        n_terms *= 2


def _orthogonal_central_joint(exponents: tuple[int, ...], mu: mpmath.mpf, lam: mpmath.mpf,
                              s: float, d: int) -> mpmath.mpf:
    """``E prod_i (T_i - mu)^{a_i}``, distinct rows of a block, ``T_i = Lambda e^{w_i^T z}``."""
    total = mpmath.mpf(0)
    for powers in np.ndindex(*(a + 1 for a in exponents)):      # binomial expansion
        coeff = mpmath.mpf(1)
        for a, p in zip(exponents, powers):
            coeff *= mpmath.binomial(a, p) * (-mu) ** (a - p)
        key = tuple(sorted((int(p) for p in powers), reverse=True))
        total += coeff * lam ** sum(powers) * mpmath.mpf(orthogonal_joint_mgf(key, s, d))
    return total


def _block_sum_moments(rows: int, mu, lam, s: float, d: int):
    """Second and fourth central moments of the sum of ``rows`` exchangeable rows of one block."""
    if rows == 0:
        return mpmath.mpf(0), mpmath.mpf(0)
    k = rows

    def joint(*a):
        return _orthogonal_central_joint(a, mu, lam, s, d)

    m2 = k * joint(2) + (k * (k - 1) * joint(1, 1) if k >= 2 else 0)
    m4 = k * joint(4)
    if k >= 2:
        m4 += 4 * k * (k - 1) * joint(3, 1) + 3 * k * (k - 1) * joint(2, 2)
    if k >= 3:
        m4 += 6 * k * (k - 1) * (k - 2) * joint(2, 1, 1)
    if k >= 4:
        m4 += k * (k - 1) * (k - 2) * (k - 3) * joint(1, 1, 1, 1)
    return m2, m4


def orthogonal_estimator_moments(g: PairGeometry, m: int, d: int) -> EstimatorMoments:
    """Exact moments of the positive estimator with block-orthogonal chi-norm rows.

    Blocks are independent; within a block the rows are exchangeable, so the
    fourth moment of the block sum expands over the patterns (4), (3,1),
    (2,2), (2,1,1), (1,1,1,1) of :func:`orthogonal_joint_mgf`. For
    independent centred block sums ``E(sum S_B)^4 = sum E S_B^4 + 3 sum_{B != B'}
    E S_B^2 E S_B'^2``.

    Parameters
    ----------
    g : PairGeometry
    m, d : int

    Returns
    -------
    EstimatorMoments
        ``mean = SM`` (every row is marginally ``N(0, I_d)``).
    """
    with mpmath.workdps(_DIGITS):
        lam = mpmath.mpf(g.lam)
        mu = lam * mpmath.exp(mpmath.mpf(g.s) / 2)
        full, rest = divmod(m, d)
        blocks = [_block_sum_moments(d, mu, lam, g.s, d)] * full
        if rest:
            blocks.append(_block_sum_moments(rest, mu, lam, g.s, d))
        m2 = mpmath.fsum(b[0] for b in blocks)
        m4 = (mpmath.fsum(b[1] for b in blocks)
              + 3 * (m2 ** 2 - mpmath.fsum(b[0] ** 2 for b in blocks)))
        mse = m2 / m ** 2
        fourth = m4 / mpmath.mpf(m) ** 4
        return EstimatorMoments(float(mu), float(mse), float(mse), float(fourth - mse ** 2))


def smreg_estimator_variance(g: PairGeometry, m: int, d: int) -> float:
    """Variance of the positive estimator with block-orthogonal rows of norm ``sqrt(d)``.

    A sum of rows with norm ``sqrt(d) sqrt(sum p_i^2)`` has a uniform
    direction, so ``E exp(sum p_i w_i^T z) = 0F1(; d/2; d s sum p_i^2 / 4)``:
    ``Var T = Lambda^2 0F1(; d/2; d s) - SMREG^2``, same-block covariance
    ``Lambda^2 0F1(; d/2; d s / 2) - SMREG^2``, and ``Var = (m Var T + P Cov)/m^2``.
    """
    mean = smreg(g, d)
    var_term = g.lam ** 2 * float(special.hyp0f1(d / 2, d * g.s)) - mean ** 2
    cov = g.lam ** 2 * float(special.hyp0f1(d / 2, d * g.s / 2)) - mean ** 2
    return (m * var_term + same_block_pairs(m, d) * cov) / m ** 2
