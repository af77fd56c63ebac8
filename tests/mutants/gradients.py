"""Mutants of the backward passes: the mistakes of hand-written gradient kernels.

``attention_backward_without_scale`` and ``layer_norm_backward_treats_stats_as_constants``
are also loaded by target (``mutants.gradients:attention_backward_without_scale --as
attention_backward``) and run through ``check``.
"""

from __future__ import annotations

import numpy as np

from transformer_theory.impl import gradients as D
from transformer_theory.impl.attention import softmax
from transformer_theory.impl.layers import FFNParams

from . import Mutant, replacing
from ._build import allowed as _allowed
from ._build import softmax_rows as _softmax_rows


def _forward(q, k, mask, causal, scale, causal_offset=0):
    """Masked attention weights in float64 (the same forward as the reference)."""
    q, k = np.asarray(q, dtype=np.float64), np.asarray(k, dtype=np.float64)
    s = (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale)
    scores = s * q @ np.swapaxes(k, -1, -2)                         # (..., Lq, Lk)
    keep = _allowed(q, k, mask, causal, causal_offset)
    return s, softmax(np.where(keep, scores, -np.inf), axis=-1)


def _backward(q, k, v, g, p, s, *, scale_dq=True):
    dv = np.swapaxes(p, -1, -2) @ g
    dp = g @ np.swapaxes(v, -1, -2)
    ds = p * (dp - np.sum(dp * p, axis=-1, keepdims=True))
    dq = (s if scale_dq else 1.0) * ds @ k
    dk = s * np.swapaxes(ds, -1, -2) @ q
    dt = np.result_type(q, k, v, g)
    return dq.astype(dt), dk.astype(dt), dv.astype(dt)




def _backward_ignores_mask(q, k, v, d_out, *, mask=None, causal=False, scale=None):
    s, p = _forward(q, k, None, False, scale)          # recomputes P without the masks
    return _backward(q, k, v, np.asarray(d_out), p, s)


def _causal_off_by_one(q, k, v, d_out, *, mask=None, causal=False, scale=None):
    s, p = _forward(q, k, mask, causal, scale, causal_offset=1 if causal else 0)
    return _backward(q, k, v, np.asarray(d_out), p, s)


def _dv_scaled(q, k, v, d_out, *, mask=None, causal=False, scale=None):
    dq, dk, dv = D.attention_backward(q, k, v, d_out, mask=mask, causal=causal, scale=scale)
    s = 1.0 / np.sqrt(np.shape(q)[-1]) if scale is None else scale
    return dq, dk, (dv * s).astype(dv.dtype)            # scale applied to V's path too


def _jacobian_diagonal_only(x):
    p = softmax(x, axis=-1)
    return p[..., :, None] * (1 - p)[..., :, None] * np.eye(np.shape(x)[-1])


def _softmax_backward_no_correction(x, d_out, axis=-1):
    return softmax(x, axis=axis) * np.asarray(d_out)      # forgets the - <g, p> term


def _layer_norm_backward_no_mean(x, d_out, gamma=None, beta=None, *, eps=1e-5):
    x = np.asarray(x, dtype=np.float64)
    g = np.asarray(d_out, dtype=np.float64)
    c = x - x.mean(axis=-1, keepdims=True)
    sigma = np.sqrt(np.mean(c * c, axis=-1, keepdims=True) + eps)
    xhat = c / sigma
    gg = g if gamma is None else g * gamma
    dx = (gg - xhat * np.mean(gg * xhat, axis=-1, keepdims=True)) / sigma   # no - mean(gg)
    dt = np.result_type(np.asarray(d_out), np.asarray(x))
    return dx.astype(dt), np.sum(g * xhat, axis=0).astype(dt), np.sum(g, axis=0).astype(dt)


