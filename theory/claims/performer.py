"""Performer random features and FAVOR+ attention: the exact statistics of the
estimators, the identities of the algorithm, and the mistakes real
implementations make.

The softmax kernel ``SM(x, y) = exp(x^T y)`` is the mean of
``exp(w^T x - ||x||^2/2) exp(w^T y - ||y||^2/2)`` over ``w ~ N(0, I_d)``, so
``m`` random vectors (the rows of ``W``) give an unbiased estimate
``phi(x)^T phi(y)``. Throughout, ``s = ||x + y||^2``, ``t = ||x - y||^2``,
``Lambda = exp(-(||x||^2 + ||y||^2)/2) = exp(-(s + t)/4)`` and
``SM = Lambda e^{s/2}``.

What the claims need from a subject (the Performer contract of
``theory.subject.CALLABLES``):

* ``random_features(x, w, kind=..., *, stabilizer=None)`` -- trig, positive
  and hyperbolic feature maps (``m`` or ``2m`` features);
* ``orthogonal_gaussian(m, d, rng, *, scaling='chi'|'fixed')`` -- block
  orthogonal random vectors;
* ``favor_attention(q, k, v, w, *, causal=False, kind=..., mask=None)`` and
  ``favor_attention_recurrent(q, k, v, w, *, kind=...)``.

Inputs (``x, y, q, k, v``, and ``W`` where a claim is about the features and
not the sampler) are generated here from seeded numpy generators, never by
the subject. The analytic values are the claims' statements and are written
in this module (Lemma 2, Theorem 2, the exact block-orthogonal MSE, SMREG).

Statistical claims state a false-failure probability of at most ``1e-6``
(:data:`~transformer_theory.theory.statistics.MAX_FALSE_FAILURE`), split over
their individual tests by the union bound. Means are tested by median of
means with the *exact* variance of what is averaged, from the raw moments
``E exp(c w^T u) = exp(c^2 ||u||^2 / 2)`` (iid features) and from the joint
moments of the rows of a Haar block (orthogonal features; see
:func:`orthogonal_joint_mgf`). The chi-norm test is Kolmogorov-Smirnov, sign
tests are exact binomial tests and the trigonometric-normaliser fraction uses
Hoeffding's inequality. The normalised-output error of claim 15 has no exact
variance, but it is bounded (positive features keep every output in the
convex hull of the values), so its mean gets an empirical Bernstein interval
(Maurer & Pontil 2009, Theorem 4) from that range.

Independent replicates in one call. A claim that needs many independent
estimates places copy ``j`` of its inputs in coordinates ``[j d, (j+1) d)``
of ``R^{r d}`` and puts the ``r`` random matrices side by side, ``W = [W_1 |
... | W_r]`` of shape ``(m, r d)``. Then ``W x^{(j)} = W_j x`` and
``||x^{(j)}|| = ||x||``, so one call of the subject's feature map returns
``r`` independent estimates, each with exactly the law of the
``d``-dimensional estimator.

References
----------
Choromanski et al. 2021, Rethinking Attention with Performers, ICLR: §2.2
(Eq. (4)-(5), Algorithm 1, FAVOR+ bi- and unidirectional), §2.3 (Lemma 1,
Lemma 2, the hyperbolic variant), §2.4 (orthogonal random features,
Theorem 2), the appendix on the regularised softmax kernel SMREG.
Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): the trigonometric and
positive features, the trigonometric MSE and the two regimes.
Rahimi & Recht 2007 (trigonometric features); Yu et al. 2016 (orthogonal
random features); Mezzadri 2007, §5 (the QR sign correction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import mpmath
import numpy as np
from hypothesis import strategies as st
from scipy import special
from scipy import stats as sps

from ..checks import Measurement, compare, for_all, holds, single_case
from ..claim import Evidence, Kind, Source
from ..registry import ClaimSet
from ..sources import CHOROMANSKI_2021, KATHAROPOULOS_2020, SEED_002
from ..statistics import (MAX_FALSE_FAILURE, MeanTest, RatioTest, hoeffding_tail, test_mean,
                          test_ratio)
from ..strategies import DTYPES, SEEDS, leading_dims, normal
from ..subject import convention
from ..tolerance import tolerance

claims = ClaimSet("performer")

# --------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------

LEMMA1 = CHOROMANSKI_2021.at("§2.3, Lemma 1")
LEMMA2 = CHOROMANSKI_2021.at("§2.3, Lemma 2")
HYPERBOLIC = CHOROMANSKI_2021.at("§2.3, hyperbolic positive random features")
ORF = CHOROMANSKI_2021.at("§2.4, orthogonal random features")
THEOREM2 = CHOROMANSKI_2021.at("§2.4, Theorem 2")
SMREG_SOURCE = CHOROMANSKI_2021.at("appendix: the regularised softmax kernel SMREG")
FAVOR = CHOROMANSKI_2021.at("§2.2, Eq. (4)-(5), and Algorithm 1 (FAVOR+)")
PREFIX = CHOROMANSKI_2021.at("§2.2 and Algorithm 1: unidirectional attention by prefix sums")
INSTABILITY = CHOROMANSKI_2021.at("§2.3: trigonometric features give negative or near-zero "
                                  "normalisers, the reason for positive features")
SEED_TRIG = SEED_002.at("trigonometric features phi(x) and MSE(SM^trig_m)")
SEED_POSITIVE = SEED_002.at("SM(x,y) = E[exp(w^T x - ||x||^2/2) exp(w^T y - ||y||^2/2)], phi^+_m")
SEED_REGIMES = SEED_002.at("trig accurate as x -> y; positive accurate as SM(x, y) -> 0")
SEED_RENORM = SEED_002.at("renormalisation of A by the row sums")

RAHIMI_RECHT_2007 = Source("Rahimi & Recht 2007",
                           "Random Features for Large-Scale Kernel Machines, NeurIPS")
YU_2016 = Source("Yu et al. 2016", "Orthogonal Random Features, NeurIPS")
MEZZADRI_2007 = Source("Mezzadri 2007", "How to Generate Random Matrices from the Classical "
                       "Compact Groups, Notices of the AMS", "§5 (the sign of diag R)")
MASSEY_1951 = Source("Massey 1951", "The Kolmogorov-Smirnov Test for Goodness of Fit, JASA")
MAURER_PONTIL_2009 = Source("Maurer & Pontil 2009", "Empirical Bernstein Bounds and Sample "
                            "Variance Penalization, COLT (arXiv:0907.3740)", "Theorem 4")
HOEFFDING_1963 = Source("Hoeffding 1963", "Probability Inequalities for Sums of Bounded "
                        "Random Variables, JASA", "Theorem 1")
GOOGLE_FAVOR = Source("google-research/performer", "fast_attention (the reference FAVOR+ code)",
                      "softmax_kernel_transformation: the stabiliser max over all keys")

#: Total false-failure probability of every statistical claim of this module.
DELTA = MAX_FALSE_FAILURE

#: The feature maps of Lemma 1 and the trigonometric baseline.
KINDS = ("trig", "positive", "hyperbolic")


# --------------------------------------------------------------------------
# geometry of a pair (x, y)
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class PairGeometry:
    """A pair ``(x, y)`` and the quantities every formula is written in.

    Attributes
    ----------
    x, y : ndarray, shape (d,)
    s : float
        ``||x + y||^2``.
    t : float
        ``||x - y||^2``.
    lam : float
        ``Lambda = exp(-(||x||^2 + ||y||^2) / 2)``.
    sm : float
        ``SM(x, y) = exp(x^T y) = Lambda exp(s/2)``.
    """

    x: np.ndarray
    y: np.ndarray
    s: float
    t: float
    lam: float
    sm: float

    @property
    def d(self) -> int:
        return int(self.x.shape[-1])


def pair_geometry(x, y) -> PairGeometry:
    """The :class:`PairGeometry` of two vectors of equal shape ``(d,)``.

    Parameters
    ----------
    x, y : array_like, shape (d,)

    Returns
    -------
    PairGeometry

    Raises
    ------
    ValueError
        If the shapes differ or are not one-dimensional, or a value is not finite.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"y: expected the shape of x, a (d,) vector {x.shape}, got {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x, y: contain NaN or infinite values")
    s = float(np.sum((x + y) ** 2))
    t = float(np.sum((x - y) ** 2))
    lam = math.exp(-0.5 * float(x @ x + y @ y))
    return PairGeometry(x, y, s, t, lam, math.exp(float(x @ y)))


def pair_with(s: float, t: float, d: int, rng: np.random.Generator) -> PairGeometry:
    """A pair with ``||x + y||^2 = s`` and ``||x - y||^2 = t`` in a random plane.

    ``x = (sqrt(s) u + sqrt(t) v) / 2`` and ``y = (sqrt(s) u - sqrt(t) v) / 2``
    with ``u, v`` random orthonormal vectors of ``R^d``.

    Parameters
    ----------
    s, t : float
        Nonnegative squared norms of ``x + y`` and ``x - y``.
    d : int
        Dimension (``d >= 2``, or ``d = 1`` with ``s = 0`` or ``t = 0``).
    rng : numpy.random.Generator

    Returns
    -------
    PairGeometry
    """
    if not (s >= 0 and t >= 0 and math.isfinite(s) and math.isfinite(t)):
        raise ValueError(f"s, t: expected finite values >= 0, got s={s}, t={t}")
    if d < 1 or (d == 1 and s > 0 and t > 0):
        raise ValueError(f"d: expected d >= 2 for s, t > 0 (two orthogonal directions), got {d}")
    basis, _ = np.linalg.qr(rng.standard_normal((d, min(d, 2))))    # (d, 2) orthonormal
    u = basis[:, 0]
    v = basis[:, 1] if d > 1 else basis[:, 0]
    x = 0.5 * (math.sqrt(s) * u + math.sqrt(t) * v)                 # (d,)
    y = 0.5 * (math.sqrt(s) * u - math.sqrt(t) * v)                 # (d,)
    return pair_geometry(x, y)


# --------------------------------------------------------------------------
# the statements: Lemma 2, Theorem 2, the exact orthogonal MSE, SMREG
# --------------------------------------------------------------------------

def lemma2_mse(kind: str, g: PairGeometry, m: int) -> float:
    """Lemma 2: the MSE of the ``m``-vector estimator of ``SM(x, y)`` (iid ``w``).

    * trig: ``(1/2m) e^{s} SM^{-2} (1 - e^{-t})^2``;
    * positive: ``(1/m) e^{s} SM^2 (1 - e^{-s})``;
    * hyperbolic: ``(1/2)(1 - e^{-s})`` times the positive one.

    Parameters
    ----------
    kind : {"trig", "positive", "hyperbolic"}
    g : PairGeometry
    m : int
        Number of random vectors.

    Returns
    -------
    float

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, Lemma 2.
    Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): the trigonometric MSE.
    """
    _check_kind(kind)
    if kind == "trig":
        return math.exp(g.s) * g.sm ** -2 * math.expm1(-g.t) ** 2 / (2 * m)
    positive = math.exp(g.s) * g.sm ** 2 * -math.expm1(-g.s) / m
    if kind == "positive":
        return positive
    return 0.5 * -math.expm1(-g.s) * positive


def same_block_pairs(m: int, d: int) -> int:
    """``P = b d(d-1) + r(r-1)``: ordered pairs of rows sharing a block, ``m = b d + r``."""
    b, r = divmod(m, d)
    return b * d * (d - 1) + r * (r - 1)


def orthogonal_mse_exact(g: PairGeometry, m: int, d: int) -> float:
    """The exact MSE of the positive estimator with block-orthogonal chi-norm rows.

    ``Lambda^2 [(e^{2s} - e^{s}) / m + (P / m^2)(1F1(d; d/2; s/2) - e^{s})]``,
    ``P`` from :func:`same_block_pairs`: rows are marginally ``N(0, I_d)``;
    two rows of one block are orthogonal with independent chi norms, so their
    sum has a uniform direction and a ``chi_{2d}`` norm, whence the ``1F1``.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, §2.4 and
    the proof of Theorem 2 (the same-block covariance).
    """
    pairs = same_block_pairs(m, d)
    iid = math.exp(g.s) * math.expm1(g.s) / m
    pair = pairs / m ** 2 * (special.hyp1f1(d, d / 2, g.s / 2) - math.exp(g.s))
    return g.lam ** 2 * (iid + pair)


def theorem2_bound(g: PairGeometry, m: int, d: int, *, as_worded: bool = False) -> float:
    """Theorem 2: ``MSE^+ - c 2/(d+2) (SM - Lambda)^2`` bounds the orthogonal MSE.

    The paper states ``c = (m - 1)/m`` with all ``m`` rows in one block
    (``m <= d``). For ``m > d`` rows of different blocks are independent and
    the same per-pair inequality gives ``c = P/m^2`` (:func:`same_block_pairs`),
    which equals ``(m - 1)/m`` when ``m <= d``; ``as_worded=True`` uses
    ``(m - 1)/m`` for every ``m``.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, §2.4,
    Theorem 2 (final ICLR version, with ``(SM - Lambda)^2``).
    """
    c = (m - 1) / m if as_worded else same_block_pairs(m, d) / m ** 2
    return lemma2_mse("positive", g, m) - c * 2 / (d + 2) * (g.sm - g.lam) ** 2


def smreg(g: PairGeometry, d: int) -> float:
    """``SMREG(x, y) = Lambda 0F1(; d/2; d s / 4)``: the mean with rows of norm ``sqrt(d)``.

    ``E_u exp(a u_1) = 0F1(; d/2; a^2/4)`` for ``u`` uniform on the sphere;
    termwise ``(d/2)_k >= (d/2)^k`` gives ``SMREG <= Lambda e^{s/2} = SM``.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, the
    regularised softmax kernel (appendix).
    """
    return g.lam * float(special.hyp0f1(d / 2, d * g.s / 4))


# --------------------------------------------------------------------------
# exact moments (what the Monte Carlo intervals are computed from)
# --------------------------------------------------------------------------

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
    _check_kind(kind)
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


