"""Performer random features for the softmax kernel, and FAVOR+ attention.

The softmax kernel ``SM(x, y) = exp(x^T y)`` is an expectation over a Gaussian
vector ``omega ~ N(0, I_d)``, so a feature map ``phi`` built from ``m`` random
vectors (the rows of ``W``, shape ``(m, d)``) gives an unbiased estimate
``phi(x)^T phi(y)`` of it. Three maps are implemented:

* ``"trig"``       -- ``h(x) / sqrt(m) [sin(W x), cos(W x)]`` with
  ``h(x) = exp(||x||^2 / 2)``; feature dimension ``2m``;
* ``"positive"``   -- ``exp(W x - ||x||^2 / 2) / sqrt(m)``; dimension ``m``;
* ``"hyperbolic"`` -- ``exp(+-W x - ||x||^2 / 2) / sqrt(2m)`` (the ``+``
  block, then the ``-`` block); dimension ``2m``.

FAVOR+ (Fast Attention Via positive Orthogonal Random features) replaces the
``L x L`` attention matrix ``A = exp(Q K^T / sqrt(d))`` by ``Q' K'^T`` with
``Q' = phi(Q d^{-1/4})`` and ``K' = phi(K d^{-1/4})`` and reassociates the
products, so that bidirectional attention costs ``O(L m d)`` and causal
attention is a prefix sum (a scan) over the sequence.

Besides the estimators, the module holds the closed forms the statistical
claims are checked against: the mean squared errors of Lemma 2 and Theorem 2,
the exact MSE of block-orthogonal positive features, and the raw moments of
one positive feature term.

References
----------
Choromanski et al. 2021, Rethinking Attention with Performers, ICLR 2021
(arXiv:2009.14794): §2.2 (kernelised attention, Eq. (4)-(5)), §2.3 (Lemma 1:
positive and hyperbolic random features; Lemma 2: their MSE), §2.4 (orthogonal
random features, Theorem 2), Algorithm 1 (FAVOR+, bi- and unidirectional).
Rahimi & Recht 2007, Random Features for Large-Scale Kernel Machines (the
trigonometric features). Yu et al. 2016, Orthogonal Random Features (chi-norm
orthogonal blocks). Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt): the
trigonometric and positive feature maps and the trigonometric MSE.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.special import hyp0f1, hyp1f1

from .contract.validate import (  # noqa: F401  (FEATURE_KINDS re-exported)
    FEATURE_KINDS,
    as_float_array,
    check_choice,
    check_favor_args,
    check_feature_args,
    check_feature_kind,
    check_positive_int,
    check_random_matrix,
    check_rng,
    common_float_dtype,
)

__all__ = [
    "FEATURE_KINDS",
    "KEY_STABILIZERS",
    "feature_dimension",
    "sm_kernel",
    "smreg_kernel",
    "gaussian_matrix",
    "orthogonal_gaussian",
    "redraw_features",
    "feature_max_stabilizer",
    "random_features",
    "regularized_features",
    "sm_estimate",
    "mse_trig",
    "mse_positive",
    "mse_hyperbolic",
    "mse_orthogonal_exact",
    "mse_orthogonal_bound",
    "positive_term_moment",
    "PositiveEstimatorMoments",
    "variance_moments",
    "favor_attention",
    "favor_attention_explicit",
    "favor_attention_recurrent",
]

#: Kinds whose features are exponentials, so a stabiliser can be subtracted.
_EXP_KINDS = ("positive", "hyperbolic")

#: Key stabilisers of ``favor_attention`` (see its docstring).
KEY_STABILIZERS = ("per-key", "sequence")

#: Rows of a regularised W must have norm sqrt(d) up to this many ulps.
_ROW_NORM_ULPS = 1000


# --------------------------------------------------------------------------
# validation helpers (those the numba path shares are in .contract.validate)
# --------------------------------------------------------------------------

def _check_pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Two (..., d) arrays of exactly the same shape (no broadcasting)."""
    x = as_float_array(x, "x", ndim_min=1)
    y = as_float_array(y, "y", ndim_min=1)
    if x.shape != y.shape:
        raise ValueError(f"y: expected the shape of x {x.shape}, got shape {y.shape}")
    return x, y


