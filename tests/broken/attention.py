"""Broken scaled dot-product attention kernels: mistakes from real code.

Each function follows the contract ``attention(q, k, v, *, mask=None,
causal=False, scale=None)`` except for one bug, named by the function.
"""

from __future__ import annotations

import numpy as np


def _causal(lq: int, lk: int, causal, shift: int = 0) -> np.ndarray | None:
    if not causal:
        return None
    offset = (lk - lq) if causal == "bottom-right" else 0
    return np.tril(np.ones((lq, lk), dtype=bool), k=offset + shift)


def _allowed(q, k, mask, causal, shift: int = 0):
    lq, lk = q.shape[-2], k.shape[-2]
    allowed = np.ones(q.shape[:-2] + (lq, lk), dtype=bool)
    if mask is not None:
        allowed &= np.broadcast_to(mask, allowed.shape)
    tri = _causal(lq, lk, causal, shift)
    return allowed if tri is None else allowed & tri


def _softmax_rows(s: np.ndarray) -> np.ndarray:
    """Max-subtracted softmax over the last axis; empty rows give zeros."""
    m = np.max(s, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(s - m)
    z = e.sum(axis=-1, keepdims=True)
    return np.divide(e, z, out=np.zeros_like(e), where=z > 0)


def _attend(q, k, v, allowed, scale):
    q, k, v = (np.asarray(a) for a in (q, k, v))
    s = scale * (q @ np.swapaxes(k, -1, -2))                      # (..., Lq, Lk)
    s = np.where(allowed, s, -np.inf)
    return (_softmax_rows(s) @ v).astype(np.result_type(q, k, v))


def missing_scale(q, k, v, *, mask=None, causal=False, scale=None):
    """Scores never divided by sqrt(d) (the default scale forgotten)."""
    q, k = np.asarray(q), np.asarray(k)
    return _attend(q, k, v, _allowed(q, k, mask, causal), 1.0 if scale is None else scale)


def scale_by_d(q, k, v, *, mask=None, causal=False, scale=None):
    """Scores divided by d instead of sqrt(d)."""
    q, k = np.asarray(q), np.asarray(k)
    s = 1.0 / q.shape[-1] if scale is None else scale
    return _attend(q, k, v, _allowed(q, k, mask, causal), s)


def scale_ignored(q, k, v, *, mask=None, causal=False, scale=None):
    """The scale argument is accepted and ignored (always 1/sqrt(d))."""
    q, k = np.asarray(q), np.asarray(k)
    return _attend(q, k, v, _allowed(q, k, mask, causal), 1.0 / np.sqrt(q.shape[-1]))


def softmax_over_queries(q, k, v, *, mask=None, causal=False, scale=None):
    """softmax(..., dim=-2): normalised over the queries instead of the keys."""
    q, k, v = (np.asarray(a) for a in (q, k, v))
    s = (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale) * (q @ np.swapaxes(k, -1, -2))
    s = np.where(_allowed(q, k, mask, causal), s, -np.inf)
    p = np.swapaxes(_softmax_rows(np.swapaxes(s, -1, -2)), -1, -2)
    return (p @ v).astype(q.dtype)


def causal_off_by_one(q, k, v, *, mask=None, causal=False, scale=None):
    """torch.triu(..., diagonal=1) vs diagonal=2: position i also sees i + 1."""
    q, k = np.asarray(q), np.asarray(k)
    s = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    return _attend(q, k, v, _allowed(q, k, mask, causal, shift=1), s)


def causal_transposed(q, k, v, *, mask=None, causal=False, scale=None):
    """An upper-triangular causal mask: each position sees the future, not the past."""
    q, k = np.asarray(q), np.asarray(k)
    lq, lk = q.shape[-2], k.shape[-2]
    allowed = np.ones(q.shape[:-2] + (lq, lk), dtype=bool)
    if mask is not None:
        allowed &= np.broadcast_to(mask, allowed.shape)
    if causal:
        allowed &= np.triu(np.ones((lq, lk), dtype=bool))
    s = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    return _attend(q, k, v, allowed, s)


def causal_always_bottom_right(q, k, v, *, mask=None, causal=False, scale=None):
    """causal=True aligned bottom-right (a FlashAttention habit) where the contract says top-left."""
    q, k = np.asarray(q), np.asarray(k)
    s = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    return _attend(q, k, v, _allowed(q, k, mask, "bottom-right" if causal else False), s)


def mask_polarity_inverted(q, k, v, *, mask=None, causal=False, scale=None):
    """A boolean mask read as True = masked out (nn.MultiheadAttention's polarity)."""
    q, k = np.asarray(q), np.asarray(k)
    s = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    inverted = None if mask is None else ~np.asarray(mask)
    return _attend(q, k, v, _allowed(q, k, inverted, causal), s)


def padding_on_values_only(q, k, v, *, mask=None, causal=False, scale=None):
    """Padding applied by zeroing the padded values; their keys still take softmax weight."""
    q, k, v = (np.asarray(a) for a in (q, k, v))
    s = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    if mask is not None:
        keep = np.broadcast_to(mask, q.shape[:-2] + (q.shape[-2], k.shape[-2]))
        v = v * keep.any(axis=-2)[..., None]                      # zero padded values only
    return _attend(q, k, v, _allowed(q, k, None, causal), s)


def nan_on_fully_masked_row(q, k, v, *, mask=None, causal=False, scale=None):
    """masked_fill(-inf) then softmax: a fully masked row is exp(-inf - -inf) = NaN."""
    q, k, v = (np.asarray(a) for a in (q, k, v))
    s = (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale) * (q @ np.swapaxes(k, -1, -2))
    s = np.where(_allowed(q, k, mask, causal), s, -np.inf)
    with np.errstate(invalid="ignore"):
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True) @ v).astype(q.dtype)


