"""Broken hand-written backward passes."""

from __future__ import annotations

import numpy as np


def attention_backward_without_scale(q, k, v, d_out, *, mask=None, causal=False, scale=None):
    """dQ = dS K and dK = dS^T Q: the softmax scale of the forward forgotten in the backward."""
    q, k, v, g = (np.asarray(a, dtype=np.float64) for a in (q, k, v, d_out))
    lq, lk = q.shape[-2], k.shape[-2]
    s = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = s * q @ np.swapaxes(k, -1, -2)
    allowed = np.ones(scores.shape, dtype=bool)
    if mask is not None:
        allowed &= np.broadcast_to(mask, scores.shape)
    if causal:
        offset = (lk - lq) if causal == "bottom-right" else 0
        allowed &= np.tril(np.ones((lq, lk), dtype=bool), k=offset)
    scores = np.where(allowed, scores, -np.inf)
    m = np.max(scores, axis=-1, keepdims=True)
    e = np.exp(scores - np.where(np.isfinite(m), m, 0.0))
    z = e.sum(axis=-1, keepdims=True)
    p = np.divide(e, z, out=np.zeros_like(e), where=z > 0)
    dv = np.swapaxes(p, -1, -2) @ g
    dp = g @ np.swapaxes(v, -1, -2)
    ds = p * (dp - np.sum(dp * p, axis=-1, keepdims=True))
    return ds @ k, np.swapaxes(ds, -1, -2) @ q, dv


def layer_norm_backward_treats_stats_as_constants(x, d_out, gamma=None, beta=None, *, eps=1e-5):
    """dx = g * gamma / sigma: mean and variance treated as constants (no gradient through them)."""
    x, g = np.asarray(x, dtype=np.float64), np.asarray(d_out, dtype=np.float64)
    c = x - x.mean(axis=-1, keepdims=True)
    sigma = np.sqrt(np.mean(c * c, axis=-1, keepdims=True) + eps)
    xhat = c / sigma
    gg = g if gamma is None else g * gamma
    lead = tuple(range(x.ndim - 1))
    return gg / sigma, np.sum(g * xhat, axis=lead), np.sum(g, axis=lead)
