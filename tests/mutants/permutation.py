"""Mutants that smuggle position into models that should not see it."""

from __future__ import annotations

import numpy as np

from transformer_theory.impl import attention as A
from transformer_theory.impl import positional as P
from transformer_theory.impl import transformer as T

from . import Mutant


def _causal_by_default(ref):
    def attention(q, k, v, *, causal=False, **kw):
        return A.attention(q, k, v, causal=causal or True, **kw)
    return ref.replace(attention=attention)


def _with_pe(x):
    x = np.asarray(x)
    return x + P.sinusoidal_encoding(x.shape[-2], x.shape[-1]).astype(x.dtype)


def _mha_internal_pe(ref):
    def mha(x_q, x_kv, p, **kw):
        return A.multi_head_attention(_with_pe(x_q), _with_pe(x_kv), p, **kw)
    return ref.replace(multi_head_attention=mha)


def _encoder_internal_pe(ref):
    def encoder(x, params, **kw):
        return T.encoder(_with_pe(x), params, **kw)
    return ref.replace(encoder=encoder)


def _cross_attention_causal(ref):
    def cross(x, memory, p, *, memory_mask=None):
        mask = None if memory_mask is None else np.asarray(memory_mask)[..., None, :]
        return A.multi_head_attention(x, memory, p, mask=mask, causal="bottom-right")
    return ref.replace(cross_attention=cross)


def _last_token_pooling(ref):
    def classify(x, params, *, mask=None):
        h = T.encoder(x, params.encoder)
        return h[..., -1, :] @ params.w + params.b
    return ref.replace(classify=classify)


def _position_blind(ref):
    def sinusoidal(n, d, **kw):
        pe = P.sinusoidal_encoding(n, d, **kw)
        return np.broadcast_to(pe[:1], pe.shape).copy()         # every row is position 0
    def one_hot(n, d, **kw):
        pe = P.one_hot_encoding(n, d, **kw)
        return np.broadcast_to(pe[:1], pe.shape).copy()
    return ref.replace(sinusoidal_encoding=sinusoidal, one_hot_encoding=one_hot)


MUTANTS = [
    Mutant("attention_causal_by_default", "causal masking applied although causal=False",
           ("permutation.attention_equivariance",), _causal_by_default),
    Mutant("mha_internal_positional", "multi-head attention adds a positional encoding itself",
           ("permutation.mha_equivariance",), _mha_internal_pe),
    Mutant("encoder_internal_positional", "the encoder adds a positional encoding itself",
           ("permutation.encoder_equivariance",), _encoder_internal_pe),
    Mutant("cross_attention_causal", "decoder-side causal mask applied to the encoder memory",
           ("permutation.cross_attention_invariance",), _cross_attention_causal),
    Mutant("last_token_pooling", "pooling reads the last position instead of the mean",
           ("permutation.pooled_classifier_invariance",), _last_token_pooling),
    Mutant("position_blind_encoding", "the encoding table repeats row 0 for every position",
           ("permutation.positional_breaks_equivariance",), _position_blind),
]
