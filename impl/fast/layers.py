"""Accelerated position-wise layers: layer and RMS normalisation, the feed-forward network.

Mirrors :mod:`transformer_theory.impl.layers` with the same signatures,
validation (the validators of :mod:`transformer_theory.impl.contract`, in the
reference's order) and semantics:

* :func:`layer_norm` standardises each row with the reference's two safeguards
  (rescaling by the row's largest magnitude before squaring, and exact zeros
  for constant rows), one row per iteration of a parallel loop;
* :func:`rms_norm` divides each row by its root mean square with ``eps``
  inside the root, with the reference's safeguard (the row is divided by its
  largest magnitude before squaring; an all-zero row gives zeros);
* :func:`feed_forward` computes ``act(x W1 + b1) W2 + b2`` on blocks of rows:
  both products through ``np.dot`` on the block, the bias and the activation
  applied to the block while it is in cache. The four named activations run
  inside the kernel; any other callable is applied by numpy between the two
  products.

References
----------
Ba, Kiros & Hinton 2016, Layer Normalization, §3 (eq. 4).
Zhang & Sennrich 2019, Root Mean Square Layer Normalization (RMSNorm).
Vaswani et al. 2017, Attention Is All You Need, §3.1 and §3.3 (eq. 2).
Hendrycks & Gimpel 2016, Gaussian Error Linear Units (GELUs), §2.
Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt), "LayerNorm"; seed 003
(shared/seeds/003_8876c6ab28e0baf8.txt), "Dense Feed Forward Layer".
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .. import layers as reference
from ..contract.params import FFNParams, LayerNormParams
from ..contract.validate import (
    as_float_array,
    check_eps,
    check_instance,
    check_optional_vector,
    common_float_dtype,
)
from ..layers import init_ffn, init_layer_norm  # noqa: F401  (re-exported)
from ._docs import same_contract
from ._numeric import (
    JIT,
    JIT_INLINE,
    as_kernel_array,
    fast_exp,
    fmax,
    matmul,
    prefer_wide_vectors,
    run_tasks,
    single_threaded_blas,
    typed,
)

__all__ = [
    "LayerNormParams",
    "init_layer_norm",
    "layer_norm",
    "rms_norm",
    "FFNParams",
    "init_ffn",
    "feed_forward",
    "ACTIVATION_CODES",
]

#: Rows per task of the feed-forward kernel.
_FFN_ROWS = 128

#: Activations evaluated inside the kernel, by the reference function they mirror.
ACTIVATION_CODES = {reference.relu: 0, reference.gelu: 1, reference.tanh: 2,
                    reference.sigmoid: 3}

_SQRT_HALF = math.sqrt(0.5)


# ---------------------------------------------------------------------------
# Layer normalisation
# ---------------------------------------------------------------------------

@njit(**JIT_INLINE)
def _standardise_row(x, eps, out):
    """``(x - mean) / sqrt(var + eps)`` of one row, as the reference's ``_standardise``.

    The row is divided by its largest magnitude ``s0``, centred, divided by the
    largest centred magnitude ``s1``, and ``eps`` is rescaled by ``(s0 s1)^2``,
    so no square overflows or underflows; a constant row gives exact zeros.
    """
    prefer_wide_vectors()
    n = x.shape[0]
    one = typed(eps, 1.0)
    zero = typed(eps, 0.0)
    count = typed(eps, n)                                    # divide in the row's dtype
    constant = True
    s0 = zero
    for j in range(n):
        constant = constant and x[j] == x[0]
        s0 = fmax(s0, abs(x[j]))
    if not s0 > zero:
        s0 = one
    total = zero
    for j in range(n):
        out[j] = x[j] / s0                                   # y, in [-1, 1]
        total += out[j]
    mean = total / count
    s1 = zero
    for j in range(n):
        out[j] = zero if constant else out[j] - mean          # centred, in [-2, 2]
        s1 = fmax(s1, abs(out[j]))
    if not s1 > zero:
        s1 = one
    sq = zero
    for j in range(n):
        out[j] = out[j] / s1                                  # z, max |z| = 1
        sq += out[j] * out[j]
    var_z = sq / count                                        # biased: / row length
    eps_z = zero
    if eps > zero:
        scale = s0 * s1
        eps_z = eps / (scale * scale)      # inf only where the true output is < 1e-19
    denom = one if constant else np.sqrt(var_z + eps_z)
    for j in range(n):
        out[j] = out[j] / denom


@njit(**JIT)
def _layer_norm_tasks(x, eps, gamma, beta, use_affine, first, stride, out):
    """Layer norm of rows ``first, first + stride, ...`` of x (N, E) into out.

    ``* gamma + beta`` if ``use_affine``; a task is one row.
    """
    width = x.shape[1]
    for i in range(first, x.shape[0], stride):
        row = out[i]
        _standardise_row(x[i], eps, row)
        if use_affine:
            for j in range(width):
                row[j] = row[j] * gamma[j] + beta[j]


def _layer_norm_rows(x2, eps, gamma, beta, use_affine):
    """Run :func:`_layer_norm_tasks` over all rows of x2 (N, E)."""
    out = np.empty_like(x2)                                             # (N, E)
    run_tasks(lambda first, stride: _layer_norm_tasks(x2, eps, gamma, beta, use_affine,
                                                      first, stride, out),
              x2.shape[0], 10.0 * x2.size)
    return out


@same_contract(reference.layer_norm)
def layer_norm(x, gamma=None, beta=None, *, eps: float = 1e-5) -> np.ndarray:
    """Layer normalisation over the last axis, one row per parallel iteration.

    Same contract as :func:`transformer_theory.impl.layers.layer_norm`:
    ``y = (x - mean(x)) / sqrt(var(x) + eps) * gamma + beta`` with the biased
    variance; a constant row standardises to zeros (also for ``eps = 0``).

    References
    ----------
    Ba, Kiros & Hinton 2016, Layer Normalization, §3 (eq. 4); seed 002
    (shared/seeds/002_c6f7e64caf2ae364.txt), "LayerNorm".
    """
    x = as_float_array(x, "x", ndim_min=1)
    e = x.shape[-1]
    gamma = check_optional_vector(gamma, "gamma", e, "d_model (last dim of x)")
    beta = check_optional_vector(beta, "beta", e, "d_model (last dim of x)")
    eps = check_eps(eps)
    dtype = common_float_dtype(x, gamma, beta)
    if x.size == 0:
        return np.zeros(x.shape, dtype=dtype)
    x2 = as_kernel_array(x.reshape((-1, e)), x.dtype)                   # (N, E)
    g = np.ones(e, dtype) if gamma is None else as_kernel_array(gamma, dtype)    # (E,)
    b = np.zeros(e, dtype) if beta is None else as_kernel_array(beta, dtype)     # (E,)
    if dtype == x.dtype:                                                # affine inside the kernel
        out = _layer_norm_rows(x2, x.dtype.type(eps), g, b, gamma is not None or beta is not None)
        return out.reshape(x.shape)
    xhat = _layer_norm_rows(x2, x.dtype.type(eps), np.ones(e, x.dtype), np.zeros(e, x.dtype),
                            False).reshape(x.shape)                     # (..., E) float32 xhat
    return xhat.astype(dtype) * g + b      # (..., E) float64 affine; * 1 and + 0 are exact


# ---------------------------------------------------------------------------
# RMS normalisation
# ---------------------------------------------------------------------------

@njit(**JIT_INLINE)
def _rms_row(x, eps, out):
    """``x / sqrt(mean(x^2) + eps)`` of one row, as the reference's ``rms_norm``.

    The row is divided by its largest magnitude ``s`` and ``eps`` by ``s^2``,
    so no square overflows or underflows; an all-zero row gives exact zeros
    (also for ``eps = 0``).
    """
    prefer_wide_vectors()
    n = x.shape[0]
    zero = typed(eps, 0.0)
    count = typed(eps, n)                                    # divide in the row's dtype
    s = zero
    for j in range(n):
        s = fmax(s, abs(x[j]))
    if not s > zero:                                         # all-zero row -> zeros
        for j in range(n):
            out[j] = zero
        return
    sq = zero
    for j in range(n):
        out[j] = x[j] / s                                    # z, max |z| = 1
        sq += out[j] * out[j]
    ms = sq / count                                          # mean square of z
    eps_z = zero
    if eps > zero:
        eps_z = eps / (s * s)              # inf only where the true output is < 1e-19
    denom = np.sqrt(ms + eps_z)
    for j in range(n):
        out[j] = out[j] / denom


@njit(**JIT)
def _rms_norm_tasks(x, eps, gamma, use_gamma, first, stride, out):
    """RMS norm of rows ``first, first + stride, ...`` of x (N, E) into out.

    Times ``gamma`` if ``use_gamma``.
    """
    width = x.shape[1]
    for i in range(first, x.shape[0], stride):
        row = out[i]
        _rms_row(x[i], eps, row)
        if use_gamma:
            for j in range(width):
                row[j] = row[j] * gamma[j]


def _rms_norm_rows(x2, eps, gamma, use_gamma):
    """Run :func:`_rms_norm_tasks` over all rows of x2 (N, E)."""
    out = np.empty_like(x2)                                             # (N, E)
    run_tasks(lambda first, stride: _rms_norm_tasks(x2, eps, gamma, use_gamma, first, stride,
                                                    out),
              x2.shape[0], 6.0 * x2.size)
    return out


@same_contract(reference.rms_norm)
def rms_norm(x, gamma=None, *, eps: float = 1e-6) -> np.ndarray:
    """Root-mean-square normalisation over the last axis, one row per parallel iteration.

    Same contract as :func:`transformer_theory.impl.layers.rms_norm`:
    ``y = x / sqrt(mean(x**2) + eps) * gamma`` with ``eps`` inside the root,
    no centring; an all-zero row gives zeros (also for ``eps = 0``).

    References
    ----------
    Zhang & Sennrich 2019, Root Mean Square Layer Normalization, NeurIPS (the
    RMSNorm section: ``a_i / RMS(a) * g_i`` with no re-centering).
    """
    x = as_float_array(x, "x", ndim_min=1)
    e = x.shape[-1]
    gamma = check_optional_vector(gamma, "gamma", e, "d_model (last dim of x)")
    eps = check_eps(eps)
    dtype = common_float_dtype(x, gamma)
    if x.size == 0:
        return np.zeros(x.shape, dtype=dtype)
    x2 = as_kernel_array(x.reshape((-1, e)), x.dtype)                   # (N, E)
    g = np.ones(e, dtype) if gamma is None else as_kernel_array(gamma, dtype)    # (E,)
    if dtype == x.dtype:                                                # gain inside the kernel
        return _rms_norm_rows(x2, x.dtype.type(eps), g, gamma is not None).reshape(x.shape)
    y = _rms_norm_rows(x2, x.dtype.type(eps), np.ones(e, x.dtype), False).reshape(x.shape)
    return y.astype(dtype) * g             # (..., E) float64 gain, as the reference's _affine


# ---------------------------------------------------------------------------
# Position-wise feed-forward network
# ---------------------------------------------------------------------------

@njit(**JIT_INLINE)
def _activate(v, code):
    """relu (0), exact gelu (1), tanh (2) or sigmoid (3) of one value."""
    one = typed(v, 1.0)
    zero = typed(v, 0.0)
    if code == 0:
        return v if v > zero else zero
    if code == 1:
        phi = typed(v, 0.5) * (one + math.erf(v * typed(v, _SQRT_HALF)))   # Phi(v)
        return v * phi
    if code == 2:
        return math.tanh(v)
    e = fast_exp(-abs(v))                                               # in (0, 1]
    return one / (one + e) if v >= zero else e / (one + e)


@njit(**JIT_INLINE)
def _bias_rows(h, b):
    """h (R, F) += b (F,) on every row."""
    prefer_wide_vectors()
    for i in range(h.shape[0]):
        for j in range(h.shape[1]):
            h[i, j] += b[j]


@njit(**JIT)
def _feed_forward_tasks(x, w1, b1, use_b1, w2, b2, use_b2, code, rows, first, stride, out):
    """act(x W1 + b1) W2 + b2 for x (N, E) into out (N, E); a task is a block of rows."""
    n_rows = x.shape[0]
    d_ff = w2.shape[0]
    n_blocks = (n_rows + rows - 1) // rows
    hidden = np.empty((rows, d_ff), dtype=x.dtype)
    for task in range(first, n_blocks, stride):
        r0 = task * rows
        r1 = min(r0 + rows, n_rows)
        h = hidden[:r1 - r0]                                            # (R, F)
        matmul(x[r0:r1], w1, h)
        if use_b1:
            _bias_rows(h, b1)
        for i in range(r1 - r0):
            for j in range(d_ff):
                h[i, j] = _activate(h[i, j], code)
        y = out[r0:r1]                                                  # (R, E)
        matmul(h, w2, y)
        if use_b2:
            _bias_rows(y, b2)


@njit(**JIT)
def _linear_tasks(x, w, b, use_b, rows, first, stride, out):
    """x W + b for x (N, Ein), w (Ein, Eout) into out (N, Eout); a task is a block of rows."""
    n_rows = x.shape[0]
    n_blocks = (n_rows + rows - 1) // rows
    for task in range(first, n_blocks, stride):
        r0 = task * rows
        r1 = min(r0 + rows, n_rows)
        y = out[r0:r1]
        matmul(x[r0:r1], w, y)
        if use_b:
            _bias_rows(y, b)


def linear(x2, w, b, dtype) -> np.ndarray:
    """``x2 @ w + b`` for a 2-d ``x2`` with the row-block kernel (``b`` may be None)."""
    use_b = b is not None
    b_arr = as_kernel_array(b, dtype) if use_b else np.zeros(1, dtype=dtype)
    x2, w = as_kernel_array(x2, dtype), as_kernel_array(w, dtype)
    out = np.empty((x2.shape[0], w.shape[1]), dtype=dtype)             # (N, Eout)
    rows = _FFN_ROWS
    with single_threaded_blas():
        run_tasks(lambda first, stride: _linear_tasks(x2, w, b_arr, use_b, rows, first, stride,
                                                      out),
                  -(-x2.shape[0] // rows), 2.0 * out.size * w.shape[0])
    return out


@same_contract(reference.feed_forward)
def feed_forward(x, params: FFNParams, *, activation="relu") -> np.ndarray:
    """Position-wise feed-forward network ``act(x W1 + b1) W2 + b2`` on row blocks.

    Same contract as :func:`transformer_theory.impl.layers.feed_forward`.
    The activations ``"relu"``, ``"gelu"``, ``"tanh"`` and ``"sigmoid"`` (or
    those reference functions) run inside the kernel; another callable is
    applied by numpy to the hidden layer.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.3 (eq. 2); seed 003
    (shared/seeds/003_8876c6ab28e0baf8.txt), "Dense Feed Forward Layer".
    """
    check_instance(params, "params", FFNParams)
    act = reference.resolve_activation(activation)
    x = as_float_array(x, "x", ndim_min=1)
    w1, b1, w2, b2 = params.validate(x.shape[-1])
    e, f = w1.shape
    dtype = common_float_dtype(x, w1, b1, w2, b2)
    if x.size == 0 or f == 0:
        return reference.feed_forward(x, params, activation=activation)
    x2 = as_kernel_array(x.reshape((-1, e)), dtype)                     # (N, E)
    code = ACTIVATION_CODES.get(act)
    if code is None:                                                    # a user's callable
        h = linear(x2, w1, b1, dtype)                                   # (N, F)
        h = np.asarray(act(h)).astype(dtype, copy=False)
        return linear(h, w2, b2, dtype).reshape(x.shape[:-1] + (e,))
    w1, w2 = as_kernel_array(w1, dtype), as_kernel_array(w2, dtype)
    none = np.zeros(1, dtype=dtype)
    b1 = none if b1 is None else as_kernel_array(b1, dtype)
    b2 = none if b2 is None else as_kernel_array(b2, dtype)
    use_b1, use_b2 = params.b1 is not None, params.b2 is not None
    out = np.empty_like(x2)                                             # (N, E)
    rows = _FFN_ROWS
    with single_threaded_blas():
        run_tasks(lambda first, stride: _feed_forward_tasks(
            x2, w1, b1, use_b1, w2, b2, use_b2, code, rows, first, stride, out),
            -(-x2.shape[0] // rows), 4.0 * x2.size * f)
    return out.reshape(x.shape[:-1] + (e,))
