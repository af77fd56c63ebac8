"""Mutants of convolution-as-attention: an attention that drops the relative-position bias or
silently restricts itself to a local window, and a misplaced kernel anchor in the construction."""

from __future__ import annotations

import numpy as np

from transformer_theory.impl import attention as A

from . import Mutant, with_construction_mutation


def _ignores_bias(ref):
    def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
        return A.attention(q, k, v, mask=mask, causal=causal, scale=scale)   # bias dropped
    return ref.replace(attention=attention)


def _local_window(ref):
    def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
        lq, lk = np.shape(q)[-2], np.shape(k)[-2]
        local = A.sliding_window_mask(lq, lk, 5, causal=False)               # |i - j| < 5 only
        mask = local if mask is None else (np.asarray(mask) & local)
        return A.attention(q, k, v, mask=mask, causal=causal, scale=scale, bias=bias)
    return ref.replace(attention=attention)


MUTANTS = [
    Mutant("attention_ignores_bias", "the additive logit bias is accepted but not added",
           ("convolution.conv1d_interior", "convolution.conv2d_interior",
            "convolution.zero_padding_exact", "convolution.receptive_field"), _ignores_bias),
    Mutant("attention_local_window", "attention silently restricted to a window |i - j| < 5",
           ("convolution.receptive_field",), _local_window),
    Mutant("conv_anchor_off_by_one", "kernel offsets anchored one position too far (k - a - 1)",
           ("convolution.conv1d_interior", "convolution.conv2d_interior",
            "convolution.zero_padding_exact"),
           lambda ref: with_construction_mutation(ref, "convolution", "anchor_off_by_one")),
]
