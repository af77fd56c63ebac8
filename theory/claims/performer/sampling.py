"""Monte Carlo through the subject: inputs, random matrices and estimates in bulk.

Inputs (``x, y, q, k, v``, and ``W`` where a claim is about the features and
not the sampler) are generated here from seeded numpy generators, never by
the subject.

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
(``A_hat = Q' K'^T``, Eq. (4)), §2.3 (the estimators), §2.4 (orthogonal random
features).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from transformer_theory.impl.performer_formulas import PairGeometry, pair_geometry

from ...subject import convention


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


def subject_features(subject, x, w, kind) -> np.ndarray:
    """``subject.random_features(x, w, kind=kind)`` in float64, its shape checked.

    Raises
    ------
    ValueError
        If the features do not have the leading shape of ``x``.
    """
    out = np.asarray(subject.random_features(x, w, kind=kind), dtype=np.float64)
    if out.shape[:-1] != x.shape[:-1]:
        raise ValueError(f"random_features: expected shape {x.shape[:-1]} + (F,), got {out.shape}")
    return out


def replicate_calls(x: np.ndarray, n: int, draw_w: Callable[[int], np.ndarray], m: int,
                    estimate: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """``n`` replicates of ``estimate``, computed a batch of replicates per call.

    Parameters
    ----------
    x : np.ndarray, (..., d)
        The inputs one call embeds (sets the batch size :func:`reps_per_call`).
    n : int
        Number of replicates.
    draw_w : callable
        ``draw_w(r)`` returns ``r`` random matrices side by side, ``(m, r d)``.
    m : int
        Rows of each random matrix.
    estimate : callable
        ``estimate(w, r)`` returns the ``r`` replicates of one batch, ``(r, ...)``.

    Returns
    -------
    np.ndarray, (n, ...)
    """
    out = []
    done = 0
    reps = reps_per_call(m, x.size)
    while done < n:                                       # loop over calls, not positions
        w = draw_w(min(reps, n - done))                                # (m, r d)
        r = w.shape[1] // x.shape[-1]
        out.append(estimate(w, r))
        done += r
    return np.concatenate(out, axis=0)


def sm_estimates(subject, kind: str, xs: np.ndarray, ys: np.ndarray, n: int,
                 draw_w: Callable[[int], np.ndarray], m: int) -> np.ndarray:
    """``n`` independent estimates ``phi(x_p)^T phi(y_p)`` of every pair: ``(n, P)``.

    ``draw_w(r)`` returns ``r`` independent random matrices side by side,
    shape ``(m, r d)``; all ``P`` pairs of a replicate share its matrix.
    """
    def estimate(w, r):
        fx = subject_features(subject, embed_replicates(xs, r), w, kind)  # (r, P, F)
        fy = subject_features(subject, embed_replicates(ys, r), w, kind)  # (r, P, F)
        return np.sum(fx * fy, axis=-1)                                # (r, P)
    return replicate_calls(xs, n, draw_w, m, estimate)                 # (n, P)


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


def stacked_draws(ws: np.ndarray) -> Callable[[int], np.ndarray]:
    """``draw_w`` handing out the precomputed ``(n, m, d)`` matrices in order, side by side."""
    state = {"next": 0}

    def draw(r):
        start = state["next"]
        block = ws[start:start + r]                                    # (r, m, d)
        state["next"] = start + block.shape[0]
        return np.swapaxes(block, 0, 1).reshape(ws.shape[1], -1)       # (m, r d)
    return draw


def attention_matrix_estimates(subject, qs: np.ndarray, ks: np.ndarray, n: int,
                               draw_w: Callable[[int], np.ndarray], m: int) -> np.ndarray:
    """``n`` independent ``A_hat = Q' K'^T`` (positive features, no scaling): ``(n, L, Lk)``.

    Queries and keys go through one feature call per batch of replicates
    (stacked as ``[Q; K]``, so both see the same ``W`` as FAVOR+ requires).
    """
    x = np.concatenate([qs, ks], axis=0)                               # (L + Lk, d)
    length = qs.shape[0]
    def estimate(w, r):
        f = subject_features(subject, embed_replicates(x, r), w, "positive")  # (r, L + Lk, F)
        return f[:, :length] @ np.swapaxes(f[:, length:], -1, -2)      # (r, L, Lk)
    return replicate_calls(x, n, draw_w, m, estimate)                  # (n, L, Lk)


def as_floats(values) -> list:
    """Plain floats for figure data (non-finite values kept as they are)."""
    return [float(v) for v in values]
