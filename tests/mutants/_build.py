"""Small numpy pieces the mutants are assembled from (written plainly, so that
each mutant's bug is the only thing that differs from the definition)."""

from __future__ import annotations

import numpy as np

from transformer_theory.impl import attention as A


def naive_weights(q, k, *, mask=None, causal=False, scale=None, bias=None, softmax=None,
                  causal_offset=0):
    """softmax(q k^T * scale + bias) with masking by -inf; ``softmax`` replaceable."""
    q = np.asarray(q)
    k = np.asarray(k)
    lq, lk, e = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1.0 / np.sqrt(e) if scale is None else scale
    s = np.einsum("...qe,...ke->...qk", q, k) * scale            # (..., Lq, Lk)
    if bias is not None:
        s = s + bias
    allowed = np.ones(s.shape, dtype=bool)
    if mask is not None:
        allowed &= np.broadcast_to(mask, s.shape)
    if causal:
        offset = (lk - lq) if causal == "bottom-right" else 0
        allowed &= np.tril(np.ones((lq, lk), dtype=bool), k=offset + causal_offset)
    s = np.where(allowed, s, -np.inf)
    return (softmax or A.softmax)(s, axis=-1).astype(q.dtype)


def attention_from(weights_fn):
    """An attention callable ``weights_fn(q, k, ...) @ v``."""
    def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
        w = weights_fn(q, k, mask=mask, causal=causal, scale=scale, bias=bias)
        return (w @ np.asarray(v)).astype(np.asarray(q).dtype)
    return attention