def _central(raw: Callable[[int], mpmath.mpf]) -> tuple[mpmath.mpf, mpmath.mpf, mpmath.mpf]:
    """Mean, second and fourth central moments from raw moments ``raw(k)``."""
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
        mu, mu2, mu4 = _central(lambda k: term_raw_moment(kind, k, g))
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


# --------------------------------------------------------------------------
# Monte Carlo through the subject
# --------------------------------------------------------------------------

def _check_kind(kind) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")


def embed_rows(x: np.ndarray) -> np.ndarray:
    """``(r, P, d)`` inputs as ``(r, P, r d)``: replicate ``j`` in coordinates ``[j d, (j+1) d)``.

    With ``W = [W_1 | ... | W_r]`` of shape ``(m, r d)``, the features of
    replicate ``j`` are those of ``x[j]`` under ``W_j`` (module docstring).
    """
    x = np.asarray(x)
    r, p, d = x.shape
    out = np.zeros((r, p, r, d), dtype=x.dtype)                        # (r, P, r, d)
    idx = np.arange(r)
    out[idx, :, idx, :] = x                                            # block j of replicate j
    return out.reshape(r, p, r * d)                                    # (r, P, r d)


def embed_replicates(x: np.ndarray, reps: int) -> np.ndarray:
    """The same ``(P, d)`` inputs in every one of ``reps`` replicates: ``(reps, P, reps d)``."""
    x = np.asarray(x)
    return embed_rows(np.broadcast_to(x, (reps,) + x.shape))


def reps_per_call(m: int, width: int) -> int:
    """Replicates per call: the embedded inputs cost ``r^2 * width`` entries per call,
    ``width = P d`` (pairs times dimension), and the projection ``r^2 width m``
    products, against a fixed cost per call; ``r ~ sqrt(4e4 / (width max(1, m/16)))``."""
    r = math.sqrt(4e4 / (max(width, 1) * max(1.0, m / 16)))
    return int(max(4, min(64, r)))


def _features(subject, x, w, kind) -> np.ndarray:
    out = np.asarray(subject.random_features(x, w, kind=kind), dtype=np.float64)
    if out.shape[:-1] != x.shape[:-1]:
        raise ValueError(f"random_features: expected shape {x.shape[:-1]} + (F,), got {out.shape}")
    return out


def sm_estimates(subject, kind: str, xs: np.ndarray, ys: np.ndarray, n: int,
                 draw_w: Callable[[int], np.ndarray], m: int) -> np.ndarray:
    """``n`` independent estimates ``phi(x_p)^T phi(y_p)`` of every pair: ``(n, P)``.

    ``draw_w(r)`` returns ``r`` independent random matrices side by side,
    shape ``(m, r d)``; all ``P`` pairs of a replicate share its matrix.
    """
    out = []
    done = 0
    reps = reps_per_call(m, xs.size)
    while done < n:                                       # loop over calls, not positions
        w = draw_w(min(reps, n - done))                                # (m, r d)
        r = w.shape[1] // xs.shape[-1]
        fx = _features(subject, embed_replicates(xs, r), w, kind)     # (r, P, F)
        fy = _features(subject, embed_replicates(ys, r), w, kind)     # (r, P, F)
        out.append(np.sum(fx * fy, axis=-1))                           # (r, P)
        done += r
    return np.concatenate(out, axis=0)                                 # (n, P)


def iid_draws(m: int, d: int, rng: np.random.Generator) -> Callable[[int], np.ndarray]:
    """``draw_w`` of iid Gaussian matrices (generated by the claim)."""
    return lambda r: rng.standard_normal((m, r * d))


def sampler_matrix(subject, m: int, d: int, rng: np.random.Generator,
                   scaling: str = "chi") -> np.ndarray:
    """One ``subject.orthogonal_gaussian(m, d, rng, scaling=...)``, checked to be ``(m, d)``."""
    source = rng
    if convention(subject, "rng", "orthogonal_gaussian") == "seed":
        source = int(rng.integers(2 ** 32))
    w = np.asarray(subject.orthogonal_gaussian(m, d, source, scaling=scaling), dtype=np.float64)
    if w.shape != (m, d) or not np.all(np.isfinite(w)):
        raise ValueError(f"orthogonal_gaussian: expected a finite ({m}, {d}) matrix, "
                         f"got shape {w.shape}")
    return w


def sampler_draws(subject, m: int, d: int, rng: np.random.Generator,
                  scaling: str = "chi") -> Callable[[int], np.ndarray]:
    """``draw_w`` of the subject's block-orthogonal matrices, one call per replicate."""
    def draw(r):
        # a loop over replicates: each is one call of the sampler under test
        return np.concatenate([sampler_matrix(subject, m, d, rng, scaling) for _ in range(r)],
                              axis=1)
    return draw


def mc_size(ctx, per_group: int, tests: int) -> int:
    """Samples for a median of means over ``tests`` tests sharing the error budget."""
    groups = math.ceil(8 * math.log(tests / DELTA))
    return groups * per_group * ctx.profile.mc_scale


# --------------------------------------------------------------------------
# evidence of statistical claims
# --------------------------------------------------------------------------

@dataclass
class StatTest:
    """One median-of-means test with its label.

    ``sided="two"``: passes when the analytic mean lies in the interval;
    ``sided="upper"``: the analytic value is an upper bound on the mean and the
    test passes when the interval reaches down to it (``estimate - halfwidth
    <= bound``); the false-failure probability is the same ``delta``.
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
    """A :class:`~transformer_theory.theory.statistics.RatioTest` with its label.

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
    """:func:`~transformer_theory.theory.statistics.test_mean` with a label."""
    return StatTest(label, test_mean(samples, expected, variance, delta=delta), sided)


