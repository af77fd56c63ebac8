"""Reference gradients: the backward passes of softmax, attention, LayerNorm and the FFN.

Each function returns the vector-Jacobian product of the matching forward
function of the reference: given the forward inputs and an upstream gradient
``d_out = dL/d(output)``, it returns ``dL/d(input)`` for every input. They are
written from the closed-form derivatives, not by automatic differentiation, so
that other implementations' autograd (PyTorch, JAX) can be checked against
them, and they against central finite differences (``theory/claims/gradients.py``).

Softmax
-------
With ``p = softmax(x)`` the Jacobian is ``J = diag(p) - p p^T`` (symmetric,
rows summing to zero), so ``dx = J^T g = p * (g - <g, p>)``.

Attention
---------
With ``S = s Q K^T`` (masked entries ``-inf``), ``P = softmax(S)`` row-wise and
``O = P V``::

    dV = P^T dO
    dP = dO V^T
    dS = P * (dP - D),   D_i = sum_j P_ij dP_ij = sum_e dO_ie O_ie
    dQ = s dS K,   dK = s dS^T Q

A masked entry has ``P_ij = 0`` exactly, so ``dS_ij = 0``: no gradient flows to
a key or value through a connection the mask forbids, and a fully masked query
row (whose output is the constant 0) gets ``dQ_i = 0``.

LayerNorm
---------
With ``sigma = sqrt(var(x) + eps)`` (biased variance), ``xhat = (x - mean) / sigma``
and ``y = xhat * gamma + beta``::

    dbeta = sum dY,   dgamma = sum dY * xhat   (over every leading axis)
    g = dY * gamma
    dx = (g - mean(g) - xhat * mean(g * xhat)) / sigma

Feed-forward network
--------------------
With ``h = x W1 + b1``, ``a = phi(h)``, ``y = a W2 + b2``::

    dW2 = a^T dY,  db2 = sum dY,  da = dY W2^T,  dh = da * phi'(h),
    dW1 = x^T dh,  db1 = sum dh,  dx = dh W1^T

References
----------
Goodfellow, Bengio & Courville 2016, Deep Learning, §6.5 (back-propagation).
Vaswani et al. 2017, Attention Is All You Need, §3.2.1 (the forward pass).
Dao et al. 2022, FlashAttention, Appendix B.2 (the attention backward with
``D_i = rowsum(dO * O)``).
Ba, Kiros & Hinton 2016, Layer Normalization, §3 (the forward pass).
Seed 002 (shared/seeds/002_c6f7e64caf2ae364.txt), "LayerNorm": the forward
standardisation whose derivative ``layer_norm_backward`` is. Seed 000
(shared/seeds/000_dca4bc6ff5cc76c0.txt): training is finicky when gradients
vanish or explode, which is why they are worth checking exactly.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from .attention import attention_weights, softmax
from .contract.precision import computes_in_float32
from .contract.params import FFNParams
from .contract.validate import (
    ACTIVATION_NAMES,
    as_float_array,
    check_choice,
    check_eps,
    check_finite_where_attended,
    check_instance,
    check_optional_vector,
    check_qkv,
    common_float_dtype,
    normalize_axis,
    resolve_scale,
)
from .layers import get_activation

__all__ = [
    "softmax_jacobian",
    "softmax_backward",
    "attention_backward",
    "layer_norm_backward",
    "activation_derivative",
    "feed_forward_backward",
]


def _check_grad(d_out, expected_shape: tuple, name: str = "d_out") -> np.ndarray:
    """The upstream gradient: finite, float32/float64, exactly the output's shape."""
    g = as_float_array(d_out, name, ndim_min=0)
    if g.shape != tuple(expected_shape):
        raise ValueError(
            f"{name}: expected the forward output's shape {tuple(expected_shape)}, "
            f"got shape {g.shape}")
    return g


def _logits(x) -> np.ndarray:
    """Softmax input: finite or -inf (masked) entries, at least 1-d."""
    arr = as_float_array(x, "x", ndim_min=1, finite=False)
    if np.any(np.isnan(arr)) or np.any(np.isposinf(arr)):
        raise ValueError("x: contains NaN or +inf values (only -inf, for masked logits, is allowed)")
    return arr


