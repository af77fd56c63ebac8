"""Gradients by PyTorch autograd behind the numpy contract.

The ``*_backward`` callables and ``softmax_jacobian`` of the torch subject:
autograd (and ``torch.func.jacrev``) through the same kernels as the forward
callables of :mod:`.torch_attention` and :mod:`.torch_layers`, checked by the
``gradients`` claims against central finite differences and the reference
gradients.

References
----------
PyTorch documentation: ``torch.autograd``, ``torch.func.jacrev``,
``torch.func.vmap``.
"""

from __future__ import annotations

import numpy as np

from .._validate import as_float_array, common_float_dtype
from ._torch_common import (
    check_qkv_arrays,
    check_scale,
    check_vector,
    import_torch,
    serial,
    to_numpy,
    to_tensor,
)
from .torch_attention import sdpa
from .torch_layers import ffn_arrays, ffn_torch, torch_activation

__all__ = [
    "softmax_jacobian",
    "softmax_backward",
    "attention_backward",
    "layer_norm_backward",
    "feed_forward_backward",
]


@serial
def softmax_jacobian(x) -> np.ndarray:
    """``torch.func.jacrev`` of ``torch.softmax`` over the last axis, row by row (vmap).

    Returns
    -------
    np.ndarray, (..., n, n)

    References
    ----------
    PyTorch documentation, torch.func.jacrev and torch.func.vmap.
    """
    torch = import_torch()
    arr = as_float_array(x, "x", ndim_min=1, finite=False)
    if np.any(np.isnan(arr)) or np.any(np.isposinf(arr)):
        raise ValueError("x: contains NaN or +inf values (only -inf, for masked logits, is allowed)")
    n = arr.shape[-1]
    rows = to_tensor(arr.reshape(-1, n), arr.dtype)                               # (R, n)
    jac = torch.func.vmap(torch.func.jacrev(lambda r: torch.softmax(r, dim=-1)))(rows)
    return to_numpy(jac, arr.dtype).reshape(arr.shape + (n,))


@serial
def softmax_backward(x, d_out, axis: int = -1) -> np.ndarray:
    """Autograd of ``torch.softmax``: ``dL/dx`` given ``dL/dp``.

    References
    ----------
    PyTorch documentation, torch.autograd.
    """
    torch = import_torch()
    arr = as_float_array(x, "x", ndim_min=1, finite=False)
    if np.any(np.isnan(arr)) or np.any(np.isposinf(arr)):
        raise ValueError("x: contains NaN or +inf values (only -inf, for masked logits, is allowed)")
    g = as_float_array(d_out, "d_out", ndim_min=1)
    if g.shape != arr.shape:
        raise ValueError(f"d_out: expected the forward output's shape {arr.shape}, got {g.shape}")
    dtype = common_float_dtype(arr, g)
    tx = to_tensor(arr, dtype, requires_grad=True)
    torch.softmax(tx, dim=int(axis)).backward(to_tensor(g, dtype))
    return to_numpy(tx.grad, dtype)


@serial
def attention_backward(q, k, v, d_out, *, mask=None, causal=False, scale=None):
    """Autograd of ``F.scaled_dot_product_attention``: ``(dq, dk, dv)``.

    References
    ----------
    PyTorch documentation, torch.nn.functional.scaled_dot_product_attention
    and torch.autograd.
    """
    q, k, v = check_qkv_arrays(q, k, v)
    g = as_float_array(d_out, "d_out", ndim_min=2)
    expected = q.shape[:-1] + (v.shape[-1],)
    if g.shape != expected:
        raise ValueError(f"d_out: expected the forward output's shape {expected}, got {g.shape}")
    dtype = common_float_dtype(q, k, v, g)
    s = check_scale(scale, q.shape[-1])
    tq, tk, tv = (to_tensor(a, dtype, requires_grad=True) for a in (q, k, v))
    sdpa(tq, tk, tv, mask, causal, s, None, dtype).backward(to_tensor(g, dtype))
    return to_numpy(tq.grad, dtype), to_numpy(tk.grad, dtype), to_numpy(tv.grad, dtype)


@serial
def layer_norm_backward(x, d_out, gamma=None, beta=None, *, eps: float = 1e-5):
    """Autograd of ``F.layer_norm``: ``(dx, dgamma, dbeta)`` (gain 1 and bias 0 if omitted).

    References
    ----------
    PyTorch documentation, torch.nn.functional.layer_norm and torch.autograd.
    """
    torch = import_torch()
    x = as_float_array(x, "x", ndim_min=1)
    e = x.shape[-1]
    gamma, beta = check_vector(gamma, "gamma", e), check_vector(beta, "beta", e)
    g = as_float_array(d_out, "d_out", ndim_min=1)
    if g.shape != x.shape:
        raise ValueError(f"d_out: expected the forward output's shape {x.shape}, got {g.shape}")
    dtype = common_float_dtype(x, gamma, beta, g)
    tx = to_tensor(x, dtype, requires_grad=True)
    tg = to_tensor(np.ones(e) if gamma is None else gamma, dtype, requires_grad=True)
    tb = to_tensor(np.zeros(e) if beta is None else beta, dtype, requires_grad=True)
    torch.nn.functional.layer_norm(tx, (e,), tg, tb, float(eps)).backward(to_tensor(g, dtype))
    return to_numpy(tx.grad, dtype), to_numpy(tg.grad, dtype), to_numpy(tb.grad, dtype)


@serial
def feed_forward_backward(x, params, d_out, *, activation="relu"):
    """Autograd of :func:`feed_forward`: ``(dx, FFNParams of gradients)``.

    References
    ----------
    PyTorch documentation, torch.autograd.
    """
    from transformer_theory.impl.layers import FFNParams

    act = torch_activation(activation)
    x, w1, b1, w2, b2 = ffn_arrays(x, params)
    g = as_float_array(d_out, "d_out", ndim_min=1)
    if g.shape != x.shape:
        raise ValueError(f"d_out: expected the forward output's shape {x.shape}, got {g.shape}")
    dtype = common_float_dtype(x, w1, b1, w2, b2, g)
    leaf = (lambda a: None if a is None else to_tensor(a, dtype, requires_grad=True))
    tx, tw1, tb1, tw2, tb2 = (leaf(a) for a in (x, w1, b1, w2, b2))
    ffn_torch(tx, tw1, tb1, tw2, tb2, act).backward(to_tensor(g, dtype))
    grad = (lambda t: None if t is None else to_numpy(t.grad, dtype))
    return grad(tx), FFNParams(w1=grad(tw1), b1=grad(tb1), w2=grad(tw2), b2=grad(tb2))
