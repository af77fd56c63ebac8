"""Performer random feature maps for the softmax kernel.

The softmax kernel ``SM(x, y) = exp(x^T y)`` is an expectation over a Gaussian
vector ``omega ~ N(0, I_d)``, so a feature map ``phi`` built from ``m`` random
vectors (the rows of ``W``, shape ``(m, d)``; :mod:`.performer_matrices`)
gives an unbiased estimate ``phi(x)^T phi(y)`` of it. Three maps:

* ``"trig"``       -- ``h(x) / sqrt(m) [sin(W x), cos(W x)]`` with
  ``h(x) = exp(||x||^2 / 2)``; feature dimension ``2m``;
* ``"positive"``   -- ``exp(W x - ||x||^2 / 2) / sqrt(m)``; dimension ``m``;
* ``"hyperbolic"`` -- ``exp(+-W x - ||x||^2 / 2) / sqrt(2m)`` (the ``+``
  block, then the ``-`` block); dimension ``2m``.

The exponential features may be divided by ``exp(c)`` for a stabiliser ``c``
(:func:`feature_max_stabilizer`), which FAVOR+ (:mod:`.performer_favor`)
cancels exactly. The closed forms of what the estimators estimate and of their
errors are in :mod:`.performer_analytic`.

References
----------
Choromanski et al. 2021, Rethinking Attention with Performers, ICLR 2021
(arXiv:2009.14794): §2.3 (Lemma 1: positive and hyperbolic random features).
Rahimi & Recht 2007, Random Features for Large-Scale Kernel Machines (the
trigonometric features). Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt):
the trigonometric and positive feature maps.
"""

from __future__ import annotations

import math

import numpy as np

from .contract.validate import (
    as_float_array,
    check_choice,
    check_feature_args,
    check_feature_kind,
    check_positive_int,
    check_random_matrix,
    check_vector_pair,
    common_float_dtype,
)

__all__ = [
    "feature_dimension",
    "feature_max_stabilizer",
    "random_features",
    "regularized_features",
    "sm_estimate",
]

#: Kinds whose features are exponentials, so a stabiliser can be subtracted.
_EXP_KINDS = ("positive", "hyperbolic")

#: Rows of a regularised W must have norm sqrt(d) up to this many ulps.
_ROW_NORM_ULPS = 1000


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
    regularized softmax-kernel SMREG (§2.3; Theorem 1 in §3: SMREG <= SM).
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
    x, y = check_vector_pair(x, y)
    phi_x = random_features(x, w, kind)   # (..., F)
    phi_y = random_features(y, w, kind)   # (..., F)
    return np.sum(phi_x * phi_y, axis=-1)
