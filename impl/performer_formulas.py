"""The closed forms of the Performer papers, written once, for one pair ``(x, y)``.

Every formula is a scalar function of the geometry of a pair: with
``s = ||x + y||^2``, ``t = ||x - y||^2``,
``Lambda = exp(-(||x||^2 + ||y||^2) / 2) = exp(-(s + t) / 4)`` and
``SM(x, y) = exp(x^T y) = Lambda e^{s/2}``:

* :func:`lemma2_mse` -- Lemma 2, the MSE of the trigonometric, positive and
  hyperbolic estimators with ``m`` iid Gaussian vectors;
* :func:`orthogonal_mse_exact` -- the exact MSE of positive features with
  block-orthogonal chi-norm rows (the same-block covariance of Theorem 2's
  proof);
* :func:`theorem2_bound` -- Theorem 2's bound on that MSE;
* :func:`smreg` -- the regularised kernel SMREG estimated by rows of norm
  ``sqrt(d)``.

They are the *statements* the Performer claims (``theory/claims/performer``)
test a subject against, in float64 with the ``math`` library, one pair at a
time. The array functions ``mse_*`` of :mod:`.performer` compute the same
quantities over leading dimensions.

References
----------
Choromanski et al. 2021, Rethinking Attention with Performers, ICLR 2021
(arXiv:2009.14794): §2.3 (Lemma 1, the hyperbolic variant; SMREG), §2.4
(orthogonal random features), §3 (Lemma 2; Theorem 1, SMREG <= SM; Theorem 2
and its proof). Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): the
trigonometric MSE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from .contract.validate import check_feature_kind

__all__ = [
    "PairGeometry",
    "pair_geometry",
    "lemma2_mse",
    "same_block_pairs",
    "orthogonal_mse_exact",
    "theorem2_bound",
    "smreg",
]


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

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, §2.3
    (``SM``, Eq. (6); ``Lambda`` in Lemma 1).
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
    check_feature_kind(kind)
    if kind == "trig":
        return math.exp(g.s) * g.sm ** -2 * math.expm1(-g.t) ** 2 / (2 * m)
    positive = math.exp(g.s) * g.sm ** 2 * -math.expm1(-g.s) / m
    if kind == "positive":
        return positive
    return 0.5 * -math.expm1(-g.s) * positive


def same_block_pairs(m: int, d: int) -> int:
    """``P = b d(d-1) + r(r-1)``: ordered pairs of rows sharing a block, ``m = b d + r``.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, §2.4
    (orthogonal random features, ``m <= d``); Yu et al. 2016, Orthogonal
    Random Features (independent blocks of ``d`` rows when ``m > d``).
    """
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
    the proof of Theorem 2 (§3; the same-block covariance).
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
    Choromanski et al. 2021, Rethinking Attention with Performers, §3,
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
    regularized softmax-kernel (§2.3) and Theorem 1 (§3: SMREG <= SM).
    """
    return g.lam * float(special.hyp0f1(d / 2, d * g.s / 4))
