"""Mutants of multi-head, grouped-query attention and the KV cache.

The stand-alone multi-head kernels take the reference's parameter dataclasses, as
the contract says; they are also loaded by target
(``mutants.heads:gqa_modular_mapping --as grouped_query_attention``) and run
through ``check``.
"""

from __future__ import annotations

import math

import numpy as np
from ._build import attention_from, naive_weights
from ._build import merge as _merge
from ._build import project as _proj
from ._build import softmax_rows as _softmax_rows

from transformer_theory.impl import attention as A

from . import Mutant, replacing


def _merge_without_transpose(ref):
    def mha(x_q, x_kv, p, *, mask=None, causal=False, bias=None):
        q = A._project(np.asarray(x_q), p.w_q, p.b_q)             # (B, H, Lq, Dh)
        k = A._project(np.asarray(x_kv), p.w_k, p.b_k)
        v = A._project(np.asarray(x_kv), p.w_v, p.b_v)
        o = A.attention(q, k, v, mask=mask, causal=causal)        # (B, H, Lq, Dv)
        lead, (h, lq, dv) = o.shape[:-3], o.shape[-3:]
        merged = o.reshape(*lead, lq, h * dv)                     # the bug: no transpose
        return merged @ p.w_o + p.b_o
    return ref.replace(multi_head_attention=mha)


def _batch_mixing(ref):
    def attention(q, k, v, **kw):
        k = np.asarray(k)
        if k.ndim > 2:
            k = np.broadcast_to(k.reshape(-1, *k.shape[-2:])[:1], k.shape)   # keys of item 0
        return A.attention(q, k, v, **kw)
    return ref.replace(attention=attention)






def _gqa_drops_value_bias(ref):
    def gqa(x_q, x_kv, p, **kw):
        p2 = A.GroupedQueryParams(w_q=p.w_q, b_q=p.b_q, w_k=p.w_k, b_k=p.b_k,
                                  w_v=p.w_v, b_v=np.zeros_like(p.b_v), w_o=p.w_o, b_o=p.b_o)
        return A.grouped_query_attention(x_q, x_kv, p2, **kw)
    return ref.replace(grouped_query_attention=gqa)


def _kv_bytes_without_two(ref):
    def kv_cache_bytes(n_layers, n_kv_heads, d_head, seq_len, batch, dtype):
        return n_layers * n_kv_heads * d_head * seq_len * batch * np.dtype(dtype).itemsize
    return ref.replace(kv_cache_bytes=kv_cache_bytes)


def _alibi_always_on(ref):
    def weights(q, k, *, bias=None, **kw):
        lq, lk = np.asarray(q).shape[-2], np.asarray(k).shape[-2]
        dist = -0.5 * np.abs(np.arange(lq)[:, None] - np.arange(lk)[None, :])
        return naive_weights(q, k, bias=dist if bias is None else bias + dist, **kw)
    return ref.replace(attention_weights=weights, attention=attention_from(weights))



# --------------------------------------------------------------------------
# stand-alone broken kernels (also loaded by target)
# --------------------------------------------------------------------------

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

MUTANTS = [
    Mutant("heads_merged_without_transpose",
           "(B, H, L, Dv) reshaped to (B, L, H*Dv) without moving the head axis first",
           ("heads.concat_then_project",), _merge_without_transpose),
    Mutant("batch_mixing", "keys of the first batch item broadcast to the whole batch",
           ("heads.batched_equals_loop",), _batch_mixing),
    Mutant("gqa_modular_mapping", "a wrong GQA head mapping: h % G instead of h // (H/G)",
           ("heads.gqa_equals_repeated_mha",),
           replacing(grouped_query_attention=gqa_modular_mapping),
           "mutants.heads:gqa_modular_mapping", "grouped_query_attention", "heads.*"),
    Mutant("mha_scaled_by_d_model",
           "multi-head scores scaled by 1/sqrt(d_model), not 1/sqrt(d_head)",
           ("heads.concat_then_project",), replacing(multi_head_attention=mha_scaled_by_d_model),
           "mutants.heads:mha_scaled_by_d_model", "multi_head_attention",
           "heads.*,permutation.*"),
    Mutant("mha_heads_concatenated_backwards", "heads concatenated in the wrong order before W_O",
           ("heads.concat_then_project",),
           replacing(multi_head_attention=mha_heads_concatenated_backwards),
           "mutants.heads:mha_heads_concatenated_backwards", "multi_head_attention",
           "heads.*,permutation.*"),
    Mutant("gqa_drops_value_bias", "the value bias of the kv heads is dropped",
           ("heads.gqa_extremes",), _gqa_drops_value_bias),
    Mutant("kv_bytes_without_two", "KV-cache size counts keys but not values",
           ("heads.kv_cache_size",), _kv_bytes_without_two),
    Mutant("alibi_always_on", "a distance bias added to the logits even when none is asked for",
           ("heads.low_rank_logits",), _alibi_always_on),
]


def _diagonal_bias_weights(q, k, **kw):
    """A hard-wired attend-to-self bias: softmax(q k^T scale + I) for square weights."""
    lq, lk = np.asarray(q).shape[-2], np.asarray(k).shape[-2]
    bias = kw.pop("bias", None)
    eye = np.eye(lq, lk) if lq == lk else np.zeros((lq, lk))
    return naive_weights(q, k, bias=eye if bias is None else bias + eye, **kw)


MUTANTS.append(
    Mutant("attention_diagonal_bias", "weights softmax(q k^T / sqrt(d) + I): a hidden "
           "attend-to-self bias raises the rank of the centred log-weights",
           claims=("heads.low_rank_bottleneck_target",),
           build=lambda ref: ref.replace(attention_weights=_diagonal_bias_weights,
                                         attention=attention_from(_diagonal_bias_weights))))