# ---------------------------------------------------------------------------
# softmax
# ---------------------------------------------------------------------------

def softmax_jacobian(x) -> np.ndarray:
    """Jacobian of the softmax over the last axis: ``J = diag(p) - p p^T``.

    Parameters
    ----------
    x : array_like, (..., n)
        Logits, float32 or float64; ``-inf`` marks a masked entry (its row and
        column of ``J`` are zero).

    Returns
    -------
    np.ndarray, (..., n, n)
        ``J[..., i, j] = d p_i / d x_j``; symmetric, every row sums to 0.

    References
    ----------
    Goodfellow, Bengio & Courville 2016, Deep Learning, §6.2.2.3 (softmax
    units); proofs/softmax.py, derivation ``softmax.jacobian``.
    """
    x = _logits(x)
    p = softmax(x, -1)                                            # (..., n)
    eye = np.eye(x.shape[-1], dtype=x.dtype)                      # (n, n)
    return p[..., :, None] * eye - p[..., :, None] * p[..., None, :]   # (..., n, n)


def softmax_backward(x, d_out, axis: int = -1) -> np.ndarray:
    """Gradient of ``softmax(x, axis)`` given the upstream gradient ``d_out``.

    ``dx = p * (d_out - sum(d_out * p))`` along ``axis``, the product of the
    symmetric Jacobian ``diag(p) - p p^T`` with ``d_out``.

    Parameters
    ----------
    x : array_like
        Logits (the forward input), float32 or float64; ``-inf`` allowed.
    d_out : array_like
        ``dL/dp``, the same shape as ``x``.
    axis : int
        The softmax axis.

    Returns
    -------
    np.ndarray
        ``dL/dx``, the shape of ``x``; zero at ``-inf`` entries. float32 only
        if ``x`` and ``d_out`` are float32.

    References
    ----------
    Goodfellow, Bengio & Courville 2016, Deep Learning, §6.5; Vaswani et al.
    2017, §3.2.1 (the forward softmax).
    """
    x = _logits(x)
    axis = normalize_axis(axis, x.ndim)
    g = _check_grad(d_out, x.shape)
    dtype = common_float_dtype(x, g)
    p = softmax(x.astype(dtype, copy=False), axis)                        # (...)
    g = g.astype(dtype, copy=False)
    return p * (g - np.sum(g * p, axis=axis, keepdims=True))              # (...)


# ---------------------------------------------------------------------------
# attention
# ---------------------------------------------------------------------------

@computes_in_float32
def attention_backward(q, k, v, d_out, *, mask=None, causal=False, scale=None):
    """Gradients of scaled dot-product attention with respect to ``q``, ``k`` and ``v``.

    The backward pass of :func:`transformer_theory.impl.attention.attention`
    (without ``bias``): see the module docstring for the formulas.

    Parameters
    ----------
    q : array_like, (..., Lq, E)
        Finite.
    k : array_like, (..., Lk, E)
    v : array_like, (..., Lk, Ev)
        Finite at every key some query may attend; a key that no query may
        attend may hold NaN/inf, and the gradients are exactly those with the
        key and value set to 0 (as in ``attention``).
    d_out : array_like, (..., Lq, Ev)
        ``dL/dO``, the shape of the attention output.
    mask : array_like of bool, optional
        Broadcastable to ``(..., Lq, Lk)``; True = may attend.
    causal : {False, True, "top-left", "bottom-right"}
        As in ``attention``; combined with ``mask`` by AND.
    scale : float, optional
        Positive temperature; default ``1/sqrt(E)``.

    Returns
    -------
    dq : np.ndarray, (..., Lq, E)
    dk : np.ndarray, (..., Lk, E)
    dv : np.ndarray, (..., Lk, Ev)
        Exactly zero for keys/values no query may see and for fully masked
        query rows. float32 only if every input is float32.

    References
    ----------
    Dao et al. 2022, FlashAttention, Appendix B.2 (standard attention
    backward pass); Vaswani et al. 2017, Attention Is All You Need, §3.2.1.
    """
    q, k, v = check_qkv(q, k, v, finite_kv=False)
    lead, lq = q.shape[:-2], q.shape[-2]
    g = _check_grad(d_out, tuple(lead) + (lq, v.shape[-1]))
    s = resolve_scale(scale, q.shape[-1])
    k, v = check_finite_where_attended([("k", k), ("v", v)], mask, causal, lead, lq)
    dtype = common_float_dtype(q, k, v, g)
    q, k, v, g = (a.astype(dtype, copy=False) for a in (q, k, v, g))
    p = attention_weights(q, k, mask=mask, causal=causal, scale=s)          # (..., Lq, Lk)
    dv = np.matmul(np.swapaxes(p, -1, -2), g)                              # (..., Lk, Ev)
    dp = np.matmul(g, np.swapaxes(v, -1, -2))                              # (..., Lq, Lk)
    row = np.sum(dp * p, axis=-1, keepdims=True)                           # (..., Lq, 1)
    ds = p * (dp - row)                                                    # (..., Lq, Lk)
    dq = dtype.type(s) * np.matmul(ds, k)                                  # (..., Lq, E)
    dk = dtype.type(s) * np.matmul(np.swapaxes(ds, -1, -2), q)             # (..., Lk, E)
    return dq, dk, dv