def _check_dtype_arg(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    return dt


def feature_dimension(m: int, kind: str = "positive") -> int:
    """Length of ``phi(x)`` for ``m`` random vectors: ``m`` or ``2m``.

    Parameters
    ----------
    m : int
        Number of random vectors (rows of ``W``).
    kind : {"trig", "positive", "hyperbolic"}
        The feature map.

    Returns
    -------
    int
        ``m`` for positive features, ``2m`` for trig and hyperbolic.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, §2.3.
    """
    m = check_positive_int(m, "m")
    check_feature_kind(kind)
    return m if kind == "positive" else 2 * m


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
    x, y = _check_pair(x, y)
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
    regularised softmax-kernel SMREG (appendix on SMREG; arXiv:2009.14794).
    """
    x, y = _check_pair(x, y)
    dtype = common_float_dtype(x, y)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    d = x.shape[-1]
    s = _sum_sq(x64 + y64)                                   # (...)
    out = _lambda(x64, y64) * hyp0f1(d / 2.0, d * s / 4.0)   # (...)
    return np.asarray(out).astype(dtype, copy=False)


# --------------------------------------------------------------------------
# random matrices W (m, d)
# --------------------------------------------------------------------------

def gaussian_matrix(m: int, d: int, rng: np.random.Generator, *,
                    dtype=np.float64) -> np.ndarray:
    """``W`` with iid ``N(0, 1)`` entries: ``m`` independent ``omega ~ N(0, I_d)``.

    Parameters
    ----------
    m : int
        Number of random vectors (rows).
    d : int
        Input dimension (columns).
    rng : numpy.random.Generator
        The only source of randomness.
    dtype : {np.float64, np.float32}
        Output dtype.

    Returns
    -------
    ndarray, shape (m, d)

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, §2.3
    (iid features, Lemma 1).
    """
    m = check_positive_int(m, "m")
    d = check_positive_int(d, "d")
    rng = check_rng(rng)
    dt = _check_dtype_arg(dtype)
    return rng.standard_normal((m, d), dtype=dt)  # (m, d)


def _haar_orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed ``d x d`` orthogonal matrix.

    QR of a Gaussian matrix, with the sign correction ``Q diag(sign(diag R))``:
    without it ``Q`` is not Haar (LAPACK's sign convention biases it), with it
    each row is exactly uniform on the unit sphere (Mezzadri 2007, How to
    generate random matrices from the classical compact groups, §5).
    """
    g = rng.standard_normal((d, d))                 # (d, d)
    q, r = np.linalg.qr(g)                          # (d, d), (d, d)
    signs = np.sign(np.diag(r))                     # (d,)
    signs[signs == 0] = 1.0                         # probability zero, but be total
    return q * signs[None, :]                       # (d, d)


def orthogonal_gaussian(m: int, d: int, rng: np.random.Generator, *,
                        scaling: str = "chi", dtype=np.float64) -> np.ndarray:
    """Block-orthogonal random vectors: exactly orthogonal within each block.

    ``ceil(m / d)`` independent ``d x d`` Haar orthogonal blocks are stacked
    and the first ``m`` rows kept. Row norms are then set to

    * ``scaling="chi"``: iid draws from ``chi_d``, so that every row is
      marginally ``N(0, I_d)`` (direction uniform, norm independent ``chi_d``)
      and the positive estimator stays unbiased for SM (Theorem 2 setting);
    * ``scaling="fixed"``: ``sqrt(d)``, the "regularised" variant, whose
      positive estimator is unbiased for :func:`smreg_kernel` instead.

    Parameters
    ----------
    m : int
        Number of rows.
    d : int
        Dimension.
    rng : numpy.random.Generator
        The only source of randomness.
    scaling : {"chi", "fixed"}
        Row norms, as above.
    dtype : {np.float64, np.float32}
        Output dtype (the blocks are computed in float64).

    Returns
    -------
    ndarray, shape (m, d)

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, §2.4
    (orthogonal random features) and Theorem 2; Yu et al. 2016, Orthogonal
    Random Features (chi-distributed norms).
    """
    m = check_positive_int(m, "m")
    d = check_positive_int(d, "d")
    rng = check_rng(rng)
    check_choice(scaling, "scaling", ("chi", "fixed"))
    dt = _check_dtype_arg(dtype)
    n_blocks = -(-m // d)
    # a loop over blocks: each block is one independent Haar draw
    blocks = [_haar_orthogonal(d, rng) for _ in range(n_blocks)]
    directions = np.concatenate(blocks, axis=0)[:m]            # (m, d), unit rows
    if scaling == "chi":
        norms = np.sqrt(rng.chisquare(d, size=m))              # (m,)
    else:
        norms = np.full(m, math.sqrt(d))                       # (m,)
    return (directions * norms[:, None]).astype(dt, copy=False)  # (m, d)


def redraw_features(m: int, d: int, rng: np.random.Generator, *,
                    orthogonal: bool = True, scaling: str = "chi") -> np.ndarray:
    """Draw a new projection matrix ``W`` (the periodic "feature redrawing").

    Parameters
    ----------
    m, d : int
        Shape of ``W``.
    rng : numpy.random.Generator
        Explicit generator; the same seed gives the same ``W``.
    orthogonal : bool
        Block-orthogonal rows (:func:`orthogonal_gaussian`) if True, iid
        Gaussian rows (:func:`gaussian_matrix`) otherwise.
    scaling : {"chi", "fixed"}
        Row norms: ``"chi"`` keeps Gaussian (chi_d) norms; ``"fixed"`` sets every
        row norm to ``sqrt(d)`` (for iid rows: Gaussian rows renormalised).

    Returns
    -------
    ndarray, shape (m, d), float64

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, §4
    (redrawing features during training) and §2.4.
    """
    if not isinstance(orthogonal, (bool, np.bool_)):
        raise TypeError(f"orthogonal: expected a bool, got {type(orthogonal).__name__}")
    check_choice(scaling, "scaling", ("chi", "fixed"))
    if orthogonal:
        return orthogonal_gaussian(m, d, rng, scaling=scaling)
    w = gaussian_matrix(m, d, rng)                                 # (m, d)
    if scaling == "fixed":
        w = w * (math.sqrt(d) / np.linalg.norm(w, axis=1, keepdims=True))
    return w


# --------------------------------------------------------------------------
# feature maps
# --------------------------------------------------------------------------

def _exponents(x: np.ndarray, w: np.ndarray, kind: str) -> np.ndarray:
    """The exponent of the exp-features: ``W x - ||x||^2/2`` (and ``-W x - ...``)."""
    wx = x @ w.T                                            # (..., L, m)
    half_sq = 0.5 * np.sum(x * x, axis=-1, keepdims=True)   # (..., L, 1)
    if kind == "positive":
        return wx - half_sq                                  # (..., L, m)
    return np.concatenate([wx - half_sq, -wx - half_sq], axis=-1)  # (..., L, 2m)


def feature_max_stabilizer(x, w, kind: str = "positive", *,
                           over: str = "features") -> np.ndarray:
    """The largest feature exponent, to subtract inside ``exp`` (stabiliser).

    Parameters
    ----------
    x : array_like, shape (..., L, d)
    w : array_like, shape (m, d)
    kind : {"positive", "hyperbolic"}
        Only exp-features have a stabiliser.
    over : {"features", "sequence"}
        ``"features"``: per row, ``c_i = max_j (W x_i - ||x_i||^2/2)_j``, shape
        ``(..., L, 1)``. This is what :func:`favor_attention` uses for every
        query (it cancels exactly in ``D^{-1}``) and for every key under
        ``key_stabilizer="per-key"``. ``"sequence"``: one constant per sequence,
        the max over rows and features, shape ``(..., 1, 1)`` -- what
        ``key_stabilizer="sequence"`` uses for the keys.

    Returns
    -------
    ndarray, shape (..., L, 1) or (..., 1, 1)

    References
    ----------
    The max-subtraction used by the reference FAVOR+ code (google-research
    ``performer/fast_attention``, ``softmax_kernel_transformation``) for
    Choromanski et al. 2021, Rethinking Attention with Performers, Lemma 1.
    """
    check_choice(kind, "kind", _EXP_KINDS)
    check_choice(over, "over", ("features", "sequence"))
    x = as_float_array(x, "x", ndim_min=1 if over == "features" else 2)
    w = check_random_matrix(w, x.shape[-1])
    dtype = common_float_dtype(x, w)
    expo = _exponents(x.astype(dtype, copy=False), w.astype(dtype, copy=False), kind)
    axes = (-1,) if over == "features" else (-2, -1)
    return np.max(expo, axis=axes, keepdims=True)


def random_features(x, w, kind: str = "positive", *, stabilizer=None) -> np.ndarray:
    """The random feature map ``phi(x)`` with ``E[phi(x)^T phi(y)] = exp(x^T y)``.

    * ``"trig"``: ``exp(||x||^2/2) / sqrt(m) [sin(W x), cos(W x)]``, so
      ``phi(x)^T phi(y) = exp(||x||^2/2 + ||y||^2/2) mean_i cos(w_i^T (x - y))``;
    * ``"positive"``: ``exp(W x - ||x||^2/2 - c) / sqrt(m)``;
    * ``"hyperbolic"``: ``[exp(W x - ||x||^2/2 - c), exp(-W x - ||x||^2/2 - c)]
      / sqrt(2m)``.

    ``c`` is the optional stabiliser (0 if None). It multiplies the features
    of ``x`` by ``exp(-c)``; :func:`favor_attention` uses the per-row max of
    :func:`feature_max_stabilizer` for queries (cancels in ``D^{-1}``) and
    either the per-key max (compensated by log-weights) or the per-sequence
    max for keys.

    Parameters
    ----------
    x : array_like, shape (..., L, d)
        Inputs (any number of leading dims; a single vector ``(d,)`` is allowed).
    w : array_like, shape (m, d)
        Random vectors ``omega_1..omega_m`` as rows.
    kind : {"trig", "positive", "hyperbolic"}
    stabilizer : array_like, optional
        Float array broadcastable to ``x.shape[:-1] + (1,)`` (it may not change
        that shape); only for ``"positive"`` and ``"hyperbolic"``.

    Returns
    -------
    ndarray, shape (..., L, m) for positive, (..., L, 2m) otherwise

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, §2.3,
    Lemma 1 (positive and hyperbolic features); Rahimi & Recht 2007 (trig).
    Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt).
    """
    x, w, stabilizer, dtype = check_feature_args(x, w, kind, stabilizer)
    x = x.astype(dtype, copy=False)
    w = w.astype(dtype, copy=False)
    m = w.shape[0]
    if kind == "trig":
        wx = x @ w.T                                                    # (..., L, m)
        h = np.exp(0.5 * np.sum(x * x, axis=-1, keepdims=True))         # (..., L, 1)
        scale = h / np.sqrt(dtype.type(m))                              # (..., L, 1)
        return scale * np.concatenate([np.sin(wx), np.cos(wx)], axis=-1)  # (..., L, 2m)
    expo = _exponents(x, w, kind)                                       # (..., L, m|2m)
    if stabilizer is not None:
        expo = expo - stabilizer.astype(dtype, copy=False)
    n_feat = m if kind == "positive" else 2 * m
    return np.exp(expo) / np.sqrt(dtype.type(n_feat))                   # (..., L, m|2m)


def regularized_features(x, w, *, stabilizer=None) -> np.ndarray:
    """Positive features with a fixed-norm orthogonal ``W`` (regularised softmax).

    The same map as ``random_features(x, w, "positive")``, but ``w`` must have
    every row of norm ``sqrt(d)`` (e.g. ``orthogonal_gaussian(m, d, rng,
    scaling="fixed")``). Then ``E[phi(x)^T phi(y)] = smreg_kernel(x, y)``, not
    ``SM(x, y)``.

    Parameters
    ----------
    x : array_like, shape (..., L, d)
    w : array_like, shape (m, d)
        Rows of norm ``sqrt(d)`` (checked to ``1000`` ulps of ``w``'s dtype).
    stabilizer : array_like, optional
        As in :func:`random_features`.

    Returns
    -------
    ndarray, shape (..., L, m)

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, the
    regularised softmax-kernel SMREG (appendix; arXiv:2009.14794).
    """
    x = as_float_array(x, "x", ndim_min=1)
    w = check_random_matrix(w, x.shape[-1])
    d = w.shape[1]
    norms = np.linalg.norm(w.astype(np.float64), axis=1)                # (m,)
    tol = _ROW_NORM_ULPS * np.finfo(w.dtype).eps * math.sqrt(d)
    if not np.all(np.abs(norms - math.sqrt(d)) <= tol):
        worst = norms[np.argmax(np.abs(norms - math.sqrt(d)))]
        raise ValueError(f"w: expected every row norm = sqrt(d) = {math.sqrt(d):.6g} "
                         f"(the regularised variant), got a row of norm {worst:.6g}")
    return random_features(x, w, "positive", stabilizer=stabilizer)


def sm_estimate(x, y, w, kind: str = "positive") -> np.ndarray:
    """The random-feature estimate ``phi(x)^T phi(y)`` of ``SM(x, y)``.

    Parameters
    ----------
    x, y : array_like, shape (..., d)
        Single vectors or batches, of equal shape.
    w : array_like, shape (m, d)
    kind : {"trig", "positive", "hyperbolic"}

    Returns
    -------
    ndarray, shape (...)

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, §2.3
    (estimators SM^trig_m, SM^+_m, SM^hyp+_m).
    """
    check_feature_kind(kind)
    x, y = _check_pair(x, y)
    phi_x = random_features(x, w, kind)   # (..., F)
    phi_y = random_features(y, w, kind)   # (..., F)
    return np.sum(phi_x * phi_y, axis=-1)


# --------------------------------------------------------------------------
# closed forms: MSE (Lemma 2, Theorem 2) and moments
# --------------------------------------------------------------------------

def _analytic_inputs(x, y, m):
    x, y = _check_pair(x, y)
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
    m : int

    Returns
    -------
    ndarray, shape (...)

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, Lemma 2.
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
    m : int

    Returns
    -------
    ndarray, shape (...)

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, Lemma 2.
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
    the proof of Theorem 2 (the same-block covariance term).
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
    Choromanski et al. 2021, Rethinking Attention with Performers, §2.4,
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
    x, y = _check_pair(x, y)
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


# --------------------------------------------------------------------------
# FAVOR+
# --------------------------------------------------------------------------

def _query_features(qs, w, kind, stabilize):
    """``Q'``; for exp-features the per-query max is subtracted (cancels in D^{-1})."""
    if kind == "trig" or not stabilize:
        return random_features(qs, w, kind)                            # (..., L, F)
    c = feature_max_stabilizer(qs, w, kind, over="features")           # (..., L, 1)
    return random_features(qs, w, kind, stabilizer=c)                  # (..., L, F)


def _key_features(ks, w, kind, stabilize, key_stabilizer, mask):
    """``K'`` as stabilised features times ``exp(log_weight)`` per key.

    Returns ``(kf, log_w)``: ``K'_j = exp(log_w_j) kf_j``. Padded keys get
    ``log_w = -inf`` and ``kf = 0`` so they contribute nothing.

    * per-key: ``kf_j = phi(k_j) exp(-c_j)`` with ``c_j`` the key's own max
      exponent (depends on ``k_j`` only) and ``log_w_j = c_j``; the scans
      re-reference the ``c_j`` to a running max, which cancels in ``D^{-1}``.
    * sequence: ``kf_j = phi(k_j) exp(-C)`` with ``C`` the max over all
      (unpadded) keys of the sequence, ``log_w_j = 0``.
    * no stabiliser (or trig): ``kf_j = phi(k_j)``, ``log_w_j = 0``.
    """
    lead_l = ks.shape[:-1]                                             # (..., Lk)
    log_w = np.zeros(lead_l, dtype=ks.dtype)                           # (..., Lk)
    if kind == "trig" or not stabilize:
        kf = random_features(ks, w, kind)                              # (..., Lk, F)
    else:
        c = feature_max_stabilizer(ks, w, kind, over="features")       # (..., Lk, 1)
        if key_stabilizer == "per-key":
            kf = random_features(ks, w, kind, stabilizer=c)            # (..., Lk, F)
            log_w = c[..., 0]                                          # (..., Lk)
        else:
            if mask is not None:
                c = np.where(mask[..., None], c, -np.inf)
            big_c = np.max(c, axis=-2, keepdims=True)                  # (..., 1, 1)
            big_c = np.where(np.isfinite(big_c), big_c, 0.0).astype(ks.dtype)
            kf = random_features(ks, w, kind, stabilizer=big_c)        # (..., Lk, F)
    if mask is not None:
        kf = np.where(mask[..., None], kf, 0.0).astype(ks.dtype, copy=False)
        log_w = np.where(mask, log_w, -np.inf).astype(ks.dtype, copy=False)
    return kf, log_w


def _exp_minus(a, ref):
    """``exp(a - ref)``, and 0 where ``ref = -inf`` (then ``a = -inf`` too)."""
    with np.errstate(invalid="ignore"):
        diff = np.where(np.isneginf(ref), -np.inf, a - ref)
    return np.exp(diff)


def _normalise(num, den):
    """``D^{-1}`` applied row by row; rows with no weight give 0 (never NaN)."""
    zero = den == 0                                                    # (..., L)
    safe = np.where(zero, 1.0, den).astype(den.dtype, copy=False)
    out = num / safe[..., None]                                        # (..., L, dv)
    return np.where(zero[..., None], 0.0, out).astype(num.dtype, copy=False)


def _favor_bidirectional(qf, kf, log_w, v):
    """``D^{-1} (Q' ((K')^T V))``, ``D = diag(Q' ((K')^T 1))``; never L x L."""
    ref = np.max(log_w, axis=-1, keepdims=True)                        # (..., 1)
    a = _exp_minus(log_w, ref)                                         # (..., Lk)
    kw = kf * a[..., None]                                             # (..., Lk, F)
    kv = np.swapaxes(kw, -1, -2) @ v                                   # (..., F, dv)
    k1 = np.sum(kw, axis=-2)                                           # (..., F)
    num = qf @ kv                                                      # (..., L, dv)
    den = np.einsum("...lf,...f->...l", qf, k1)                        # (..., L)
    return _normalise(num, den)


def _favor_causal_scan(qf, kf, log_w, v, chunk):
    """Unidirectional FAVOR+: a chunked prefix-sum scan over the sequence.

    The state after position ``t`` is ``S_t = sum_{j<=t} K'_j V_j^T`` (F, dv)
    and ``z_t = sum_{j<=t} K'_j`` (F,), held relative to ``exp(M_t)``, the
    running max of the key log-weights, so nothing overflows. Inside a chunk
    of ``C`` positions the causal part is the ``C x C`` lower-triangular block
    of ``Q' K'^T``; memory is ``O(C^2 + C F + F dv)``, never ``L x L``.
    """
    lead, L = qf.shape[:-2], qf.shape[-2]
    n_feat, dv = qf.shape[-1], v.shape[-1]
    dtype = qf.dtype
    state_kv = np.zeros(lead + (n_feat, dv), dtype=dtype)              # (..., F, dv)
    state_k = np.zeros(lead + (n_feat,), dtype=dtype)                  # (..., F)
    ref_prev = np.full(lead, -np.inf, dtype=dtype)                     # (...,)
    out = np.empty(lead + (L, dv), dtype=dtype)                        # (..., L, dv)
    for start in range(0, L, chunk):                                   # loop over chunks
        sl = slice(start, min(start + chunk, L))
        qc, kc, vc, lw = qf[..., sl, :], kf[..., sl, :], v[..., sl, :], log_w[..., sl]
        c = lw.shape[-1]
        run = np.maximum.accumulate(lw, axis=-1)                       # (..., C)
        ref = np.maximum(ref_prev[..., None], run)                     # (..., C)
        carry = _exp_minus(ref_prev[..., None], ref)                   # (..., C)
        tril = np.tril(np.ones((c, c), dtype=bool))                    # (C, C)
        rel = np.where(tril, lw[..., None, :], -np.inf)                # (..., C, C)
        a = _exp_minus(rel, ref[..., :, None])                         # (..., C, C)
        scores = (qc @ np.swapaxes(kc, -1, -2)) * a                    # (..., C, C)
        num = (qc @ state_kv) * carry[..., None] + scores @ vc         # (..., C, dv)
        den = np.einsum("...cf,...f->...c", qc, state_k) * carry + np.sum(scores, axis=-1)
        out[..., sl, :] = _normalise(num, den)
        # advance the state to the reference of the chunk's last position
        ref_new = ref[..., -1]                                         # (...,)
        decay = _exp_minus(ref_prev, ref_new)                          # (...,)
        wj = _exp_minus(lw, ref_new[..., None])                        # (..., C)
        kw = kc * wj[..., None]                                        # (..., C, F)
        state_kv = state_kv * decay[..., None, None] + np.swapaxes(kw, -1, -2) @ vc
        state_k = state_k * decay[..., None] + np.sum(kw, axis=-2)
        ref_prev = ref_new
    return out


def favor_attention(q, k, v, w, *, causal: bool = False, kind: str = "positive",
                    mask=None, stabilize: bool = True, key_stabilizer: str = "per-key",
                    chunk_size: int = 64) -> np.ndarray:
    """FAVOR+ attention: linear-cost approximation of ``softmax(Q K^T / sqrt(d)) V``.

    Queries and keys are scaled by ``d^{-1/4}`` so that ``exp(q'^T k') =
    exp(q^T k / sqrt(d))``; then ``Q' = phi(Q d^{-1/4})``, ``K' = phi(K
    d^{-1/4})`` and

    * bidirectional: ``D^{-1} (Q' ((K')^T V))`` with ``D = diag(Q' ((K')^T 1))``;
    * unidirectional (``causal=True``, needs ``Lq == Lk``): output ``i`` uses
      the prefix sums ``sum_{j<=i} K'_j V_j^T`` and ``sum_{j<=i} K'_j``,
      computed by a chunked scan (never an ``L x L`` matrix).

    Stabiliser (``stabilize=True``, positive/hyperbolic only). Every query's
    features are divided by ``exp(c_i)``, ``c_i`` the query's max exponent
    (:func:`feature_max_stabilizer`, ``over="features"``); this scales row
    ``i`` of numerator and ``D`` alike and cancels exactly. For keys, a
    factor common to *all* keys cancels, a factor varying per key does not.
    ``key_stabilizer`` selects:

    * ``"per-key"`` (default): each key is divided by ``exp(c_j)`` of its own
      max exponent (a function of ``k_j`` alone), and the ``c_j`` are kept as
      log-weights that the scan re-references to the running max
      ``M_i = max_{j<=i} c_j``. The result is mathematically unchanged and
      output ``i`` depends on keys ``j <= i`` only -- exactly, in floating
      point: editing a key ``j > i`` leaves output ``i`` bit-for-bit equal.
    * ``"sequence"``: all keys are divided by ``exp(C)``, ``C`` the max over
      the whole (unpadded) key sequence, as some implementations do (the
      google-research reference takes one max over all keys). Exact in real
      arithmetic, but in the causal form ``C`` depends on keys after ``i``, so
      future keys leak into output ``i`` through rounding and underflow (a
      large future key can underflow every earlier key to 0). Kept to exhibit
      that limitation.

    Parameters
    ----------
    q : array_like, shape (..., L, d)
    k : array_like, shape (..., Lk, d)
    v : array_like, shape (..., Lk, dv)
    w : array_like, shape (m, d)
        Random vectors (e.g. :func:`orthogonal_gaussian`).
    causal : bool
        Unidirectional attention (query ``i`` sees keys ``j <= i``).
    kind : {"positive", "hyperbolic", "trig"}
        Feature map; trig features are never stabilised and may make ``D``
        vanish or turn negative.
    mask : array_like of bool, shape (..., Lk), optional
        Key-padding mask, True = real token; leading dims may broadcast.
        Padded keys contribute nothing.
    stabilize : bool
        Subtract the max exponents as above (no effect for trig).
    key_stabilizer : {"per-key", "sequence"}
        The key stabiliser, as above.
    chunk_size : int
        Positions per block of the causal scan (results agree up to rounding
        for any value).

    Returns
    -------
    ndarray, shape (..., L, dv)
        Rows whose normaliser ``D_ii`` is 0 (no unpadded key visible, or total
        underflow) are 0, never NaN.

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, Algorithm 1
    (FAVOR+), §2.2 Eq. (5) (bidirectional) and the prefix-sum unidirectional
    form; Katharopoulos et al. 2020, Transformers are RNNs, §3.2-3.4 (causal
    linear attention as a prefix sum).
    """
    check_feature_kind(kind)
    check_choice(key_stabilizer, "key_stabilizer", KEY_STABILIZERS)
    if not isinstance(stabilize, (bool, np.bool_)):
        raise TypeError(f"stabilize: expected a bool, got {type(stabilize).__name__}")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    q, k, v, w, mask, dtype = check_favor_args(q, k, v, w, causal, mask)
    scale = dtype.type(q.shape[-1] ** -0.25)
    qf = _query_features(q * scale, w, kind, stabilize)                     # (..., L, F)
    kf, log_w = _key_features(k * scale, w, kind, stabilize, key_stabilizer, mask)
    if causal:
        return _favor_causal_scan(qf, kf, log_w, v, chunk_size)            # (..., L, dv)
    return _favor_bidirectional(qf, kf, log_w, v)                          # (..., L, dv)


def favor_attention_explicit(q, k, v, w, *, causal: bool = False,
                             kind: str = "positive", mask=None,
                             stabilize: bool = True) -> np.ndarray:
    """The ``O(L^2)`` form ``D^{-1} A_hat V``, ``A_hat = Q' K'^T``, for checking.

    ``A_hat`` is lower-triangular when ``causal``; padded keys are zero
    columns. With ``stabilize`` the same per-query and per-key stabilisers as
    :func:`favor_attention` are used (the key log-weights are referenced to
    the max over the keys row ``i`` can see), so the two agree up to rounding.

    Parameters
    ----------
    q, k, v, w, causal, kind, mask, stabilize
        As in :func:`favor_attention`.

    Returns
    -------
    ndarray, shape (..., L, dv)

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, §2.2,
    Eq. (4)-(5) (``A_hat``, ``D``) and Algorithm 1.
    """
    check_feature_kind(kind)
    if not isinstance(stabilize, (bool, np.bool_)):
        raise TypeError(f"stabilize: expected a bool, got {type(stabilize).__name__}")
    q, k, v, w, mask, dtype = check_favor_args(q, k, v, w, causal, mask)
    scale = dtype.type(q.shape[-1] ** -0.25)
    qf = _query_features(q * scale, w, kind, stabilize)                     # (..., L, F)
    kf, log_w = _key_features(k * scale, w, kind, stabilize, "per-key", mask)
    L, lk = q.shape[-2], k.shape[-2]
    visible = np.ones((L, lk), dtype=bool)                                  # (L, Lk)
    if causal:
        visible = np.tril(visible)
    log_a = np.where(visible, log_w[..., None, :], -np.inf)                 # (..., L, Lk)
    ref = np.max(log_a, axis=-1, keepdims=True)                             # (..., L, 1)
    a_hat = (qf @ np.swapaxes(kf, -1, -2)) * _exp_minus(log_a, ref)         # (..., L, Lk)
    return _normalise(a_hat @ v, np.sum(a_hat, axis=-1))                    # (..., L, dv)


def favor_attention_recurrent(q, k, v, w, *, kind: str = "positive") -> np.ndarray:
    """Causal FAVOR+ decoded one position at a time (the RNN view).

    State after step ``t``: ``S (F, dv) = sum_{j<=t} K'_j V_j^T`` and
    ``z (F,) = sum_{j<=t} K'_j``, stored relative to ``exp(M_t)``, the running
    max of the per-key stabilisers (rescaled when the max grows). Output
    ``t`` is ``(Q'_t S) / (Q'_t z)``. Equal to ``favor_attention(...,
    causal=True)`` up to rounding.

    Parameters
    ----------
    q : array_like, shape (..., L, d)
    k : array_like, shape (..., L, d)
    v : array_like, shape (..., L, dv)
    w : array_like, shape (m, d)
    kind : {"positive", "hyperbolic", "trig"}

    Returns
    -------
    ndarray, shape (..., L, dv)

    References
    ----------
    Choromanski et al. 2021, Rethinking Attention with Performers, Algorithm 1
    (unidirectional case, prefix sums); Katharopoulos et al. 2020,
    Transformers are RNNs, §3.4 (the recurrent form).
    """
    check_feature_kind(kind)
    q, k, v, w, _, dtype = check_favor_args(q, k, v, w, True, None)
    scale = dtype.type(q.shape[-1] ** -0.25)
    qf = _query_features(q * scale, w, kind, True)                          # (..., L, F)
    kf, log_w = _key_features(k * scale, w, kind, True, "per-key", None)    # (..., L, F)
    lead, L = q.shape[:-2], q.shape[-2]
    state_kv = np.zeros(lead + (qf.shape[-1], v.shape[-1]), dtype=dtype)    # (..., F, dv)
    state_k = np.zeros(lead + (qf.shape[-1],), dtype=dtype)                 # (..., F)
    ref = np.full(lead, -np.inf, dtype=dtype)                               # (...,)
    out = np.empty(lead + (L, v.shape[-1]), dtype=dtype)                    # (..., L, dv)
    for t in range(L):                                                      # decoding steps
        ref_new = np.maximum(ref, log_w[..., t])                            # (...,)
        decay = _exp_minus(ref, ref_new)                                    # (...,)
        weight = _exp_minus(log_w[..., t], ref_new)                         # (...,)
        k_t = kf[..., t, :] * weight[..., None]                             # (..., F)
        state_kv = (state_kv * decay[..., None, None]
                    + k_t[..., :, None] * v[..., t, None, :])               # (..., F, dv)
        state_k = state_k * decay[..., None] + k_t                          # (..., F)
        ref = ref_new
        num = np.einsum("...f,...fv->...v", qf[..., t, :], state_kv)        # (..., dv)
        den = np.einsum("...f,...f->...", qf[..., t, :], state_k)           # (...,)
        out[..., t, :] = _normalise(num[..., None, :], den[..., None])[..., 0, :]
    return out
