"""The random matrices ``W`` (m, d) of Performer features: iid and block-orthogonal.

The rows ``omega_1..omega_m`` of ``W`` are the random vectors of the feature
maps (:mod:`.performer_features`): iid Gaussian (Lemma 1), or orthogonal
within blocks of ``d`` rows, with chi-distributed norms (every row still
``N(0, I_d)``, lower error: Theorem 2) or fixed norms ``sqrt(d)`` (the
regularised variant, which estimates SMREG instead of SM). Every function
takes its ``numpy.random.Generator``; there is no global state.

References
----------
Choromanski et al. 2021, Rethinking Attention with Performers, ICLR 2021
(arXiv:2009.14794): §2.3 (iid features), §2.4 (orthogonal random features),
§3 (Theorem 2), §4.2 and Appendix B.2 (redrawing features).
Yu et al. 2016, Orthogonal Random Features (chi-norm orthogonal blocks).
Mezzadri 2007, How to generate random matrices from the classical compact
groups, §5 (Haar orthogonal matrices by QR).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import lapack

from .contract.validate import check_choice, check_positive_int, check_rng

__all__ = [
    "gaussian_matrix",
    "orthogonal_gaussian",
    "redraw_features",
]


def _check_dtype_arg(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    return dt


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
    # LAPACK's Householder QR itself (what np.linalg.qr calls, with the same result): at
    # the small d of the Theorem 2 claims, which draw 10^5 matrices a run, numpy's
    # wrapper costs twice the factorisation
    packed, tau, _, info = lapack.dgeqrf(g)         # R on and above the diagonal
    q, _, info_q = lapack.dorgqr(packed, tau)       # (d, d)
    if info or info_q:                              # only for invalid arguments
        raise np.linalg.LinAlgError(f"QR of a Gaussian matrix failed (info {info}, {info_q})")
    signs = np.where(np.diagonal(packed) < 0, -1.0, 1.0)  # (d,) sign(diag R), 0 -> 1
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
    (orthogonal random features) and Theorem 2 (§3); Yu et al. 2016, Orthogonal
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
    Choromanski et al. 2021, Rethinking Attention with Performers, §4.2 and
    Appendix B.2 (redrawing features during training) and §2.4.
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