def _ffn_backward_no_activation_derivative(x, params, d_out, *, activation="relu"):
    dx, grads = D.feed_forward_backward(x, params, d_out, activation="relu")
    if activation == "relu":                              # right only by accident for relu
        return dx, grads
    x = np.asarray(x)
    g = np.asarray(d_out)
    h = x @ params.w1 + params.b1
    a = {"gelu": lambda z: z * 0.5 * (1 + np.tanh(0.79788456 * (z + 0.044715 * z**3))),
         "tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z))}[activation](h)
    dh = g @ params.w2.T                                   # phi'(h) forgotten
    return dh @ params.w1.T, FFNParams(w1=x.T @ dh, b1=dh.sum(0), w2=a.T @ g, b2=g.sum(0))



def attention_backward_without_scale(q, k, v, d_out, *, mask=None, causal=False, scale=None):
    """dQ = dS K and dK = dS^T Q: the softmax scale of the forward forgotten in the backward."""
    q, k, v, g = (np.asarray(a, dtype=np.float64) for a in (q, k, v, d_out))
    s = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = np.where(_allowed(q, k, mask, causal), s * q @ np.swapaxes(k, -1, -2), -np.inf)
    return _backward(q, k, v, g, _softmax_rows(scores), 1.0)   # dQ, dK without the factor s


def layer_norm_backward_treats_stats_as_constants(x, d_out, gamma=None, beta=None, *, eps=1e-5):
    """dx = g * gamma / sigma: mean and variance treated as constants (no gradient through them)."""
    x, g = np.asarray(x, dtype=np.float64), np.asarray(d_out, dtype=np.float64)
    c = x - x.mean(axis=-1, keepdims=True)
    sigma = np.sqrt(np.mean(c * c, axis=-1, keepdims=True) + eps)
    xhat = c / sigma
    gg = g if gamma is None else g * gamma
    lead = tuple(range(x.ndim - 1))
    return gg / sigma, np.sum(g * xhat, axis=lead), np.sum(g, axis=lead)

MUTANTS = [
    Mutant("attention_backward_without_scale", "the softmax scale forgotten in dQ and dK",
           ("gradients.attention_finite_differences",),
           replacing(attention_backward=attention_backward_without_scale),
           "mutants.gradients:attention_backward_without_scale", "attention_backward",
           "gradients.*"),
    Mutant("layer_norm_backward_stats_constant",
           "LayerNorm backward treating the mean and variance as constants",
           ("gradients.layer_norm_finite_differences",),
           replacing(layer_norm_backward=layer_norm_backward_treats_stats_as_constants),
           "mutants.gradients:layer_norm_backward_treats_stats_as_constants",
           "layer_norm_backward", "gradients.*"),
    Mutant("backward_ignores_mask", "the backward recomputes P without the mask",
           ("gradients.masked_positions_zero", "gradients.dv_is_weights_transpose_do",
            "gradients.attention_finite_differences"),
           lambda ref: ref.replace(attention_backward=_backward_ignores_mask)),
    Mutant("backward_causal_off_by_one", "the backward's causal mask lets i see key i + 1",
           ("gradients.causal_no_future_gradient",),
           lambda ref: ref.replace(attention_backward=_causal_off_by_one)),
    Mutant("dv_scaled", "dV multiplied by the softmax scale as if V were scaled",
           ("gradients.dv_is_weights_transpose_do",),
           lambda ref: ref.replace(attention_backward=_dv_scaled)),
    Mutant("jacobian_diagonal_only", "softmax Jacobian diag(p(1 - p)), the -p_i p_j terms dropped",
           ("gradients.softmax_jacobian_rows_sum_zero",),
           lambda ref: ref.replace(softmax_jacobian=_jacobian_diagonal_only)),
    Mutant("softmax_backward_no_correction", "softmax backward p * g without - <g, p>",
           ("gradients.softmax_finite_differences",),
           lambda ref: ref.replace(softmax_backward=_softmax_backward_no_correction)),
    Mutant("layer_norm_backward_no_mean", "LayerNorm backward without the - mean(g) term",
           ("gradients.layer_norm_finite_differences", "gradients.layer_norm_gradient_orthogonal"),
           lambda ref: ref.replace(layer_norm_backward=_layer_norm_backward_no_mean)),
    Mutant("ffn_backward_no_activation_derivative",
           "the FFN backward passes dY W2^T straight through the activation",
           ("gradients.feed_forward_finite_differences",),
           lambda ref: ref.replace(feed_forward_backward=_ffn_backward_no_activation_derivative)),
]


def elman_bptt_truncated(x, w, u, g, *, h0=None):
    """Truncated BPTT: each step's delta sees only its own g_t (no W^T delta_{t+1})."""
    from transformer_theory.impl import recurrence as R
    states, _ = R.elman_rnn(x, w, u, h0=h0)
    g = np.asarray(g, dtype=np.float64)
    per_copy = np.stack([np.outer(g[t] * (1.0 - states[t + 1] ** 2), states[t])
                         for t in range(g.shape[0])])                   # (T, n, n)
    return per_copy.sum(axis=0), per_copy


MUTANTS += [
    Mutant("bptt_truncated", "back-propagation through time truncated to one step (the "
           "recurrent term W^T delta_{t+1} dropped)",
           ("gradients.bptt_sums_tied_copies",),
           lambda ref: ref.replace(elman_bptt=elman_bptt_truncated)),
]
