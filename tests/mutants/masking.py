"""Mutants of masking and incremental decoding."""

from __future__ import annotations

import numpy as np
from ._build import attention_from, naive_weights

from transformer_theory.impl import attention as A
from transformer_theory.impl import transformer as T

from . import Mutant


def _off_by_one(ref):
    def weights(q, k, **kw):
        return naive_weights(q, k, causal_offset=1, **kw)      # query i also sees key i + 1
    return ref.replace(attention_weights=weights, attention=attention_from(weights))


def _bottom_right_as_top_left(ref):
    def attention(q, k, v, *, causal=False, **kw):
        return A.attention(q, k, v, causal=bool(causal), **kw)
    return ref.replace(attention=attention)


def _padding_values_only(ref):
    def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
        v = np.asarray(v)
        if mask is not None:
            m = np.asarray(mask)
            if m.shape[-2] == 1:                                   # key-padding mask
                v = v * np.swapaxes(m, -1, -2)                     # zero padded values only
                mask = None
        return A.attention(q, k, v, mask=mask, causal=causal, scale=scale, bias=bias)
    return ref.replace(attention=attention)


def _post_softmax_product(ref):
    def weights(q, k, *, mask=None, **kw):
        w = A.attention_weights(q, k, **kw)
        return w * mask if mask is not None else w                # seed 000 read literally
    return ref.replace(attention_weights=weights)


def _cache_drops_newest(ref):
    def decode_step(x_t, params, cache):
        _, new_cache = A.decode_step(x_t, params, cache)
        t = new_cache.length                                       # includes the new token
        q = A._project(np.asarray(x_t), params.w_q, params.b_q)   # (..., H, 1, Dh)
        visible = np.arange(t) < t - 1                             # the bug: newest key dropped
        o = A.attention(q, new_cache.k[..., :t, :], new_cache.v[..., :t, :],
                        mask=visible[None, :])                     # (..., H, 1, Dv)
        return A._merge_heads(o, params.w_o, params.b_o), new_cache
    return ref.replace(decode_step=decode_step)


def _encoder_ignores_causal(ref):
    def encoder(x, params, *, mask=None, causal=False):
        return T.encoder(x, params, mask=mask)
    return ref.replace(encoder=encoder)


def _cache_reset_each_step(ref):
    def incremental(src, tgt, params):
        tgt = np.asarray(tgt)
        steps = [T.seq2seq_logits(src, tgt[:, t:t + 1], params) for t in range(tgt.shape[1])]
        return np.concatenate(steps, axis=1)
    return ref.replace(seq2seq_logits_incremental=incremental)


MUTANTS = [
    Mutant("causal_off_by_one", "causal mask j <= i + 1 (tril with k=1)",
           ("masking.causal_future_invariance", "masking.causal_alignment"), _off_by_one),
    Mutant("bottom_right_as_top_left", "causal='bottom-right' silently treated as top-left",
           ("masking.causal_alignment",), _bottom_right_as_top_left),
    Mutant("padding_values_only", "key padding zeroes the values but leaves keys in the softmax",
           ("masking.masked_keys_ignored",), _padding_values_only),
    Mutant("post_softmax_product", "mask multiplied into the softmax output, not renormalised",
           ("masking.post_softmax_renormalized", "masking.post_softmax_unrenormalized"),
           _post_softmax_product),
    Mutant("cache_drops_newest", "decode step attends to the cache but not to its own new key",
           ("masking.kv_cache_equals_full",), _cache_drops_newest),
    Mutant("encoder_ignores_causal", "the causal flag is not passed down to the attention layers",
           ("masking.causal_prefix_consistency",), _encoder_ignores_causal),
    Mutant("decoder_cache_reset", "incremental decoding forgets previous target tokens",
           ("masking.teacher_forcing_equals_incremental",), _cache_reset_each_step),
]