def additive_mask_minus_1e4(q, k, v, *, mask=None, causal=False, scale=None):
    """Masking by adding -10000 (the BERT-era constant): a fully masked row becomes uniform."""
    q, k, v = (np.asarray(a) for a in (q, k, v))
    s = (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale) * (q @ np.swapaxes(k, -1, -2))
    s = s + np.where(_allowed(q, k, mask, causal), 0.0, -1e4)
    return (_softmax_rows(s) @ v).astype(q.dtype)


def no_max_subtraction(q, k, v, *, mask=None, causal=False, scale=None):
    """exp(s) / sum exp(s) without subtracting the row max: overflows for large logits."""
    q, k, v = (np.asarray(a) for a in (q, k, v))
    s = (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale) * (q @ np.swapaxes(k, -1, -2))
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.where(_allowed(q, k, mask, causal), np.exp(s), 0.0)
        z = e.sum(axis=-1, keepdims=True)
        p = np.divide(e, z, out=np.zeros_like(e), where=z > 0)
    return (p @ v).astype(q.dtype)


def float32_accumulation(q, k, v, *, mask=None, causal=False, scale=None):
    """Everything computed in float32 (a hard-coded .float()), also for float64 inputs."""
    q, k, v = (np.asarray(a) for a in (q, k, v))
    s = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    out = _attend(q.astype(np.float32), k.astype(np.float32), v.astype(np.float32),
                  _allowed(q, k, mask, causal), np.float32(s))
    return out.astype(np.result_type(q, k, v))


_DROPOUT = np.random.default_rng()


def dropout_at_inference(q, k, v, *, mask=None, causal=False, scale=None):
    """Attention dropout (p = 0.1) left on outside training."""
    q, k, v = (np.asarray(a) for a in (q, k, v))
    s = (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale) * (q @ np.swapaxes(k, -1, -2))
    p = _softmax_rows(np.where(_allowed(q, k, mask, causal), s, -np.inf))
    keep = _DROPOUT.random(p.shape) >= 0.1
    return ((p * keep / 0.9) @ v).astype(q.dtype)


def _unrenormalized_weights(q, k, *, mask=None, causal=False, scale=None):
    q, k = np.asarray(q), np.asarray(k)
    s = (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale) * (q @ np.swapaxes(k, -1, -2))
    p = _softmax_rows(np.where(_allowed(q, k, None, causal), s, -np.inf))
    if mask is not None:
        p = p * np.broadcast_to(mask, p.shape)                     # masked after the softmax
    return p.astype(q.dtype)


def _unrenormalized_attention(q, k, v, *, mask=None, causal=False, scale=None):
    return (_unrenormalized_weights(q, k, mask=mask, causal=causal, scale=scale)
            @ np.asarray(v)).astype(np.asarray(q).dtype)


#: A mapping of contract names to callables is a subject too (module:object).
post_softmax_mask = {
    "attention": _unrenormalized_attention,
    "attention_weights": _unrenormalized_weights,
}