# ---------------------------------------------------------------------------
# LayerNorm
# ---------------------------------------------------------------------------

def layer_norm_backward(x, d_out, gamma=None, beta=None, *, eps: float = 1e-5):
    """Gradients of ``layer_norm(x, gamma, beta, eps=eps)`` over the last axis.

    Parameters
    ----------
    x : array_like, (..., E)
        The forward input.
    d_out : array_like, (..., E)
        ``dL/dy``.
    gamma, beta : array_like, (E,), optional
        The affine parameters (omitted: 1 and 0). ``beta`` does not enter the
        gradients but is validated like the forward's.
    eps : float
        Finite, ``>= 0``, inside the square root.

    Returns
    -------
    dx : np.ndarray, (..., E)
    dgamma : np.ndarray, (E,)
        Gradient with respect to the gain (at 1 when ``gamma`` is omitted).
    dbeta : np.ndarray, (E,)
        Gradient with respect to the bias.

        A row with zero variance and ``eps == 0`` (where the forward returns
        the constant ``beta``) gets ``dx = 0``.

    References
    ----------
    Ba, Kiros & Hinton 2016, Layer Normalization, §3 (Eq. 4, the forward
    pass); Goodfellow, Bengio & Courville 2016, Deep Learning, §6.5.
    """
    x = as_float_array(x, "x", ndim_min=1)
    e = x.shape[-1]
    gamma = check_optional_vector(gamma, "gamma", e, "d_model (last dim of x)")
    beta = check_optional_vector(beta, "beta", e, "d_model (last dim of x)")
    eps = check_eps(eps)
    g = _check_grad(d_out, x.shape)
    dtype = common_float_dtype(x, gamma, beta, g)
    x, g = x.astype(dtype, copy=False), g.astype(dtype, copy=False)
    t = dtype.type
    centred = x - np.mean(x, axis=-1, keepdims=True)                       # (..., E)
    sigma = np.sqrt(np.mean(centred * centred, axis=-1, keepdims=True) + t(eps))   # (..., 1)
    live = sigma > 0
    safe = np.where(live, sigma, t(1))
    xhat = np.where(live, centred / safe, t(0))                            # (..., E)
    lead_axes = tuple(range(x.ndim - 1))
    dbeta = np.sum(g, axis=lead_axes)                                      # (E,)
    dgamma = np.sum(g * xhat, axis=lead_axes)                              # (E,)
    gg = g if gamma is None else g * gamma.astype(dtype, copy=False)       # (..., E)
    inner = (gg - np.mean(gg, axis=-1, keepdims=True)
             - xhat * np.mean(gg * xhat, axis=-1, keepdims=True))          # (..., E)
    dx = np.where(live, inner / safe, t(0))                                # (..., E)
    return dx, np.asarray(dgamma, dtype=dtype), np.asarray(dbeta, dtype=dtype)