def statistical_evidence(tests: list, *, detail: str, checks=(), figure=None,
                         extra_statistics: dict | None = None, delta_total: float = DELTA,
                         cases: int | None = None, tolerance_reason: str | None = None
                         ) -> Evidence:
    """Evidence of a statistical claim: every test and every exact check must pass.

    ``tests`` are :class:`StatTest` or :class:`RatioStatTest`; ``checks`` are
    ``(ok, note)`` pairs of deterministic conditions.
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


def _fl(values) -> list:
    """Plain floats for figure data."""
    return [float(v) for v in values]


# ==========================================================================
# 1. unbiased estimators
# ==========================================================================

#: (s, t) of the pairs claims 1 and 2 use: ||x + y||^2 <= 1 where terms are heavy-tailed.
_UNBIASED_PAIRS = ((0.5, 1.0), (1.0, 0.25), (0.2, 2.0))


@claims.claim(
    "performer.unbiased",
    title="Trigonometric, positive and hyperbolic random features are unbiased for SM",
    statement=r"\mathbb{E}_{w_i\sim\mathcal N(0,I_d)}\big[\phi(x)^{\top}\phi(y)\big]=\mathrm{SM}(x,y)"
              r"=e^{x^{\top}y}\quad\text{for }\phi\in\{\phi^{\mathrm{trig}},\phi^{+},\phi^{\mathrm{hyp}+}\}",
    sources=(LEMMA1, HYPERBOLIC, SEED_TRIG, SEED_POSITIVE, RAHIMI_RECHT_2007),
    kind=Kind.STATISTICAL, needs=("random_features",), proof="performer.positive_mse",
    notes="m = 4 iid Gaussian vectors generated by the claim, d = 5, three pairs with "
          "(||x+y||^2, ||x-y||^2) in {(0.5, 1), (1, 0.25), (0.2, 2)}. Each estimate's exact "
          "variance is Var(T)/m from the raw moments of one term; 9 median-of-means tests "
          "share the 1e-6 false-failure budget.")
def unbiased(subject, ctx) -> Evidence:
    d, m = 5, 4
    rng = ctx.rng("pairs")
    pairs = [pair_with(s, t, d, rng) for s, t in _UNBIASED_PAIRS]
    xs = np.stack([g.x for g in pairs])                                 # (P, d)
    ys = np.stack([g.y for g in pairs])                                 # (P, d)
    n_tests = len(KINDS) * len(pairs)
    n = mc_size(ctx, 150, n_tests)
    tests, series = [], []
    for kind in KINDS:
        est = sm_estimates(subject, kind, xs, ys, n, iid_draws(m, d, ctx.rng(kind)), m)  # (n, P)
        ratios, bars = [], []
        for p, g in enumerate(pairs):
            mom = iid_estimator_moments(kind, g, m)
            t = mean_test(f"{kind}, s={g.s:g}, t={g.t:g}", est[:, p], g.sm, mom.variance,
                          DELTA / n_tests)
            tests.append(t)
            ratios.append(t.test.estimate / g.sm)
            bars.append(t.test.halfwidth / g.sm)
        series.append({"x": list(range(len(pairs))), "y": _fl(ratios), "yerr": _fl(bars),
                       "label": kind, "style": "points"})
    series.append({"x": [0, len(pairs) - 1], "y": [1.0, 1.0], "label": "unbiased"})
    figure = {"type": "lines", "title": "Mean estimate / SM (median of means, 1e-6 interval)",
              "xlabel": "pair index (s, t) = " + ", ".join(f"({s:g}, {t:g})"
                                                          for s, t in _UNBIASED_PAIRS),
              "ylabel": "estimate / SM(x, y)", "series": series}
    return statistical_evidence(
        tests, figure=figure, cases=n * len(KINDS),
        detail=f"{n} independent estimates per kind and pair (m = {m}, d = {d}): the median of "
               f"means of each lies within its exact-variance interval around SM(x, y).")


# ==========================================================================
# 2. Lemma 2
# ==========================================================================

@claims.claim(
    "performer.mse_lemma2",
    title="The MSE of each estimator is exactly Lemma 2's",
    statement=r"\mathrm{MSE}^{\mathrm{trig}}_m=\tfrac{1}{2m}e^{\|x+y\|^2}\mathrm{SM}^{-2}"
              r"\big(1-e^{-\|x-y\|^2}\big)^2,\quad"
              r"\mathrm{MSE}^{+}_m=\tfrac1m e^{\|x+y\|^2}\mathrm{SM}^{2}\big(1-e^{-\|x+y\|^2}\big),"
              r"\quad\mathrm{MSE}^{\mathrm{hyp}+}_m=\tfrac12\big(1-e^{-\|x+y\|^2}\big)\mathrm{MSE}^{+}_m",
    sources=(LEMMA2, SEED_TRIG, HYPERBOLIC),
    kind=Kind.STATISTICAL, needs=("random_features",), proof="performer.trig_mse",
    notes="Sweep of ||x - y|| at ||x + y||^2 = 0.5 (and of ||x + y|| at ||x - y||^2 = 0.5), m = 8, "
          "d = 6, iid Gaussian vectors from the claim. The samples are squared errors "
          "(estimate - SM)^2; their exact variance E(est - SM)^4 - MSE^2 comes from the first "
          "four raw moments of one term. Derivations: performer.trig_mse, "
          "performer.positive_mse, performer.hyperbolic_mse, performer.relative_mse.")
def mse_lemma2(subject, ctx) -> Evidence:
    d, m = 6, 8
    rng = ctx.rng("pairs")
    sweep_t = (0.1, 0.5, 1.0, 2.0)           # ||x - y||^2 at s = 0.5 (x = y: claim regimes)
    sweep_s = (0.1, 1.0)                      # ||x + y||^2 at t = 0.5
    geometry = [pair_with(0.5, t, d, rng) for t in sweep_t] + \
               [pair_with(s, 0.5, d, rng) for s in sweep_s]
    xs = np.stack([g.x for g in geometry])
    ys = np.stack([g.y for g in geometry])
    n_tests = len(KINDS) * len(geometry)
    n = mc_size(ctx, 150, n_tests)
    tests, panels, panels_s = [], [], []
    for kind in KINDS:
        est = sm_estimates(subject, kind, xs, ys, n, iid_draws(m, d, ctx.rng(kind)), m)  # (n, P)
        points, bars, analytic = [], [], []
        for p, g in enumerate(geometry):
            mom = iid_estimator_moments(kind, g, m)
            value = lemma2_mse(kind, g, m)
            t = mean_test(f"{kind}, s={g.s:g}, t={g.t:g}", (est[:, p] - g.sm) ** 2, value,
                          mom.sq_error_variance, DELTA / n_tests)
            tests.append(t)
            points.append(t.test.estimate)
            bars.append(t.test.halfwidth)
            analytic.append(value)
        k = len(sweep_t)
        grid = np.linspace(0.0, 2.0, 41)
        curve = [lemma2_mse(kind, pair_with(0.5, float(tt), d, rng), m) for tt in grid]
        panels.append({"type": "lines", "title": kind, "xlabel": "||x - y||^2 (||x + y||^2 = 0.5)",
                       "ylabel": f"MSE, m = {m}",
                       "series": [{"x": _fl(grid), "y": _fl(curve), "label": "Lemma 2"},
                                  {"x": list(sweep_t), "y": _fl(points[:k]), "yerr": _fl(bars[:k]),
                                   "label": "Monte Carlo", "style": "points"}]})
        # the sweep of ||x + y||^2 at ||x - y||^2 = 0.5, and the pair (0.5, 0.5) of the first
        at_s = sorted([(0.5, sweep_t.index(0.5))] + [(ss, k + j) for j, ss in enumerate(sweep_s)])
        curve_s = [lemma2_mse(kind, pair_with(float(ss), 0.5, d, rng), m) for ss in grid]
        panels_s.append({"type": "lines", "title": kind, "ylabel": f"MSE, m = {m}",
                         "xlabel": "||x + y||^2 (||x - y||^2 = 0.5)",
                         "series": [{"x": _fl(grid), "y": _fl(curve_s), "label": "Lemma 2"},
                                    {"x": [ss for ss, _ in at_s],
                                     "y": _fl([points[p] for _, p in at_s]),
                                     "yerr": _fl([bars[p] for _, p in at_s]),
                                     "label": "Monte Carlo", "style": "points"}]})
    return statistical_evidence(
        tests, figure={"type": "panels", "title": "Lemma 2 against Monte Carlo",
                       "columns": len(KINDS), "panels": panels + panels_s,
                       "caption": "Lines: the claim's Lemma 2 MSE (the formula the check "
                                  "tests); points: the subject's mean squared error with "
                                  "its median-of-means interval. Top: against ||x − y||², "
                                  "the trigonometric error vanishes as y → x; bottom: against "
                                  "||x + y||², the positive and hyperbolic errors vanish as "
                                  "y → −x."},
        cases=n * len(KINDS),
        detail=f"{n} independent estimates per kind (m = {m}, d = {d}); at each of "
               f"{len(geometry)} pairs the mean squared error matches Lemma 2.")


# ==========================================================================
# 3. hyperbolic with m vectors beats positive with 2m
# ==========================================================================

@claims.claim(
    "performer.hyperbolic_beats_positive",
    title="Hyperbolic features from m vectors beat positive features from 2m vectors",
    statement=r"\mathrm{MSE}^{\mathrm{hyp}+}_m=\big(1-e^{-\|x+y\|^2}\big)\,\mathrm{MSE}^{+}_{2m}"
              r"<\mathrm{MSE}^{+}_{2m}\quad(x+y\ne0)",
    sources=(HYPERBOLIC, LEMMA2),
    kind=Kind.STATISTICAL, needs=("random_features",), proof="performer.hyperbolic_mse",
    notes="Both estimators have 2m features. The samples are the differences "
          "D = (hyp_m - SM)^2 - (pos_2m - SM)^2 of independent draws; E D = "
          "MSE^hyp_m - MSE^+_2m < 0 and Var D is exact. The sample size is chosen so that the "
          "interval's half-width is below |E D|/2: then an interval that contains E D lies "
          "entirely below 0, and the Monte Carlo shows the hyperbolic estimator strictly better "
          "with the same 1e-6 false-failure probability.")
def hyperbolic_beats_positive(subject, ctx) -> Evidence:
    d, m = 6, 8
    rng = ctx.rng("pairs")
    geometry = [pair_with(s, 0.5, d, rng) for s in (0.1, 0.25, 0.5)]
    xs = np.stack([g.x for g in geometry])
    ys = np.stack([g.y for g in geometry])
    n_tests = 3 * len(geometry)
    groups = math.ceil(8 * math.log(n_tests / DELTA))
    plans = []
    for g in geometry:
        hyp = iid_estimator_moments("hyperbolic", g, m)
        pos = iid_estimator_moments("positive", g, 2 * m)
        mean_d = lemma2_mse("hyperbolic", g, m) - lemma2_mse("positive", g, 2 * m)
        var_d = hyp.sq_error_variance + pos.sq_error_variance
        # half-width 2 sqrt(var/b) <= |E D| / 2  <=>  b >= 16 var / E D^2
        plans.append((g, hyp, pos, mean_d, var_d, math.ceil(16 * var_d / mean_d ** 2)))
    per_group = max(100, max(p[-1] for p in plans))
    n = groups * per_group * ctx.profile.mc_scale
    est_h = sm_estimates(subject, "hyperbolic", xs, ys, n, iid_draws(m, d, ctx.rng("hyp")), m)
    est_p = sm_estimates(subject, "positive", xs, ys, n, iid_draws(2 * m, d, ctx.rng("pos")), 2 * m)
    tests, checks = [], []
    for p, (g, hyp, pos, mean_d, var_d, _) in enumerate(plans):
        sq_h = (est_h[:, p] - g.sm) ** 2
        sq_p = (est_p[:, p] - g.sm) ** 2
        diff = mean_test(f"MSE hyp(m) - MSE pos(2m), s={g.s:g}", sq_h - sq_p, mean_d, var_d,
                         DELTA / n_tests)
        tests += [diff,
                  mean_test(f"MSE hyp(m={m}), s={g.s:g}", sq_h, lemma2_mse("hyperbolic", g, m),
                            hyp.sq_error_variance, DELTA / n_tests),
                  mean_test(f"MSE pos(2m={2 * m}), s={g.s:g}", sq_p,
                            lemma2_mse("positive", g, 2 * m), pos.sq_error_variance,
                            DELTA / n_tests)]
        upper = diff.test.estimate + diff.test.halfwidth
        checks.append((upper < 0, f"s={g.s:g}: the difference's interval reaches {upper:.3g} >= 0"))
    grid = np.linspace(0.02, 1.0, 30)
    figure = {"type": "lines", "title": f"MSE / SM^2 against ||x + y||^2 (m = {m})",
              "xlabel": "||x + y||^2", "ylabel": "relative MSE", "yscale": "log",
              "series": [
                  {"x": _fl(grid), "y": _fl([2 * math.sinh(s / 2) ** 2 / m for s in grid]),
                   "label": f"hyperbolic, m = {m}"},
                  {"x": _fl(grid), "y": _fl([math.expm1(s) / (2 * m) for s in grid]),
                   "label": f"positive, 2m = {2 * m}"},
                  {"x": [g.s for g in geometry],
                   "y": _fl([tests[3 * i + 1].test.estimate / g.sm ** 2
                             for i, g in enumerate(geometry)]),
                   "yerr": _fl([tests[3 * i + 1].test.halfwidth / g.sm ** 2
                                for i, g in enumerate(geometry)]),
                   "label": "hyperbolic MC", "style": "points"},
                  {"x": [g.s for g in geometry],
                   "y": _fl([tests[3 * i + 2].test.estimate / g.sm ** 2
                             for i, g in enumerate(geometry)]),
                   "yerr": _fl([tests[3 * i + 2].test.halfwidth / g.sm ** 2
                                for i, g in enumerate(geometry)]),
                   "label": "positive MC", "style": "points"}]}
    return statistical_evidence(
        tests, checks=checks, figure=figure, cases=2 * n,
        detail=f"{n} independent draws per estimator (d = {d}): at ||x + y||^2 = 0.1, 0.25, "
               f"0.5 the hyperbolic MSE with m = {m} vectors is below the positive MSE with {2 * m}, "
               f"and each MSE matches Lemma 2.")


# ==========================================================================
# 4. regimes
# ==========================================================================

def _regime_path(radius: float, d: int, v_sq: float, basis: np.ndarray) -> PairGeometry:
    """``x = -R u``, ``y = R u + v`` with ``v`` orthogonal to ``u``: SM = e^{-R^2} -> 0."""
    u, v = basis[:, 0], basis[:, 1]
    return pair_geometry(-radius * u, radius * u + math.sqrt(v_sq) * v)


@claims.claim(
    "performer.regimes",
    title="Regimes: trig is exact at x = y, positive at x = -y and accurate as SM -> 0",
    statement=r"\widehat{SM}^{\mathrm{trig}}_m(x,x)=e^{\|x\|^2},\quad"
              r"\widehat{SM}^{+}_m(x,-x)=\Lambda=e^{-\|x\|^2},\quad"
              r"\frac{\mathrm{MSE}^{+}_m}{\mathrm{SM}^2}=\frac{e^{\|x+y\|^2}-1}{m},\quad"
              r"\mathrm{SM}\to0:\ \mathrm{MSE}^{+}_m\to0,\ \mathrm{MSE}^{\mathrm{trig}}_m\to\infty",
    sources=(SEED_REGIMES, LEMMA2),
    kind=Kind.STATISTICAL, needs=("random_features",), proof="performer.regimes",
    notes="Exact parts: for random W (m in {1, 5, 32}) and x of norm up to 1.5 in float64 and "
          "float32, the trig estimate at y = x and the positive estimate at y = -x equal their "
          "closed forms to rounding. Statistical parts (m = 8, iid W from the claim): the relative "
          "positive MSE at ||x + y||^2 = 0.5 is (e^0.5 - 1)/m for pairs of different norms, angles "
          "and dimensions; along x = -R u, y = R u + v (SM = e^{-R^2}) the positive and trig MSEs "
          "match Lemma 2 while one vanishes and the other grows.")
def regimes(subject, ctx) -> Evidence:
    rng = ctx.rng("exact")
    checks = []
    worst_exact = 0.0
    for dt in (np.float64, np.float32):
        for d in (2, 7):
            for m in (1, 5, 32):
                for norm in (0.3, 1.0, 1.5):
                    x = rng.standard_normal(d)
                    x = (norm * x / np.linalg.norm(x)).astype(dt)                   # (d,)
                    w = rng.standard_normal((m, d)).astype(dt)                      # (m, d)
                    tol = tolerance("composite", dt, n=m + d)
                    x64 = x.astype(np.float64)
                    trig = np.asarray(subject.random_features(x[None], w, kind="trig"),
                                      dtype=np.float64)[0]
                    err = compare(trig @ trig, math.exp(x64 @ x64), tol).error
                    pos = np.asarray(subject.random_features(np.stack([x, -x]), w,
                                                             kind="positive"), dtype=np.float64)
                    err_pos = compare(pos[0] @ pos[1], math.exp(-(x64 @ x64)), tol).error
                    worst_exact = max(worst_exact, err / tol.rtol, err_pos / tol.rtol)
                    checks.append((err <= tol.rtol,
                                   f"trig estimate at y = x off by {err:.2e} (rel) for d={d}, "
                                   f"m={m}, |x|={norm}, {np.dtype(dt).name}"))
                    checks.append((err_pos <= tol.rtol,
                                   f"positive estimate at y = -x off by {err_pos:.2e} (rel) for "
                                   f"d={d}, m={m}, |x|={norm}, {np.dtype(dt).name}"))
    m = 8
    s0 = 0.5
    # relative MSE at fixed ||x + y||^2 for different dimensions, norms and angles
    same_s = {d: [pair_with(s0, t, d, ctx.rng(f"same_s/{d}")) for t in (0.1, 1.0, 3.0)]
              for d in (3, 12)}
    radii = (0.0, 0.5, 1.0, 1.5, 2.0)
    basis, _ = np.linalg.qr(ctx.rng("path").standard_normal((4, 2)))    # (4, 2)
    path = [_regime_path(r, 4, s0, basis) for r in radii]
    n_tests = sum(len(v) for v in same_s.values()) + 2 * len(path)
    n = mc_size(ctx, 150, n_tests)
    tests = []
    rel_value = math.expm1(s0) / m
    for d, geometry in same_s.items():
        xs, ys = np.stack([g.x for g in geometry]), np.stack([g.y for g in geometry])
        est = sm_estimates(subject, "positive", xs, ys, n, iid_draws(m, d, ctx.rng(f"rel/{d}")), m)
        for p, g in enumerate(geometry):
            mom = iid_estimator_moments("positive", g, m)
            tests.append(mean_test(
                f"relative MSE, d={d}, |x-y|^2={g.t:g}", (est[:, p] / g.sm - 1.0) ** 2,
                rel_value, mom.sq_error_variance / g.sm ** 4, DELTA / n_tests))
    xs, ys = np.stack([g.x for g in path]), np.stack([g.y for g in path])
    curves = {}
    for kind in ("positive", "trig"):
        est = sm_estimates(subject, kind, xs, ys, n, iid_draws(m, 4, ctx.rng(f"path/{kind}")), m)
        values, points, bars = [], [], []
        for p, g in enumerate(path):
            value = lemma2_mse(kind, g, m)
            mom = iid_estimator_moments(kind, g, m)
            t = mean_test(f"{kind} MSE at R={radii[p]:g} (SM={g.sm:.3g})",
                          (est[:, p] - g.sm) ** 2, value, mom.sq_error_variance, DELTA / n_tests)
            tests.append(t)
            values.append(value)
            points.append(t.test.estimate)
            bars.append(t.test.halfwidth)
        curves[kind] = (values, points, bars)
    pos_values, trig_values = curves["positive"][0], curves["trig"][0]
    checks.append((all(a > b for a, b in zip(pos_values, pos_values[1:])),
                   "the positive MSE does not decrease along the path"))
    checks.append((all(a < b for a, b in zip(trig_values, trig_values[1:])),
                   "the trig MSE does not increase along the path"))
    sms = [g.sm for g in path]
    figure = {"type": "lines", "title": f"MSE as SM -> 0 along x = -R u, y = R u + v (m = {m})",
              "xlabel": "SM(x, y) = exp(-R^2)", "ylabel": "MSE", "xscale": "log", "yscale": "log",
              "series": [{"x": _fl(sms), "y": _fl(curves[k][0]), "label": f"{k}: Lemma 2"}
                         for k in ("positive", "trig")] +
                        [{"x": _fl(sms), "y": _fl(curves[k][1]), "yerr": _fl(curves[k][2]),
                          "label": f"{k}: Monte Carlo", "style": "points"}
                         for k in ("positive", "trig")]}
    evidence = statistical_evidence(
        tests, checks=checks, figure=figure, cases=n * (len(same_s) + 2) + len(checks),
        detail=f"Exact regimes hold to rounding (worst {worst_exact:.2g} of the tolerance); with "
               f"{n} estimates per point the relative positive MSE at ||x+y||^2 = {s0} is "
               f"(e^{s0} - 1)/m = {rel_value:.4f} for every pair, and along SM -> 0 the positive "
               f"MSE falls to {pos_values[-1]:.2e} while the trig MSE grows to "
               f"{trig_values[-1]:.3g}.")
    return evidence


# ==========================================================================
# 5. positive normalisers
# ==========================================================================

def _wrapped_normal_tv(alpha: float) -> float:
    """TV distance between ``N(0, alpha^2)`` mod ``2 pi`` and the uniform angle.

    The wrapped density is ``(1/2pi)(1 + 2 sum_k e^{-k^2 alpha^2/2} cos k theta)``,
    so the distance is at most ``sum_{k>=1} e^{-k^2 alpha^2 / 2}``.
    """
    return float(sum(math.exp(-k * k * alpha * alpha / 2) for k in range(1, 50)))


@claims.claim(
    "performer.positive_normalizer_positive",
    title="Positive features keep every normaliser D_ii > 0; trig features do not",
    statement=r"\hat D_{ii}=\phi^{+}(q_i)^{\top}\sum_j\phi^{+}(k_j)>0\ \text{always};\quad"
              r"\phi^{\mathrm{trig}}:\ \Pr[\hat D_{ii}\le0]\to\tfrac12\ \text{for distant keys}",
    sources=(INSTABILITY, SEED_RENORM, LEMMA1, HOEFFDING_1963),
    kind=Kind.STATISTICAL, needs=("random_features",),
    notes="Positive and hyperbolic: every feature and every row normaliser of Q'(K'^T 1) is "
          "positive for queries and keys of norms from 0.1 to 3 (float64). Trigonometric: rows "
          "whose L = 4 keys sit at distance alpha = 6 from the query in orthogonal directions; "
          "the angles w^T(q - k_j) are then within total variation L m sum_k e^{-k^2 alpha^2/2} of "
          "iid uniform ones, under which D_ii is symmetric about 0, so Pr[D_ii <= 0] >= 1/2 - "
          "that. Hoeffding's inequality over n independent rows bounds the chance that the "
          "fraction falls below 1/3.")
def positive_normalizer_positive(subject, ctx) -> Evidence:
    rng = ctx.rng("positive")
    d, m, L = 8, 32, 16
    checks = []
    smallest = math.inf
    for kind in ("positive", "hyperbolic"):
        for scale in (0.1, 0.5, 1.0, 3.0):
            for _ in range(4):
                q = rng.standard_normal((L, d))
                q *= scale / np.linalg.norm(q, axis=-1, keepdims=True)            # (L, d)
                k = rng.standard_normal((L, d))
                k *= scale / np.linalg.norm(k, axis=-1, keepdims=True)            # (L, d)
                w = rng.standard_normal((m, d))                                   # (m, d)
                qf = _features(subject, q, w, kind)                               # (L, F)
                kf = _features(subject, k, w, kind)                               # (L, F)
                den = qf @ kf.sum(axis=0)                                         # (L,)
                smallest = min(smallest, float(np.min(den)))
                checks.append((bool(np.all(qf > 0) and np.all(kf > 0)),
                               f"{kind}: a feature <= 0 at norm {scale}"))
                checks.append((bool(np.all(den > 0) and np.all(np.isfinite(den))),
                               f"{kind}: a normaliser D_ii <= 0 at norm {scale} "
                               f"(min {float(np.min(den)):.3g})"))
    # trig: independent rows with distant keys
    d, m, L, alpha = 8, 16, 4, 6.0
    p_low = 0.5 - L * m * _wrapped_normal_tv(alpha)
    threshold = 1.0 / 3.0
    n_rows = 600 * ctx.profile.mc_scale
    bound = hoeffding_tail(n_rows, p_low - threshold)
    rng = ctx.rng("trig")

    def trig_fraction(alpha_: float, rows: int, kind: str = "trig") -> float:
        neg = 0
        done = 0
        while done < rows:                               # loop over calls, not positions
            r = min(reps_per_call(m, (L + 1) * d), rows - done)
            q = rng.standard_normal((r, 1, d))                                    # (r, 1, d)
            q /= np.linalg.norm(q, axis=-1, keepdims=True)
            dirs = np.linalg.qr(rng.standard_normal((r, d, L)))[0]                # (r, d, L)
            keys = q + alpha_ * np.swapaxes(dirs, -1, -2)                         # (r, L, d)
            w = rng.standard_normal((m, r * d))                                   # (m, r d)
            qf = _features(subject, embed_rows(q), w, kind)                       # (r, 1, F)
            kf = _features(subject, embed_rows(keys), w, kind)                    # (r, L, F)
            den = np.einsum("rf,rf->r", qf[:, 0, :], kf.sum(axis=1))              # (r,)
            neg += int(np.sum(den <= 0))
            done += r
        return neg / rows

    fraction = trig_fraction(alpha, n_rows)
    checks.append((fraction >= threshold,
                   f"trig: only {fraction:.3f} of rows have D_ii <= 0 (need >= 1/3)"))
    sweep = (0.25, 0.5, 1.0, 2.0, 4.0, 6.0)
    sweep_rows = 128 * ctx.profile.mc_scale
    trig_curve = [trig_fraction(a, sweep_rows) for a in sweep]
    pos_curve = [trig_fraction(a, sweep_rows, "positive") for a in sweep]
    figure = {"type": "lines", "title": "Fraction of rows with D_ii <= 0",
              "xlabel": "distance alpha of the keys from the query", "ylabel": "fraction",
              "series": [{"x": list(sweep), "y": _fl(trig_curve), "label": "trig",
                          "style": "points"},
                         {"x": list(sweep), "y": _fl(pos_curve), "label": "positive",
                          "style": "points"},
                         {"x": [0.0, 6.0], "y": [0.5, 0.5], "label": "1/2"}]}
    spread = math.sqrt(math.log(1 / DELTA) / (2 * n_rows))
    stats_row = {"trig: fraction of rows with D_ii <= 0 (alpha = 6)": {
        "estimate": fraction, "interval": [fraction - spread, min(1.0, fraction + spread)],
        "analytic": p_low, "samples": n_rows, "false_failure_probability": bound,
        "method": f"Hoeffding; analytic = lower bound 1/2 - L m TV on Pr[D_ii <= 0]; passes "
                  f"when the fraction is >= 1/3, which a correct map misses with probability "
                  f"<= exp(-2 n (p - 1/3)^2) = {bound:.1e}"}}
    passed = all(ok for ok, _ in checks) and bound <= DELTA
    failed = [note for ok, note in checks if not ok]
    return Evidence(
        passed=passed, cases=len(checks) + n_rows,
        max_error=0.0 if passed else math.inf, tolerance=0.0,
        tolerance_reason="exact sign conditions; the trig fraction is bounded by Hoeffding's "
                         f"inequality (false-failure probability {bound:.1e})",
        detail=(f"Positive and hyperbolic normalisers are all > 0 (smallest {smallest:.3g}). "
                f"With trig features {fraction:.3f} of {n_rows} independent rows have D_ii <= 0 "
                f"(>= 1/3 required; Pr[a correct trig map fails] <= {bound:.1e})."
                + (" Failed: " + "; ".join(failed[:3]) if failed else "")),
        statistics=stats_row, figure=figure)




# ==========================================================================
# 6. orthogonal random features
# ==========================================================================

def stacked_draws(ws: np.ndarray) -> Callable[[int], np.ndarray]:
    """``draw_w`` handing out the precomputed ``(n, m, d)`` matrices in order, side by side."""
    state = {"next": 0}

    def draw(r):
        start = state["next"]
        block = ws[start:start + r]                                    # (r, m, d)
        state["next"] = start + block.shape[0]
        return np.swapaxes(block, 0, 1).reshape(ws.shape[1], -1)       # (m, r d)
    return draw


def _blocks(m: int, d: int) -> list[slice]:
    """Row slices of the orthogonal blocks of an ``(m, d)`` matrix."""
    return [slice(start, min(start + d, m)) for start in range(0, m, d)]


@claims.claim(
    "performer.orthogonal_features",
    title="Orthogonal random features: orthogonal blocks, chi_d norms, fair signs, unbiased",
    statement=r"W=\big[\rho_i\,q_i^{\top}\big]_{i\le m},\ Q=[q_1\cdots q_d]^{\top}\ \text{Haar per block},\ "
              r"\rho_i\overset{iid}{\sim}\chi_d\ \Rightarrow\ w_i\sim\mathcal N(0,I_d),\ "
              r"w_i^{\top}w_j=0\ (i\ne j\ \text{in a block}),\ "
              r"\mathbb E\,\widehat{SM}^{\mathrm{ort}+}_m=\mathrm{SM}",
    sources=(ORF, THEOREM2, YU_2016, MEZZADRI_2007, MASSEY_1951),
    kind=Kind.STATISTICAL, needs=("orthogonal_gaussian", "random_features"),
    notes="n draws of orthogonal_gaussian(m=6, d=4) (a full block and two rows of a second). "
          "Rows of a block are orthogonal to rounding; the n m row norms pass a Kolmogorov-Smirnov "
          "test against chi_4 (exact p-value); the sign of every entry (row, coordinate) is "
          "positive half of the time (exact binomial tests); and the positive estimator is "
          "unbiased for x + y along e_1, e_d, (1,...,1)/sqrt(d) and a random direction, with the "
          "exact variance of the orthogonal estimator. Without the QR sign correction "
          "Q diag(sign diag R) the (0, 0) entry of every block is always negative (LAPACK's "
          "Householder convention), a bug of public implementations the sign test catches. "
          "The budget 1e-6 is split evenly between the KS test, the 24 sign tests and the 4 "
          "means.")
def orthogonal_features(subject, ctx) -> Evidence:
    d, m = 4, 6
    directions = {"e_1": np.eye(d)[0], "e_d": np.eye(d)[-1],
                  "(1,...,1)/sqrt(d)": np.ones(d) / math.sqrt(d)}
    extra = ctx.rng("direction").standard_normal(d)
    directions["random"] = extra / np.linalg.norm(extra)
    n_sign = m * d
    n_mean = len(directions)
    n = mc_size(ctx, 40, 3 * n_mean)
    rng = ctx.rng("sampler")
    ws = np.stack([sampler_matrix(subject, m, d, rng) for _ in range(n)])  # (n, m, d)
    checks = []
    # (a) exact orthogonality within each block
    tol = tolerance("composite", np.float64, n=d)
    worst = 0.0
    for rows in _blocks(m, d):
        block = ws[:, rows, :]                                          # (n, k, d)
        gram = block @ np.swapaxes(block, -1, -2)                       # (n, k, k)
        norms = np.sqrt(np.einsum("nkk->nk", gram))                     # (n, k)
        cosine = gram / (norms[:, :, None] * norms[:, None, :])         # (n, k, k)
        off = cosine - np.eye(block.shape[1])
        worst = max(worst, float(np.max(np.abs(off))))
    checks.append((worst <= tol.rtol,
                   f"rows of a block are not orthogonal: |cos| up to {worst:.2e} "
                   f"(tolerance {tol.rtol:.1e})"))
    # (b) chi_d norms: Kolmogorov-Smirnov, exact p-value
    norms = np.linalg.norm(ws, axis=-1).ravel()                         # (n m,)
    ks = sps.kstest(norms, sps.chi(d).cdf, method="exact")
    alpha_ks = DELTA / 3
    checks.append((ks.pvalue >= alpha_ks,
                   f"row norms are not chi_{d}: KS statistic {ks.statistic:.4f}, "
                   f"p = {ks.pvalue:.2e} < {alpha_ks:.1e}"))
    # (c) fair signs, entry by entry
    positives = np.sum(ws > 0, axis=0)                                  # (m, d)
    alpha_sign = DELTA / 3 / n_sign
    pvalues = np.array([[sps.binomtest(int(c), n, 0.5).pvalue for c in row]
                        for row in positives])                          # (m, d)
    worst_entry = np.unravel_index(np.argmin(pvalues), pvalues.shape)
    checks.append((float(pvalues.min()) >= alpha_sign,
                   f"entry {tuple(int(i) for i in worst_entry)} is positive in "
                   f"{int(positives[worst_entry])} of {n} draws (binomial p = "
                   f"{float(pvalues.min()):.1e} < {alpha_sign:.1e})"))
    # (d) unbiased along every direction
    s = 1.0
    geometry = [pair_geometry(math.sqrt(s) / 2 * u, math.sqrt(s) / 2 * u)
                for u in directions.values()]
    xs = np.stack([g.x for g in geometry])
    est = sm_estimates(subject, "positive", xs, xs, n, stacked_draws(ws), m)  # (n, P)
    tests = []
    for p, (label, g) in enumerate(zip(directions, geometry)):
        tests.append(mean_test(f"E estimate, x + y along {label}", est[:, p], g.sm,
                               orthogonal_mse_exact(g, m, d), DELTA / 3 / n_mean))
    critical = float(sps.kstwo(norms.size).isf(alpha_ks))
    sign_low = float(sps.binom.ppf(alpha_sign / 2, n, 0.5)) / n
    stats_extra = {
        "KS distance of the row norms to chi_d": {
            "estimate": float(ks.statistic), "interval": [0.0, critical], "analytic": 0.0,
            "samples": int(norms.size), "false_failure_probability": alpha_ks,
            "method": f"Kolmogorov-Smirnov, exact p-value {ks.pvalue:.3g}; passes when the "
                      f"distance is below the critical value (p >= {alpha_ks:.1e})"},
        "most lopsided entry sign (fraction > 0)": {
            "estimate": float(positives[worst_entry]) / n, "interval": [sign_low, 1 - sign_low],
            "analytic": 0.5, "samples": n, "false_failure_probability": DELTA / 3,
            "method": f"exact two-sided binomial tests of all {n_sign} entries (each at level "
                      f"{alpha_sign:.1e}); smallest p = {float(pvalues.min()):.3g} at entry "
                      f"{tuple(int(i) for i in worst_entry)}"}}
    grid = np.linspace(0, 5, 60)
    figure = {"type": "panels", "title": "Orthogonal random features", "panels": [
        {"type": "lines", "title": "row norms against chi_d", "xlabel": "norm",
         "ylabel": "CDF",
         "series": [{"x": _fl(grid), "y": _fl(sps.chi(d).cdf(grid)), "label": f"chi_{d}"},
                    {"x": _fl(np.sort(norms)[:: max(1, norms.size // 60)]),
                     "y": _fl((np.arange(norms.size)[:: max(1, norms.size // 60)] + 0.5)
                              / norms.size),
                     "label": "empirical", "style": "points"}]},
        {"type": "lines", "title": "fraction of positive entries (row, coordinate)",
         "xlabel": "entry index row * d + coordinate", "ylabel": "fraction > 0",
         "series": [{"x": list(range(n_sign)), "y": _fl(positives.ravel() / n),
                     "label": "sampler", "style": "points"},
                    {"x": [0, n_sign - 1], "y": [0.5, 0.5], "label": "1/2"}]}]}
    return statistical_evidence(
        tests, checks=checks, figure=figure, extra_statistics=stats_extra, cases=n,
        detail=f"{n} draws of orthogonal_gaussian({m}, {d}): block rows orthogonal to "
               f"{worst:.1e}, KS p-value {ks.pvalue:.3g} for chi_{d} norms, smallest sign-test "
               f"p-value {float(pvalues.min()):.3g}, and the estimator is unbiased along e_1, "
               f"e_d, the diagonal and a random direction.")


# ==========================================================================
# 7. orthogonal features lower the MSE (Theorem 2) and the exact MSE
# ==========================================================================

def _orthogonal_estimates(subject, ctx, g: PairGeometry, m: int, d: int, n: int,
                          label: str) -> np.ndarray:
    """``n`` independent orthogonal positive estimates of ``SM`` at pair ``g``."""
    draw = sampler_draws(subject, m, d, ctx.rng(label))
    return sm_estimates(subject, "positive", g.x[None], g.y[None], n, draw, m)[:, 0]


@claims.claim(
    "performer.orthogonal_mse_exact",
    title="The exact MSE of block-orthogonal positive features matches Monte Carlo",
    statement=r"\mathrm{MSE}^{\mathrm{ort}+}_m=\Lambda^2\Big[\frac{e^{2s}-e^{s}}{m}+\frac{P}{m^2}"
              r"\big({}_1F_1(d;\tfrac d2;\tfrac s2)-e^{s}\big)\Big],\quad s=\|x+y\|^2,\ "
              r"P=b\,d(d-1)+r(r-1),\ m=bd+r",
    sources=(THEOREM2, ORF, YU_2016),
    kind=Kind.STATISTICAL, needs=("orthogonal_gaussian", "random_features"),
    proof="performer.orthogonal_pair_moment",
    notes="d = 4, ||x + y||^2 = 0.3, m in {3, 6} (a partial block; a full and a partial "
          "block, where P/m^2 differs from (m-1)/m). The samples are squared errors; their "
          "exact variance needs the fourth moment of the orthogonal estimator, computed from "
          "the joint moments E exp(sum p_i w_i^T z) of up to four rows of a Haar block with chi "
          "norms (orthogonal_joint_mgf).")
def orthogonal_mse_exact_claim(subject, ctx) -> Evidence:
    d, ms = 4, (3, 6)
    g = pair_with(0.3, 0.5, d, ctx.rng("pair"))
    n = mc_size(ctx, 50, len(ms))
    tests = []
    for m in ms:
        est = _orthogonal_estimates(subject, ctx, g, m, d, n, f"m={m}")
        mom = orthogonal_estimator_moments(g, m, d)
        tests.append(mean_test(f"MSE, m={m}", (est - g.sm) ** 2, orthogonal_mse_exact(g, m, d),
                               mom.sq_error_variance, DELTA / len(ms)))
    grid = list(range(1, 13))
    figure = {"type": "lines", "title": f"Orthogonal MSE against m (d = {d}, s = {g.s:g})",
              "xlabel": "m", "ylabel": "MSE", "yscale": "log",
              "caption": "All estimators decay as 1/m; orthogonal features are below iid "
                         "positive ones. Lines: the claim's exact orthogonal MSE and Lemma 2 "
                         "for the iid estimators; points: the subject's sampler.",
              "series": [{"x": grid, "y": _fl([orthogonal_mse_exact(g, k, d) for k in grid]),
                          "label": "exact orthogonal"},
                         *({"x": grid, "y": _fl([lemma2_mse(kind, g, k) for k in grid]),
                            "label": f"{kind} iid (Lemma 2)", "style": "dashed"}
                           for kind in KINDS),
                         {"x": list(ms), "y": _fl([t.test.estimate for t in tests]),
                          "yerr": _fl([t.test.halfwidth for t in tests]),
                          "label": "Monte Carlo", "style": "points"}]}
    return statistical_evidence(
        tests, figure=figure, cases=n * len(ms),
        detail=f"{n} draws of the subject's sampler per m: the mean squared error of the "
               f"orthogonal positive estimator matches the exact formula at m = {ms} (d = {d}).")


@claims.claim(
    "performer.orthogonal_mse_bound",
    title="Orthogonal features lower the MSE (Theorem 2)",
    statement=r"\mathrm{MSE}^{\mathrm{ort}+}_m\le\mathrm{MSE}^{+}_m-\frac{2(m-1)}{m(d+2)}"
              r"\big(\mathrm{SM}(x,y)-\Lambda\big)^2\quad(m\le d)",
    sources=(THEOREM2, ORF),
    kind=Kind.STATISTICAL, needs=("orthogonal_gaussian", "random_features"),
    proof="performer.orthogonal_mse_bound",
    notes="Monte Carlo with the subject's sampler at d = m = 8, ||x + y||^2 = 0.5: the "
          "mean squared error is not above the bound (one-sided median of means with the exact "
          "variance), and the estimator is the unbiased one the theorem is about (its mean is "
          "SM; a biased sampler can have a small MSE for the wrong reason). Analytically, the "
          "exact MSE satisfies the bound for every m <= d <= 16 and ||x+y||^2 in (0, 4]; for "
          "m > d the bound holds with P/m^2 (same-block pairs) in place of (m-1)/m, while the "
          "wording with (m-1)/m is violated (reported, not part of the claim).")
def orthogonal_mse_bound(subject, ctx) -> Evidence:
    checks = []
    # analytic: the exact MSE against the bound on a grid (the statement's content)
    worst_gap, violations_as_worded = math.inf, []
    rng = ctx.rng("grid")
    for d in (2, 4, 8, 16):
        for s in (0.05, 0.3, 1.0, 2.0, 4.0):
            g = pair_with(s, 0.5, d, rng)
            for m in range(1, 2 * d + 1):
                exact = orthogonal_mse_exact(g, m, d)
                bound = theorem2_bound(g, m, d)
                slack = 1e-12 * max(abs(bound), lemma2_mse("positive", g, m))
                if m >= 2:
                    worst_gap = min(worst_gap, (bound - exact) / lemma2_mse("positive", g, m))
                checks.append((exact <= bound + slack,
                               f"exact MSE {exact:.6g} above the bound {bound:.6g} "
                               f"(d={d}, m={m}, s={s})"))
                if m > d and exact > theorem2_bound(g, m, d, as_worded=True) + slack:
                    violations_as_worded.append((d, m, s))
    # Monte Carlo with the subject's sampler
    d, ms = 8, (8,)
    g = pair_with(0.5, 0.5, d, ctx.rng("pair"))
    n = mc_size(ctx, 60, 2 * len(ms))
    tests = []
    for m in ms:
        est = _orthogonal_estimates(subject, ctx, g, m, d, n, f"m={m}")
        mom = orthogonal_estimator_moments(g, m, d)
        tests.append(mean_test(f"MSE <= Theorem 2 bound, m={m}", (est - g.sm) ** 2,
                               theorem2_bound(g, m, d), mom.sq_error_variance,
                               DELTA / (2 * len(ms)), sided="upper"))
        tests.append(mean_test(f"E estimate = SM (the theorem's setting), m={m}", est, g.sm,
                               mom.variance, DELTA / (2 * len(ms))))
    grid = list(range(1, 2 * d + 1))
    figure = {"type": "lines", "title": f"Theorem 2 at d = {d}, ||x + y||^2 = {g.s:g}",
              "xlabel": "m", "ylabel": "MSE", "yscale": "log",
              "series": [{"x": grid, "y": _fl([lemma2_mse("positive", g, k) for k in grid]),
                          "label": "iid MSE+"},
                         {"x": grid, "y": _fl([theorem2_bound(g, k, d) for k in grid]),
                          "label": "bound (P/m^2 form)"},
                         {"x": grid, "y": _fl([orthogonal_mse_exact(g, k, d) for k in grid]),
                          "label": "exact orthogonal"},
                         {"x": list(ms), "y": _fl([t.test.estimate for t in tests[::2]]),
                          "yerr": _fl([t.test.halfwidth for t in tests[::2]]),
                          "label": "Monte Carlo", "style": "points"}]}
    worded = (f"the wording with (m-1)/m fails for m > d at {len(violations_as_worded)} grid "
              f"points, e.g. (d, m, s) = {violations_as_worded[0]}"
              if violations_as_worded else "the wording with (m-1)/m held on the grid")
    return statistical_evidence(
        tests, checks=checks, figure=figure, cases=n * len(ms),
        detail=f"The exact orthogonal MSE is below the bound at all grid points (equal at m = 1; "
               f"smallest relative slack for m >= 2: {worst_gap:.2e}); {worded}. With {n} draws "
               f"of the subject's sampler the Monte Carlo MSE at m = d = {d} is consistent with the bound.")


# ==========================================================================
# 8. the regularised softmax kernel
# ==========================================================================

@claims.claim(
    "performer.smreg_kernel",
    title="Rows of norm sqrt(d) estimate the regularised kernel SMREG <= SM",
    statement=r"\mathbb E\,\widehat{SM}^{\mathrm{reg}}_m=\mathrm{SMREG}(x,y)=\Lambda\,"
              r"{}_0F_1\!\big(;\tfrac d2;\tfrac{d\,\|x+y\|^2}{4}\big)\le\mathrm{SM}(x,y)",
    sources=(SMREG_SOURCE, ORF),
    kind=Kind.STATISTICAL, needs=("orthogonal_gaussian", "random_features"),
    notes="Analytically SMREG <= SM on a grid of d and ||x + y||^2 (termwise (d/2)_k >= (d/2)^k). "
          "Monte Carlo: orthogonal_gaussian(m=8, d=4, scaling='fixed') with ||x + y||^2 = 4 (the "
          "terms are bounded by e^{sqrt(d) ||x+y||}, so a larger s is safe here); the mean "
          "matches SMREG with the exact variance, and the sample size makes the interval's "
          "half-width below (SM - SMREG)/2, so the estimate is shown to be below SM.")
def smreg_kernel(subject, ctx) -> Evidence:
    checks = []
    rng = ctx.rng("grid")
    for d in (1, 2, 4, 16, 64):
        for s in (0.0, 0.5, 2.0, 6.0):
            g = pair_with(s, 0.5 if d > 1 else 0.0, d, rng)
            value = smreg(g, d)
            checks.append((value <= g.sm * (1 + 1e-13),
                           f"SMREG {value:.6g} > SM {g.sm:.6g} at d={d}, s={s}"))
    d, m = 4, 8
    g = pair_with(4.0, 0.5, d, ctx.rng("pair"))
    mean, var = smreg(g, d), smreg_estimator_variance(g, m, d)
    gap = g.sm - mean
    groups = math.ceil(8 * math.log(1 / DELTA))
    per_group = max(40, math.ceil(16 * var / gap ** 2))
    n = groups * per_group * ctx.profile.mc_scale
    draw = sampler_draws(subject, m, d, ctx.rng("sampler"), scaling="fixed")
    est = sm_estimates(subject, "positive", g.x[None], g.y[None], n, draw, m)[:, 0]
    test = mean_test("E estimate = SMREG", est, mean, var, DELTA)
    upper = test.test.estimate + test.test.halfwidth
    checks.append((upper < g.sm, f"the estimate's interval reaches {upper:.4g} >= SM {g.sm:.4g}"))
    grid = np.linspace(0, 6, 61)
    figure = {"type": "lines", "title": f"SMREG / SM against ||x + y||^2 (d = {d})",
              "xlabel": "||x + y||^2", "ylabel": "SMREG / SM",
              "series": [{"x": _fl(grid), "y": _fl([special.hyp0f1(d / 2, d * s / 4)
                                                    / math.exp(s / 2) for s in grid]),
                          "label": "analytic"},
                         {"x": [g.s], "y": [test.test.estimate / g.sm],
                          "yerr": [test.test.halfwidth / g.sm],
                          "label": "Monte Carlo (fixed norms)", "style": "points"}]}
    return statistical_evidence(
        [test], checks=checks, figure=figure, cases=n,
        detail=f"{n} draws of orthogonal_gaussian({m}, {d}, scaling='fixed'): the mean estimate "
               f"{test.test.estimate:.4f} ± {test.test.halfwidth:.4f} matches SMREG = {mean:.4f}, "
               f"below SM = {g.sm:.4f}.")


# ==========================================================================
# FAVOR+: cases and the explicit formula (claims 9-14)
# ==========================================================================

#: Feature maps FAVOR+ is checked with (trig normalisers may vanish, claim 5).
FAVOR_KINDS = ("positive", "hyperbolic")


@st.composite
def favor_case(draw, *, causal: bool, lead=None, max_len: int = 10) -> dict:
    """A FAVOR+ input: ``q (..., L, d)``, ``k (..., Lk, d)``, ``v (..., Lk, dv)``, ``w (m, d)``.

    ``Lk = L`` when ``causal``. ``lead`` is a strategy for the leading
    (batch, head) dims, default 0 to 2 dims. Entries are ``N(0, scale^2)`` from
    a numpy seed; ``w`` is iid Gaussian (these claims are about FAVOR+, not the
    sampler).
    """
    lead = draw(leading_dims()) if lead is None else draw(lead)
    length = draw(st.integers(1, max_len))
    lk = length if causal else draw(st.integers(1, max_len))
    d = draw(st.integers(1, 8))
    dv = draw(st.integers(1, 5))
    m = draw(st.integers(1, 24))
    kind = draw(st.sampled_from(FAVOR_KINDS))
    dt = draw(DTYPES)
    seed = draw(SEEDS)
    scale = draw(st.sampled_from([0.3, 0.7, 1.0]))
    rng = np.random.default_rng(seed)
    return {"lead": lead, "L": length, "Lk": lk, "d": d, "dv": dv, "m": m, "kind": kind,
            "dtype": dt, "seed": seed, "scale": scale,
            "q": normal(rng, (*lead, length, d), dt, scale),
            "k": normal(rng, (*lead, lk, d), dt, scale),
            "v": normal(rng, (*lead, lk, dv), dt),
            "w": normal(rng, (m, d), dt)}


def explicit_favor(subject, c: dict, *, causal: bool, mask=None, v=None) -> np.ndarray:
    """``D^{-1} A_hat V`` with ``A_hat = Q' K'^T`` from the subject's own features, in float64.

    ``Q' = phi(Q d^{-1/4})``, ``K' = phi(K d^{-1/4})``; ``A_hat`` is lower
    triangular when ``causal`` and has zero columns where ``mask`` is False.
    Rows with ``D_ii = 0`` give 0.
    """
    dt = c["dtype"]
    scale = dt.type(c["d"] ** -0.25)
    qf = _features(subject, c["q"] * scale, c["w"], c["kind"])          # (..., L, F)
    kf = _features(subject, c["k"] * scale, c["w"], c["kind"])          # (..., Lk, F)
    a_hat = qf @ np.swapaxes(kf, -1, -2)                                # (..., L, Lk)
    if causal:
        a_hat = np.tril(a_hat)
    if mask is not None:
        a_hat = a_hat * np.asarray(mask, dtype=np.float64)[..., None, :]
    values = np.asarray(c["v"] if v is None else v, dtype=np.float64)   # (..., Lk, dv)
    den = a_hat.sum(axis=-1)                                            # (..., L)
    num = a_hat @ values                                                # (..., L, dv)
    safe = np.where(den == 0, 1.0, den)
    return np.where((den == 0)[..., None], 0.0, num / safe[..., None])  # (..., L, dv)


def _favor_tol(c: dict):
    """Projections (d), feature sums (m or 2m) and key sums (Lk) compose the error."""
    return tolerance("composite", c["dtype"], n=c["d"] + 2 * c["m"] + c["Lk"])


def _check_output(out, c: dict, shape) -> Measurement | None:
    """A failing measurement if the output has the wrong shape or dtype, else None."""
    out = np.asarray(out)
    if out.shape != tuple(shape):
        return holds(False, f"output shape {out.shape}, expected {tuple(shape)}")
    if out.dtype != c["dtype"]:
        return holds(False, f"output dtype {out.dtype} for {c['dtype']} inputs")
    return None


# ==========================================================================
# 9. FAVOR+ equals its explicit formula
# ==========================================================================

@claims.claim(
    "performer.favor_explicit",
    title="Bidirectional FAVOR+ equals D^-1 Q'(K')^T V with the features held fixed",
    statement=r"\mathrm{FAVOR}(Q,K,V)=\hat D^{-1}\big(Q'((K')^{\top}V)\big)=\hat D^{-1}Q'(K')^{\top}V,"
              r"\quad \hat D=\mathrm{diag}\big(Q'((K')^{\top}\mathbf 1_L)\big),\ "
              r"Q'=\phi(Qd^{-1/4}),\ K'=\phi(Kd^{-1/4})",
    sources=(FAVOR, SEED_RENORM),
    kind=Kind.PROPERTY, needs=("favor_attention", "random_features"),
    notes="The explicit side is built from the subject's own random_features (positive and "
          "hyperbolic) in float64; the subject may stabilise and reassociate as it likes. "
          "Outputs keep the input dtype.")
def favor_explicit(subject, ctx) -> Evidence:
    def measure(c):
        out = subject.favor_attention(c["q"], c["k"], c["v"], c["w"], kind=c["kind"])
        bad = _check_output(out, c, (*c["lead"], c["L"], c["dv"]))
        if bad:
            return bad
        expected = explicit_favor(subject, c, causal=False)
        return compare(out, expected, _favor_tol(c), scale=c["v"],
                       note="FAVOR+ differs from D^-1 Q' K'^T V")
    return for_all(ctx, favor_case(causal=False), measure,
                   detail="Bidirectional FAVOR+ equals the explicit normalised product of the "
                          "subject's features (positive and hyperbolic, float32 and float64).")


# ==========================================================================
# 10. the causal prefix sum
# ==========================================================================

@claims.claim(
    "performer.causal_prefix_sum",
    title="Unidirectional FAVOR+ (prefix sums) equals the explicit lower-triangular form",
    statement=r"o_i=\frac{Q'_i\sum_{j\le i}K_j'^{\top}V_j}{Q'_i\sum_{j\le i}K_j'^{\top}}"
              r"=\big[\mathrm{tril}(Q'K'^{\top})\big]_{i}V\,/\,\big[\mathrm{tril}(Q'K'^{\top})\mathbf 1\big]_i",
    sources=(PREFIX, KATHAROPOULOS_2020.at("§3.2-3.3 (causal linear attention)")),
    kind=Kind.PROPERTY, needs=("favor_attention", "random_features"),
    notes="Sequences up to 24 positions so that chunked scans cross chunk borders.")
def causal_prefix_sum(subject, ctx) -> Evidence:
    def measure(c):
        out = subject.favor_attention(c["q"], c["k"], c["v"], c["w"], causal=True, kind=c["kind"])
        bad = _check_output(out, c, (*c["lead"], c["L"], c["dv"]))
        if bad:
            return bad
        expected = explicit_favor(subject, c, causal=True)
        return compare(out, expected, _favor_tol(c), scale=c["v"],
                       note="causal FAVOR+ differs from the lower-triangular formula")
    return for_all(ctx, favor_case(causal=True, max_len=24), measure,
                   detail="Causal FAVOR+ equals tril(Q' K'^T) V normalised by its row sums.")


# ==========================================================================
# 11. recurrent decoding
# ==========================================================================

@claims.claim(
    "performer.recurrent_equals_parallel",
    title="Step-by-step (recurrent) FAVOR+ decoding equals the parallel causal output",
    statement=r"S_t=S_{t-1}+K_t'^{\top}V_t,\ z_t=z_{t-1}+K_t'^{\top},\ "
              r"o_t=\frac{Q'_tS_t}{Q'_tz_t}=\mathrm{FAVOR}_{\text{causal}}(Q,K,V)_t",
    sources=(PREFIX, KATHAROPOULOS_2020.at("§3.4 (transformers are RNNs)")),
    kind=Kind.PROPERTY, needs=("favor_attention_recurrent", "favor_attention"))
def recurrent_equals_parallel(subject, ctx) -> Evidence:
    def measure(c):
        rec = subject.favor_attention_recurrent(c["q"], c["k"], c["v"], c["w"], kind=c["kind"])
        bad = _check_output(rec, c, (*c["lead"], c["L"], c["dv"]))
        if bad:
            return bad
        par = subject.favor_attention(c["q"], c["k"], c["v"], c["w"], causal=True, kind=c["kind"])
        return compare(rec, par, _favor_tol(c), scale=c["v"],
                       note="recurrent decoding differs from the parallel causal form")
    return for_all(ctx, favor_case(causal=True, max_len=16), measure,
                   detail="Decoding one position at a time with the running state (S, z) "
                          "reproduces causal FAVOR+.")


# ==========================================================================
# 12. causality, and where a sequence-wide stabiliser breaks it
# ==========================================================================

def _exploding_key_example(ctx):
    """Keys whose exponents sit near -880, and a future key that maximises every exponent.

    ``max_x (w^T x - ||x||^2/2) = ||w||^2 / 2``, attained at ``x = w``: the
    future key ``k' = w_max`` (the longest row) is the sequence maximum of the
    exponents whatever the other keys are. Earlier keys of norm 42 have
    exponents ``-882 + 42 w^T u``, at most about ``-780``: representable relative
    to their own maximum (or the sequence maximum before the edit), but
    ``exp(a_j - C)`` underflows (below ``e^{-745}``) once ``C`` is the future
    key's ``+||w||^2/2``.
    """
    rng = ctx.rng("exploding-keys")
    d, length, m, dv, edit = 4, 6, 8, 3, 4
    root = d ** 0.25                                     # keys enter as k d^{-1/4}
    w = rng.standard_normal((m, d))                                    # (m, d)
    q = 0.5 * rng.standard_normal((length, d))                         # (L, d)
    directions = rng.standard_normal((length, d))
    k = 42.0 * root * directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    v = rng.standard_normal((length, dv))                              # (L, dv)
    k2, v2 = k.copy(), v.copy()
    k2[edit] = root * w[np.argmax(np.linalg.norm(w, axis=-1))]         # the maximising key
    k2[edit + 1:] = rng.standard_normal((length - edit - 1, d))
    v2[edit:] = 5.0 * rng.standard_normal((length - edit, dv))
    return {"q": q, "k": k, "v": v, "w": w, "k2": k2, "v2": v2, "edit": edit, "d": d}


@claims.claim(
    "performer.causality",
    title="Causal FAVOR+ with per-query/per-key stabilisers: output i ignores positions after i",
    statement=r"k_j'=k_j,\ v_j'=v_j\ \ \forall j\le i\ \Rightarrow\ "
              r"\mathrm{FAVOR}_{\text{causal}}(Q,K',V')_i=\mathrm{FAVOR}_{\text{causal}}(Q,K,V)_i",
    sources=(PREFIX, GOOGLE_FAVOR),
    kind=Kind.PROPERTY, needs=("favor_attention",),
    notes="Later keys and values are replaced by fresh ones, including the key k = w_max d^{1/4} "
          "that attains the largest possible exponent ||w||^2/2 (so any sequence-wide maximum "
          "changes). A fixed example adds keys with exponents near -880: a key maximum taken "
          "over the whole sequence then underflows the earlier keys once a future key is large, "
          "while per-key stabilisers (compensated by log-weights) and the per-query maximum "
          "(which cancels in D^-1) leave output i exactly unchanged.")
def causality(subject, ctx) -> Evidence:
    strategy = st.tuples(favor_case(causal=True, max_len=12), st.data())

    def measure(args):
        c, data = args
        t = data.draw(st.integers(0, c["L"] - 1), label="last_kept_position")
        rng = np.random.default_rng(c["seed"] + 1)
        k2, v2 = c["k"].copy(), c["v"].copy()
        tail = k2[..., t + 1:, :].shape
        k2[..., t + 1:, :] = normal(rng, tail, c["dtype"], 3.0 * c["scale"])
        v2[..., t + 1:, :] = normal(rng, v2[..., t + 1:, :].shape, c["dtype"], 5.0)
        if t + 1 < c["L"]:
            w64 = np.asarray(c["w"], dtype=np.float64)
            k2[..., t + 1, :] = (c["d"] ** 0.25 * w64[np.argmax(np.linalg.norm(w64, axis=-1))]
                                 ).astype(c["dtype"])
        out = np.asarray(subject.favor_attention(c["q"], c["k"], c["v"], c["w"], causal=True,
                                                 kind=c["kind"]))
        out2 = np.asarray(subject.favor_attention(c["q"], k2, v2, c["w"], causal=True,
                                                  kind=c["kind"]))
        return compare(out2[..., : t + 1, :], out[..., : t + 1, :],
                       tolerance("rounding", c["dtype"]), scale=c["v"],
                       note=f"an output at or before position {t} changed when later keys changed")
    evidence = for_all(ctx, strategy, measure,
                       detail="Replacing every key and value after position t (including a key "
                              "that maximises the exponents) leaves outputs 0..t unchanged.")
    ex = _exploding_key_example(ctx)
    out = np.asarray(subject.favor_attention(ex["q"], ex["k"], ex["v"], ex["w"], causal=True))
    out2 = np.asarray(subject.favor_attention(ex["q"], ex["k2"], ex["v2"], ex["w"], causal=True))
    keep = slice(0, ex["edit"])
    tol = tolerance("rounding", np.float64)
    fixed = compare(out2[keep], out[keep], tol, scale=ex["v"],
                    note="with keys of exponent ~ -880, editing a future key changed earlier "
                         "outputs (a sequence-wide key stabiliser underflows them)")
    finite = holds(bool(np.all(np.isfinite(out)) and np.any(out != 0)),
                   "the example with keys of exponent ~ -880 gives non-finite or zero outputs")
    example = single_case([fixed, finite], detail="", example={k: ex[k] for k in ("q", "k", "v")})
    if example.passed:
        evidence.detail += (" A fixed example with keys of exponent ~ -880 and a maximising "
                            "future key also leaves earlier outputs unchanged.")
        evidence.cases += 1
        return evidence
    return Evidence(passed=False, cases=evidence.cases + 1, max_error=example.max_error,
                    tolerance=example.tolerance, tolerance_reason=example.tolerance_reason,
                    detail=evidence.detail + example.detail,
                    falsifying_example=example.falsifying_example)


@claims.claim(
    "performer.sequence_stabilizer_leaks",
    title="Limitation: a key stabiliser taken over the whole sequence breaks causality",
    statement=r"K'_j=\phi(k_j)\,e^{-C},\ C=\max_{l\le L,\,r}\big(w_r^{\top}k_l-\tfrac{\|k_l\|^2}{2}\big)"
              r"\ \Rightarrow\ o_i\ \text{depends on}\ k_{j},\ j>i",
    sources=(GOOGLE_FAVOR, PREFIX),
    kind=Kind.LIMITATION, needs=("random_features", "favor_attention"),
    keywords=(("random_features", "stabilizer"),),
    notes="In exact arithmetic a factor e^{-C} common to all keys cancels in D^-1; in floating "
          "point C depends on future keys, and once a future key raises C the earlier keys' "
          "features exp(a_j - C) underflow. The causal prefix sums are built here from the "
          "subject's random_features with stabilizer = C (the sequence max, computed by the "
          "claim); the subject's own causal FAVOR+ is shown unaffected on the same example.")
def sequence_stabilizer_leaks(subject, ctx) -> Evidence:
    ex = _exploding_key_example(ctx)
    d, w = ex["d"], ex["w"]
    scale = d ** -0.25

    def sequence_stabilised(k, v):
        qs, ks = ex["q"] * scale, k * scale                             # (L, d)
        q_expo = qs @ w.T - 0.5 * np.sum(qs * qs, axis=-1, keepdims=True)  # (L, m)
        k_expo = ks @ w.T - 0.5 * np.sum(ks * ks, axis=-1, keepdims=True)  # (L, m)
        qf = _features_stab(subject, qs, w, np.max(q_expo, axis=-1, keepdims=True))
        kf = _features_stab(subject, ks, w, np.max(k_expo).reshape(1, 1))
        a_hat = np.tril(qf @ kf.T)                                      # (L, L)
        den = a_hat.sum(axis=-1)                                        # (L,)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (a_hat @ v) / den[:, None], den                      # (L, dv), (L,)

    out, den = sequence_stabilised(ex["k"], ex["v"])
    out2, den2 = sequence_stabilised(ex["k2"], ex["v2"])
    keep = slice(0, ex["edit"])
    before, after = out[keep], out2[keep]
    changed = ~np.isclose(before, after, rtol=1e-6, atol=1e-9) | ~np.isfinite(after)
    per_key = np.asarray(subject.favor_attention(ex["q"], ex["k"], ex["v"], w, causal=True))
    per_key2 = np.asarray(subject.favor_attention(ex["q"], ex["k2"], ex["v2"], w, causal=True))
    gap = float(np.max(np.abs(per_key2[keep] - per_key[keep])))
    measurements = [
        holds(bool(np.all(np.isfinite(before)) and np.all(den[keep] > 0)),
              "before the edit the sequence-stabilised outputs are not finite"),
        holds(bool(np.any(changed)),
              "editing a future key did not change any earlier output: no leak shown"),
        holds(gap <= tolerance("rounding", np.float64).rtol * float(np.max(np.abs(ex["v"]))),
              f"the subject's own causal FAVOR+ changed by {gap:.2e} on the same edit"),
    ]
    rows = int(np.sum(np.any(changed, axis=-1)))
    zeroed = int(np.sum(den2[keep] == 0))
    return single_case(
        measurements, example={"q": ex["q"], "k": ex["k"], "k_edited": ex["k2"]},
        detail=f"Editing key {ex['edit']} (to the exponent-maximising w_max) changes {rows} of "
               f"the {ex['edit']} earlier outputs of the sequence-stabilised form; {zeroed} "
               f"of their normalisers underflow to 0. The subject's causal FAVOR+ moves by "
               f"{gap:.1e}.")


def _features_stab(subject, x, w, stabilizer) -> np.ndarray:
    out = np.asarray(subject.random_features(x, w, kind="positive", stabilizer=stabilizer),
                     dtype=np.float64)
    return out


# ==========================================================================
# 13. padding and batches
# ==========================================================================

@claims.claim(
    "performer.padding_and_batch",
    title="Padded keys have no effect; batch members are independent",
    statement=r"M_j=0\Rightarrow o_i\ \text{independent of}\ (k_j,v_j);\quad "
              r"\mathrm{FAVOR}(Q,K,V)_b=\mathrm{FAVOR}(Q_b,K_b,V_b)",
    sources=(FAVOR, PREFIX),
    kind=Kind.PROPERTY, needs=("favor_attention",),
    notes="Key-padding masks (..., Lk) with bidirectional and causal FAVOR+: rewriting padded "
          "keys and values leaves the output unchanged; bidirectionally it equals FAVOR+ on the "
          "unpadded keys alone; each batch (and head) member equals FAVOR+ run on it alone.")
def padding_and_batch(subject, ctx) -> Evidence:
    lead = st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple)
    strategy = st.booleans().flatmap(
        lambda causal: st.tuples(favor_case(causal=causal, lead=lead), st.just(causal)))

    def measure(args):
        c, causal = args
        rng = np.random.default_rng(c["seed"] + 2)
        mask = rng.random((*c["lead"], c["Lk"])) < 0.7                   # (..., Lk)
        mask[..., 0] = True
        out = np.asarray(subject.favor_attention(c["q"], c["k"], c["v"], c["w"], causal=causal,
                                                 kind=c["kind"], mask=mask))
        k2, v2 = c["k"].copy(), c["v"].copy()
        k2[~mask] = normal(rng, k2[~mask].shape, c["dtype"], 3.0)
        v2[~mask] = normal(rng, v2[~mask].shape, c["dtype"], 5.0)
        out2 = np.asarray(subject.favor_attention(c["q"], k2, v2, c["w"], causal=causal,
                                                  kind=c["kind"], mask=mask))
        m = compare(out2, out, tolerance("rounding", c["dtype"]), scale=c["v"],
                    note="rewriting padded keys/values changed the output")
        if not m.ok:
            return m
        tol = _favor_tol(c)
        worst = m
        for idx in np.ndindex(*c["lead"]):           # loop over batch/head members
            alone = subject.favor_attention(c["q"][idx], c["k"][idx], c["v"][idx], c["w"],
                                            causal=causal, kind=c["kind"], mask=mask[idx])
            m = compare(alone, out[idx], tol, scale=c["v"],
                        note=f"batch member {idx} differs when run alone")
            if not m.ok:
                return m
            if not causal:
                keep = mask[idx]
                short = subject.favor_attention(c["q"][idx], c["k"][idx][keep],
                                                c["v"][idx][keep], c["w"], kind=c["kind"])
                m = compare(short, out[idx], tol, scale=c["v"],
                            note=f"member {idx}: masking differs from dropping the padded keys")
                if not m.ok:
                    return m
            worst = m if m.error / m.rtol > worst.error / max(worst.rtol, 1e-300) else worst
        return worst
    return for_all(ctx, strategy, measure,
                   detail="Padded keys are ignored (bidirectional and causal); every batch/head "
                          "member equals FAVOR+ on it alone and, bidirectionally, on its "
                          "unpadded keys.")


# ==========================================================================
# 14. normalisation
# ==========================================================================

@claims.claim(
    "performer.normalization",
    title="With V = 1 every output is exactly 1: the normaliser is present",
    statement=r"V=\mathbf 1\ \Rightarrow\ \hat D^{-1}Q'(K')^{\top}\mathbf 1=\mathbf 1",
    sources=(FAVOR, SEED_RENORM),
    kind=Kind.PROPERTY, needs=("favor_attention",),
    notes="Bidirectional and causal, with key-padding masks; rows that see no unpadded key "
          "return 0 by the contract.")
def normalization(subject, ctx) -> Evidence:
    strategy = st.booleans().flatmap(
        lambda causal: st.tuples(favor_case(causal=causal), st.just(causal), st.booleans()))

    def measure(args):
        c, causal, use_mask = args
        rng = np.random.default_rng(c["seed"] + 3)
        mask = rng.random((*c["lead"], c["Lk"])) < 0.7 if use_mask else None
        ones = np.ones(c["v"].shape, dtype=c["dtype"])
        out = subject.favor_attention(c["q"], c["k"], ones, c["w"], causal=causal,
                                      kind=c["kind"], mask=mask)
        visible = np.ones((*c["lead"], c["L"], c["Lk"]), dtype=bool)
        if causal:
            visible &= np.tril(np.ones((c["L"], c["Lk"]), dtype=bool))
        if mask is not None:
            visible &= mask[..., None, :]
        expected = np.broadcast_to(visible.any(axis=-1)[..., None].astype(np.float64),
                                   ones.shape[:-2] + (c["L"], c["dv"]))
        return compare(out, expected, _favor_tol(c), scale=np.ones(1),
                       note="with V = 1 an output is not 1")
    return for_all(ctx, strategy, measure,
                   detail="FAVOR+ of V = 1 is 1 in every row that sees a key (bidirectional, "
                          "causal, with padding).")


# ==========================================================================
# 15. the attention matrix error decays like m^{-1/2}
# ==========================================================================

def attention_matrix_estimates(subject, qs: np.ndarray, ks: np.ndarray, n: int,
                               draw_w: Callable[[int], np.ndarray], m: int) -> np.ndarray:
    """``n`` independent ``A_hat = Q' K'^T`` (positive features, no scaling): ``(n, L, Lk)``.

    Queries and keys go through one feature call per batch of replicates
    (stacked as ``[Q; K]``, so both see the same ``W`` as FAVOR+ requires).
    """
    x = np.concatenate([qs, ks], axis=0)                               # (L + Lk, d)
    length = qs.shape[0]
    out = []
    done = 0
    reps = reps_per_call(m, x.size)
    while done < n:                                       # loop over calls, not positions
        w = draw_w(min(reps, n - done))                                # (m, r d)
        r = w.shape[1] // x.shape[-1]
        f = _features(subject, embed_replicates(x, r), w, "positive")  # (r, L + Lk, F)
        out.append(f[:, :length] @ np.swapaxes(f[:, length:], -1, -2))  # (r, L, Lk)
        done += r
    return np.concatenate(out, axis=0)                                 # (n, L, Lk)


def frobenius_error_moments(qs: np.ndarray, ks: np.ndarray, m: int) -> tuple[float, float]:
    """Mean and variance of ``F = ||A_hat - A||_F^2`` for iid positive features, exactly.

    Entry ``p = (i, j)`` has ``z_p = q_i + k_j``, ``A_p = e^{q_i^T k_j}`` and one
    term ``T_p = A_p X_p``, ``X_p = e^{w^T z_p - s_p/2}``, so
    ``E X_p^a X_q^b = exp(a(a-1)s_p/2 + b(b-1)s_q/2 + ab z_p^T z_q)``. With
    ``sigma_p^2 = A_p^2 (e^{s_p} - 1)`` and ``C_pq = A_p A_q (e^{z_p^T z_q} - 1)``:

        E F = sum_p sigma_p^2 / m  (= the sum of Lemma 2's MSEs),
        E F^2 = m^-4 sum_pq [m E(Y_p^2 Y_q^2) + m(m-1)(sigma_p^2 sigma_q^2 + 2 C_pq^2)].

    Returns
    -------
    (float, float)
        ``E F`` and ``Var F``.
    """
    z = (qs[:, None, :] + ks[None, :, :]).reshape(-1, qs.shape[-1])    # (P, d)
    a = np.exp(qs @ ks.T).ravel()                                      # (P,)
    s = np.sum(z * z, axis=-1)                                         # (P,)
    cross = z @ z.T                                                    # (P, P)
    sigma2 = a ** 2 * np.expm1(s)                                      # (P,)
    cov = np.outer(a, a) * np.expm1(cross)                             # (P, P)
    coef = {0: 1.0, 1: -2.0, 2: 1.0}                                   # (X - 1)^2
    fourth = np.zeros_like(cross)
    for i, ci in coef.items():
        for j, cj in coef.items():
            fourth += ci * cj * np.exp(i * (i - 1) * s[:, None] / 2 + j * (j - 1) * s[None, :] / 2
                                       + i * j * cross)
    fourth *= np.outer(a ** 2, a ** 2)                                 # E Y_p^2 Y_q^2
    mean = float(np.sum(sigma2)) / m
    second = float(np.sum(m * fourth + m * (m - 1) * (np.outer(sigma2, sigma2) + 2 * cov ** 2)))
    return mean, second / m ** 4 - mean ** 2


def linearised_output_mse(qs: np.ndarray, ks: np.ndarray, v: np.ndarray, m: int) -> float:
    """First-order MSE per entry of the normalised output, ``c / m`` (exact for the linearisation).

    ``o_i - e_i = sum_j (A_hat_ij - A_ij)(v_j - e_i) / D_hat_i``; replacing
    ``D_hat_i`` by ``D_i`` leaves a mean of ``m`` iid terms whose variance uses
    ``Cov(T_ij, T_il) = A_ij A_il (e^{z_ij^T z_il} - 1)``.
    """
    a = np.exp(qs @ ks.T)                                              # (L, Lk)
    den = a.sum(axis=-1)                                               # (L,)
    exact = (a @ v) / den[:, None]                                     # (L, dv)
    total = 0.0
    for i in range(qs.shape[0]):                                       # loop over query rows
        z = qs[i] + ks                                                 # (Lk, d)
        cov = np.outer(a[i], a[i]) * np.expm1(z @ z.T)                 # (Lk, Lk)
        dev = v - exact[i]                                             # (Lk, dv)
        total += float(np.einsum("jc,jl,lc->", dev, cov, dev)) / den[i] ** 2
    return total / (qs.shape[0] * v.shape[-1] * m)


def exact_output(qs: np.ndarray, ks: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Softmax-kernel attention ``D^-1 A V`` with ``A = exp(Q' K'^T)``: ``(L, dv)``."""
    a = np.exp(qs @ ks.T)                                              # (L, Lk)
    return (a @ v) / a.sum(axis=-1, keepdims=True)                     # (L, dv)


def hull_pad(v: np.ndarray) -> float:
    """Rounding allowance on "inside the convex hull of the values": a normalised
    sum over ``Lk`` keys, relative to ``max |v|`` (tolerance policy, kind composite)."""
    return tolerance("composite", np.float64, n=v.shape[0]).rtol * float(np.max(np.abs(v)))


def output_error_range(exact: np.ndarray, v: np.ndarray) -> float:
    """The largest value the per-draw output error ``err_n`` can take: the ``R`` of ``[0, R]``.

    With positive features every ``A_hat_ij > 0``, so each output row
    ``o_hat_i = sum_j A_hat_ij v_j / sum_j A_hat_ij`` is a convex combination
    of the value rows and entry ``(i, c)`` lies in ``[min_j v_jc, max_j v_jc]``,
    as does the exact ``o_ic``. Hence ``(o_hat_ic - o_ic)^2 <=
    max(o_ic - min_j v_jc, max_j v_jc - o_ic)^2`` and ``err_n``, the mean over
    entries, is at most the mean of these bounds (each widened by
    :func:`hull_pad` for rounding). Never larger than the cruder
    ``mean_c ptp(v[:, c])^2``.

    Parameters
    ----------
    exact : ndarray, shape (L, dv)
        The exact normalised output.
    v : ndarray, shape (Lk, dv)
        The values.

    Returns
    -------
    float
    """
    pad = hull_pad(v)
    reach = np.maximum(exact - v.min(axis=0), v.max(axis=0) - exact)   # (L, dv)
    return float(np.mean((reach + pad) ** 2))


def output_errors(a_hat: np.ndarray, v: np.ndarray, exact: np.ndarray) -> tuple[np.ndarray, bool]:
    """Per-draw ``err_n = mean_{i,c} (o_hat_ic - o_ic)^2``, and whether every ``o_hat`` is
    in the convex hull of the values.

    Parameters
    ----------
    a_hat : ndarray, shape (n, L, Lk)
    v : ndarray, shape (Lk, dv)
    exact : ndarray, shape (L, dv)

    Returns
    -------
    (ndarray of shape (n,), bool)
        The errors (``inf`` where a normaliser vanished) and whether every
        entry of every normalised output lies in ``[min_j v_jc, max_j v_jc]``
        up to :func:`hull_pad`.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (a_hat @ v) / a_hat.sum(axis=-1, keepdims=True)         # (n, L, dv)
    pad = hull_pad(v)
    inside = bool(np.all(out >= v.min(axis=0) - pad) and np.all(out <= v.max(axis=0) + pad))
    err = np.mean((out - exact) ** 2, axis=(-2, -1))                   # (n,)
    return np.where(np.isfinite(err), err, np.inf), inside


#: ``s = ||q' + k'_j||^2`` of the two-key case: ``<= 1`` keeps the terms light-tailed, and
#: the O(1/m) corrections to the ratio small (it stays ~3.8 at m = 64, against 4 to first order).
RATIO_S = 1.0
#: The ratio claimed: MSE(m) / MSE(4m) in [3, 5], tested at m = 64.
RATIO_TARGET = (3.0, 5.0)
RATIO_MS = (64, 256)
#: Draws per m at mc_scale 1. The m = 256 interval is the costly one: its range term
#: 7 R ln(4/delta) / (3n) must be small against E err ~ R sinh(s) / 256.
RATIO_SAMPLES = {64: 60_000, 256: 150_000}


def two_key_case(s: float = RATIO_S, b: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One query and two keys in ``d = 2`` where the normalised-output error is largest
    relative to its range.

    ``q' = b e_1``, ``k'_{1,2} = -b e_1 +- sqrt(s) e_2``, ``v = (+1, -1)``: both
    keys have ``A = e^{-b^2}``, so the exact output is ``0`` and ``R = 1``; and
    ``z_{1,2} = q' + k'_{1,2} = +-sqrt(s) e_2`` are antipodal, so the two
    estimates ``A_hat_1, A_hat_2`` are negatively correlated
    (``Cov = A^2 (e^{-s} - 1)/m``) and ``o_hat = (A_hat_1 - A_hat_2)/(A_hat_1 +
    A_hat_2)`` fluctuates most. To first order ``E err = sinh(s)/m``
    (:func:`linearised_output_mse`). The ``e_1`` parts of ``q'`` and ``k'``
    cancel in every product ``phi(q')_r phi(k'_j)_r``; they are there so that
    the query features are not constant.

    Returns
    -------
    (ndarray (1, 2), ndarray (2, 2), ndarray (2, 1))
        ``q'``, ``k'`` (already scaled, fed to the feature map as they are) and ``v``.
    """
    h = math.sqrt(s)
    qs = np.array([[b, 0.0]])                                          # (1, 2)
    ks = np.array([[-b, h], [-b, -h]])                                 # (2, 2)
    v = np.array([[1.0], [-1.0]])                                      # (2, 1)
    return qs, ks, v


def output_mse_ratio_test(err_m: np.ndarray, err_4m: np.ndarray, range_m: float,
                          range_4m: float, delta: float, label: str,
                          target: tuple[float, float] = RATIO_TARGET) -> RatioStatTest:
    """The gate of claim 15's second part: ``E err(m) / E err(4m)`` compatible with ``target``.

    Each mean gets an empirical Bernstein interval at ``delta / 2`` from the
    known ranges ``[0, R]`` (:func:`output_error_range`); the ratio interval
    ``[lo_m / hi_4m, hi_m / lo_4m]`` holds with probability ``>= 1 - delta``.
    The test fails only when that interval is disjoint from ``target``.

    References
    ----------
    Maurer & Pontil 2009, COLT, Theorem 4; Choromanski et al. 2021, §2.2 and
    Lemma 2 (the ``1/m`` rate of every entry of ``A_hat``).
    """
    return RatioStatTest(label, test_ratio(err_m, err_4m, numerator_range=(0.0, range_m),
                                           denominator_range=(0.0, range_4m), target=target,
                                           delta=delta, expected=4.0))


@claims.claim(
    "performer.attention_error_rate",
    title="The attention-matrix error decays like m^{-1/2}",
    statement=r"m\,\mathbb E\|\hat A-A\|_F^2=\sum_{i,j}m\,\mathrm{MSE}^{+}_m(q_i',k_j')"
              r"=\sum_{i,j}A_{ij}^2\big(e^{\|q_i'+k_j'\|^2}-1\big),\quad"
              r"\frac{\mathrm{MSE}_{\mathrm{out}}(m)}{\mathrm{MSE}_{\mathrm{out}}(4m)}\in[3,5]"
              r"\ (m\ge64),\ \ \mathrm{MSE}_{\mathrm{out}}(m)="
              r"\mathbb E\,\mathrm{mean}_{i,c}\big(\hat D^{-1}\hat AV-D^{-1}AV\big)_{ic}^2",
    sources=(LEMMA2, FAVOR, MAURER_PONTIL_2009),
    kind=Kind.STATISTICAL, needs=("random_features",), proof="performer.relative_mse",
    notes="Gated: (a) the Frobenius error: L = 6 queries and keys in d = 4 (entries "
          "N(0, 0.3^2), then scaled by d^{-1/4}, so ||q_i' + k_j'||^2 < 1), iid W from the claim, "
          "m in {16, 64, 256}; m E||A_hat - A||_F^2 matches the sum of Lemma 2's MSEs (median "
          "of means with the exact variance of ||A_hat - A||_F^2). (b) Every normalised output "
          "D_hat^-1 A_hat V lies in the convex hull of the values (positive features), so the "
          "per-draw error err = mean over entries of (o_hat - o)^2 is in [0, R] with R = mean "
          "over entries of max(o - min v, max v - o)^2. (c) The ratio MSE(64)/MSE(256) of the "
          "normalised output, on one query and two keys (d = 2) with q' + k'_j = +-e_2 "
          "(s = 1) and v = (1, -1), where E err / R is largest (~ sinh(1)/m): an empirical "
          "Bernstein interval (Maurer & Pontil 2009, Thm 4) for each MSE from the range R, "
          "their ratio interval [lo_64/hi_256, hi_64/lo_256], and the claim fails only if "
          "that interval is disjoint from [3, 5]; whether it lies inside [3, 5] is reported. "
          "For the random six-key inputs of (a), E err / R ~ 3e-5 at m = 256, and a "
          "distribution-free interval as narrow would need ~1e7 draws. The first-order value of the ratio "
          "is 4; O(1/m) terms bring it to ~3.8 at m = 64, s = 1.")
def attention_error_rate(subject, ctx) -> Evidence:
    d, length, dv = 4, 6, 2
    rng = ctx.rng("qkv")
    q = 0.3 * rng.standard_normal((length, d))      # ||q_i' + k_j'||^2 <~ 1: light enough tails
    k = 0.3 * rng.standard_normal((length, d))
    v = rng.standard_normal((length, dv))                              # (L, dv)
    qs, ks = q * d ** -0.25, k * d ** -0.25                            # FAVOR+'s scaling
    a = np.exp(qs @ ks.T)                                              # (L, L)
    exact = exact_output(qs, ks, v)                                    # (L, dv)
    ms = (16, 64, 256)
    # the union bound: 3 Frobenius tests and 2 empirical Bernstein intervals, DELTA/5 each
    delta_each = DELTA / (len(ms) + len(RATIO_MS))
    n = mc_size(ctx, 100, len(ms) + len(RATIO_MS))
    tests, checks = [], []
    for m in ms:
        a_hat = attention_matrix_estimates(subject, qs, ks, n, iid_draws(m, d, ctx.rng(f"m={m}")),
                                           m)                          # (n, L, L)
        frob = np.sum((a_hat - a) ** 2, axis=(-2, -1))                 # (n,)
        mean, var = frobenius_error_moments(qs, ks, m)
        tests.append(mean_test(f"E||A_hat - A||_F^2, m={m}", frob, mean, var, delta_each))
        _, inside = output_errors(a_hat, v, exact)
        checks.append((inside, f"m={m}: a normalised output left the convex hull of the values "
                               f"(random inputs)"))

    # (c) the ratio of normalised-output MSEs on the two-key case
    q2, k2, v2 = two_key_case()
    exact2 = exact_output(q2, k2, v2)                                  # (1, 1)
    r2 = output_error_range(exact2, v2)
    errs, sizes = {}, {}
    for m in RATIO_MS:
        sizes[m] = RATIO_SAMPLES[m] * ctx.profile.mc_scale
        a_hat = attention_matrix_estimates(subject, q2, k2, sizes[m],
                                           iid_draws(m, 2, ctx.rng(f"ratio m={m}")), m)
        errs[m], inside = output_errors(a_hat, v2, exact2)
        ok = inside and bool(np.all(errs[m] <= r2))
        checks.append((ok, f"m={m}: a normalised output left the convex hull of the values "
                           f"(two-key case; largest error {float(np.max(errs[m])):.3g} > "
                           f"R = {r2:.3g})"))
    m1, m4 = RATIO_MS
    ratio_label = f"output MSE ratio m={m1} / m={m4} (two-key case)"
    informational = {}
    if all(ok for ok, _ in checks[-len(RATIO_MS):]):
        ratio = output_mse_ratio_test(errs[m1], errs[m4], r2, r2, 2 * delta_each, ratio_label)
        tests.append(ratio)
        for m, interval in ((m1, ratio.test.numerator), (m4, ratio.test.denominator)):
            entry = interval.to_json()
            entry["analytic"] = linearised_output_mse(q2, k2, v2, m)
            entry["method"] += "; analytic = first-order sinh(s)/m, not part of the decision"
            informational[f"output MSE, m={m} (two-key case; analytic = first order)"] = entry
        lo, hi = ratio.test.interval
        verdict = ("lies inside [3, 5]" if ratio.test.inside else
                   "overlaps [3, 5] but is not inside it" if ratio.test.passed else
                   "is disjoint from [3, 5]")
        ratio_text = (f"output MSE ratio MSE({m1})/MSE({m4}) = {ratio.test.estimate:.3f}, "
                      f"interval [{lo:.3f}, {hi:.3f}] (probability >= 1 - "
                      f"{2 * delta_each:.0e}), which {verdict}")
        bars = {m: (interval.estimate, interval.halfwidth)
                for m, interval in ((m1, ratio.test.numerator), (m4, ratio.test.denominator))}
    else:
        ratio_text = "output MSE ratio not computed (an output left the hull)"
        bars = {m: (float(np.mean(errs[m][np.isfinite(errs[m])])) if np.any(
            np.isfinite(errs[m])) else math.nan, 0.0) for m in RATIO_MS}
    grid = np.geomspace(8, 512, 30)
    total = sum(math.expm1(float(np.sum((qs[i] + ks[j]) ** 2))) * a[i, j] ** 2
                for i in range(length) for j in range(length))
    first_order = linearised_output_mse(q2, k2, v2, 1)                 # sinh(s)
    figure = {"type": "panels", "title": "Performer attention error against m", "panels": [
        {"type": "lines", "title": "||A_hat - A||_F^2 (six queries and keys, d = 4)",
         "xlabel": "m", "ylabel": "E ||A_hat - A||_F^2", "xscale": "log", "yscale": "log",
         "series": [{"x": _fl(grid), "y": _fl(total / grid), "label": "sum of Lemma 2 MSEs"},
                    {"x": list(ms), "y": _fl([t.test.estimate for t in tests[:len(ms)]]),
                     "yerr": _fl([t.test.halfwidth for t in tests[:len(ms)]]),
                     "label": "Monte Carlo", "style": "points"}]},
        {"type": "lines", "title": "normalised output (one query, two keys, s = 1)",
         "xlabel": "m", "ylabel": "MSE per entry", "xscale": "log", "yscale": "log",
         "series": [{"x": _fl(grid), "y": _fl(first_order / grid),
                     "label": "first order sinh(s)/m"},
                    {"x": list(RATIO_MS), "y": _fl([bars[m][0] for m in RATIO_MS]),
                     "yerr": _fl([bars[m][1] for m in RATIO_MS]),
                     "label": "Monte Carlo (empirical Bernstein bars)", "style": "points"}]}]}
    return statistical_evidence(
        tests, checks=checks, figure=figure, extra_statistics=informational,
        cases=n * len(ms) + sum(sizes.values()),
        tolerance_reason=("median-of-means half-width from the exact variance (Frobenius "
                          "error); empirical Bernstein interval from the known range (output "
                          f"MSE ratio); total false-failure probability {DELTA:.0e}"),
        detail=f"{n} draws per m: m E||A_hat - A||_F^2 matches the sum of Lemma 2's MSEs "
               f"({total:.4f}) at m = 16, 64, 256, and every normalised output stays in the "
               f"convex hull of the values. Two-key case ({sizes[m1]} draws at m = {m1}, "
               f"{sizes[m4]} at m = {m4}, range R = {r2:.3g}): {ratio_text}. Error budget "
               f"(union bound): {len(ms)} x {delta_each:.0e} for the Frobenius tests + "
               f"{len(RATIO_MS)} x {delta_each:.0e} for the two empirical Bernstein intervals.")
