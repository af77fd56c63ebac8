"""Mutants of multi-head, grouped-query attention and the KV cache."""

from __future__ import annotations

import numpy as np
from ._build import attention_from, naive_weights

from transformer_theory.impl import attention as A

from . import Mutant


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


def _interleaved(p):
    h, g = p.n_heads, p.n_kv_heads
    idx = np.arange(h) % g                                        # the bug: h % G
    return A.MultiHeadParams(w_q=p.w_q, b_q=p.b_q, w_o=p.w_o, b_o=p.b_o,
                             w_k=p.w_k[idx], b_k=p.b_k[idx], w_v=p.w_v[idx], b_v=p.b_v[idx])


def _gqa_interleaved(ref):
    def gqa(x_q, x_kv, p, **kw):
        return A.multi_head_attention(x_q, x_kv, _interleaved(p), **kw)
    return ref.replace(grouped_query_attention=gqa)


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


MUTANTS = [
    Mutant("heads_merged_without_transpose",
           "(B, H, L, Dv) reshaped to (B, L, H*Dv) without moving the head axis first",
           ("heads.concat_then_project",), _merge_without_transpose),
    Mutant("batch_mixing", "keys of the first batch item broadcast to the whole batch",
           ("heads.batched_equals_loop",), _batch_mixing),
    Mutant("gqa_interleaved_mapping", "query head h reads kv group h % G instead of h // (H/G)",
           ("heads.gqa_equals_repeated_mha",), _gqa_interleaved),
    Mutant("gqa_drops_value_bias", "the value bias of the kv heads is dropped",
           ("heads.gqa_extremes",), _gqa_drops_value_bias),
    Mutant("kv_bytes_without_two", "KV-cache size counts keys but not values",
           ("heads.kv_cache_size",), _kv_bytes_without_two),
    Mutant("alibi_always_on", "a distance bias added to the logits even when none is asked for",
           ("heads.low_rank_logits",), _alibi_always_on),
]