# ---------------------------------------------------------------------------
# feed-forward network
# ---------------------------------------------------------------------------

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def activation_derivative(name: str, h) -> np.ndarray:
    """``phi'(h)`` for the activations of ``layers.ACTIVATIONS``.

    relu: ``1[h > 0]`` (0 at the kink, as PyTorch); gelu (exact):
    ``Phi(h) + h phi(h)``; tanh: ``1 - tanh(h)^2``; sigmoid: ``s (1 - s)``.

    Parameters
    ----------
    name : {"relu", "gelu", "tanh", "sigmoid"}
    h : array_like
        Pre-activations, float32 or float64.

    Returns
    -------
    np.ndarray
        The shape and dtype of ``h``.

    References
    ----------
    Hendrycks & Gimpel 2016, GELUs, §2 (GELU = x Phi(x)); Goodfellow, Bengio &
    Courville 2016, Deep Learning, §6.3.
    """
    get_activation(name)                      # validates the name
    h = as_float_array(h, "h", ndim_min=0)
    t = h.dtype.type
    if name == "relu":
        return (h > 0).astype(h.dtype)
    if name == "gelu":
        cdf = t(0.5) * (t(1) + special.erf(h * t(math.sqrt(0.5))))          # Phi(h)
        pdf = t(_INV_SQRT_2PI) * np.exp(t(-0.5) * h * h)                   # phi(h)
        return (cdf + h * pdf).astype(h.dtype, copy=False)
    if name == "tanh":
        th = np.tanh(h)
        return (t(1) - th * th).astype(h.dtype, copy=False)
    sig = special.expit(h)
    return (sig * (t(1) - sig)).astype(h.dtype, copy=False)


def feed_forward_backward(x, params: FFNParams, d_out, *, activation: str = "relu"):
    """Gradients of ``feed_forward(x, params, activation=activation)``.

    Parameters
    ----------
    x : array_like, (..., E)
    params : FFNParams
        ``w1 (E, F)``, ``b1 (F,)`` or None, ``w2 (F, E)``, ``b2 (E,)`` or None.
    d_out : array_like, (..., E)
        ``dL/dy``.
    activation : {"relu", "gelu", "tanh", "sigmoid"}
        By name (the derivative must be known).

    Returns
    -------
    dx : np.ndarray, (..., E)
    grads : FFNParams
        ``dL/dw1 (E, F)``, ``dL/db1 (F,)`` (None if ``b1`` is None),
        ``dL/dw2 (F, E)``, ``dL/db2 (E,)`` (None if ``b2`` is None).

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.3 (the forward pass);
    Goodfellow, Bengio & Courville 2016, Deep Learning, §6.5.
    """
    check_instance(params, "params", FFNParams)
    if not isinstance(activation, str):
        raise TypeError(
            f"activation: expected an activation name (str), got {type(activation).__name__}")
    check_choice(activation, "activation", ACTIVATION_NAMES)
    x = as_float_array(x, "x", ndim_min=1)
    w1, b1, w2, b2 = params.validate(x.shape[-1])
    e, f = w1.shape
    g = _check_grad(d_out, x.shape)
    dtype = common_float_dtype(x, w1, b1, w2, b2, g)
    x, w1, w2, g = (a.astype(dtype, copy=False) for a in (x, w1, w2, g))

    h = x @ w1                                                             # (..., F)
    if b1 is not None:
        h = h + b1.astype(dtype, copy=False)
    a = np.asarray(get_activation(activation)(h)).astype(dtype, copy=False)   # (..., F)
    xs = x.reshape(-1, e)                                                  # (N, E)
    gs = g.reshape(-1, e)                                                  # (N, E)
    dw2 = a.reshape(-1, f).T @ gs                                          # (F, E)
    db2 = None if b2 is None else np.sum(gs, axis=0)                       # (E,)
    da = g @ w2.T                                                          # (..., F)
    dh = da * activation_derivative(activation, h)                         # (..., F)
    dhs = dh.reshape(-1, f)                                                # (N, F)
    dw1 = xs.T @ dhs                                                       # (E, F)
    db1 = None if b1 is None else np.sum(dhs, axis=0)                      # (F,)
    dx = dh @ w1.T                                                         # (..., E)
    return dx, FFNParams(w1=dw1, b1=db1, w2=dw2, b2=db2)
