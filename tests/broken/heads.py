"""Broken multi-head, grouped-query attention and KV-cache decoding.

They take the reference's parameter dataclasses, as the contract says.
"""

from __future__ import annotations

import math

import numpy as np

from transformer_theory.impl.attention import KVCache


def _softmax_rows(s):
    m = np.max(s, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(s - m)
    z = e.sum(axis=-1, keepdims=True)
    return np.divide(e, z, out=np.zeros_like(e), where=z > 0)


def _proj(x, w, b):
    y = np.einsum("...le,hed->...hld", x, w)                      # (..., heads, L, D)
    return y if b is None else y + b[:, None, :]


def _heads(x_q, x_kv, p, mask, causal, scale, kv_index):
    q = _proj(x_q, p.w_q, p.b_q)                                  # (..., H, Lq, Dh)
    k = _proj(x_kv, p.w_k, p.b_k)[..., kv_index, :, :]            # (..., H, Lk, Dh)
    v = _proj(x_kv, p.w_v, p.b_v)[..., kv_index, :, :]            # (..., H, Lk, Dv)
    s = scale * q @ np.swapaxes(k, -1, -2)                        # (..., H, Lq, Lk)
    lq, lk = s.shape[-2:]
    allowed = np.ones(s.shape, dtype=bool)
    if mask is not None:
        allowed &= np.expand_dims(np.broadcast_to(mask, x_q.shape[:-2] + (lq, lk)), -3)
    if causal:
        allowed &= np.tril(np.ones((lq, lk), dtype=bool))
    return _softmax_rows(np.where(allowed, s, -np.inf)) @ v        # (..., H, Lq, Dv)


def _merge(o, p):
    concat = np.concatenate([o[..., h, :, :] for h in range(o.shape[-3])], axis=-1)
    y = concat @ p.w_o
    return y if p.b_o is None else y + p.b_o


def mha_scaled_by_d_model(x_q, x_kv, params, *, mask=None, causal=False):
    """Each head's scores divided by sqrt(d_model) instead of sqrt(d_head)."""
    h = params.n_heads
    o = _heads(np.asarray(x_q), np.asarray(x_kv), params, mask, causal,
               1.0 / math.sqrt(params.d_model), np.arange(h))
    return _merge(o, params)


def mha_heads_concatenated_backwards(x_q, x_kv, params, *, mask=None, causal=False):
    """Heads concatenated in reverse order before W_O (a transpose/reshape mix-up)."""
    h = params.n_heads
    o = _heads(np.asarray(x_q), np.asarray(x_kv), params, mask, causal,
               1.0 / math.sqrt(params.d_head), np.arange(h))
    return _merge(o[..., ::-1, :, :], params)


def gqa_modular_mapping(x_q, x_kv, params, *, mask=None, causal=False):
    """Query head h reads kv head h % G (tensor.repeat) instead of h // (H/G) (repeat_interleave)."""
    h, g = params.n_heads, params.n_kv_heads
    o = _heads(np.asarray(x_q), np.asarray(x_kv), params, mask, causal,
               1.0 / math.sqrt(params.d_head), np.arange(h) % g)
    return _merge(o, params)


def _decode(x_t, params, cache, *, keep_newest: bool, write_at):
    x_t = np.asarray(x_t)
    t = cache.length
    dtype = np.result_type(x_t, cache.k)
    k_all, v_all = cache.k.astype(dtype, copy=True), cache.v.astype(dtype, copy=True)
    pos = write_at(t)
    k_all[..., pos:pos + 1, :] = _proj(x_t, params.w_k, params.b_k)
    v_all[..., pos:pos + 1, :] = _proj(x_t, params.w_v, params.b_v)
    q = _proj(x_t, params.w_q, params.b_q)                        # (..., H, 1, Dh)
    r = params.n_heads // params.n_kv_heads
    upto = t + 1 if keep_newest else t
    k = np.repeat(k_all[..., :upto, :], r, axis=-3)
    v = np.repeat(v_all[..., :upto, :], r, axis=-3)
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(params.d_head)
    o = _softmax_rows(s) @ v                                      # (..., H, 1, Dv)
    return _merge(o, params), KVCache(k_all, v_all, t + 1)


def decode_drops_newest_key(x_t, params, cache):
    """The new token's key and value are written to the cache but attention reads cache[:t]."""
    return _decode(x_t, params, cache, keep_newest=False, write_at=lambda t: t)


def decode_writes_one_ahead(x_t, params, cache):
    """The new key is written at position t + 1 (length counted after the write)."""
    return _decode(x_t, params, cache, keep_newest=True,
                   write_at=lambda t: min(t + 1, cache.max_len - 1))
