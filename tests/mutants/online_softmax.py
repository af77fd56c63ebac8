"""Mutants of the online-softmax claims: attention bugs in the subject, and bugs inside the
blockwise algorithms reached through their ``_mutation`` hooks."""

from __future__ import annotations

import numpy as np

from transformer_theory.impl import attention as A

from . import Mutant, with_construction_mutation
from ._build import attention_from, naive_weights


def _missing_scale(ref):
    def weights(q, k, *, mask=None, causal=False, scale=None, bias=None):
        return naive_weights(q, k, mask=mask, causal=causal, scale=1.0 if scale is None else scale,
                             bias=bias)
    return ref.replace(attention=attention_from(weights))


def _nan_on_fully_masked(ref):
    def masked_softmax(s, axis=-1):
        m = np.max(s, axis=axis, keepdims=True)                 # -inf on a fully masked row
        e = np.exp(s - m)
        return e / e.sum(axis=axis, keepdims=True)

    def weights(q, k, **kw):
        return naive_weights(q, k, softmax=masked_softmax, **kw)
    return ref.replace(attention=attention_from(weights))


def _ignores_mask(ref):
    def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
        return A.attention(q, k, v, causal=causal, scale=scale, bias=bias)   # mask dropped
    return ref.replace(attention=attention)


def _hook(key, mutation):
    return lambda ref: with_construction_mutation(ref, key, mutation)


MUTANTS = [
    Mutant("online_attention_missing_scale", "scores not divided by sqrt(d) in the subject",
           ("online_softmax.any_split_any_order",), _missing_scale),
    Mutant("merge_no_rescale", "block statistics added without rescaling to the common maximum",
           ("online_softmax.any_split_any_order",), _hook("online_merge", "no_rescale")),
    Mutant("merge_left_biased", "the merged maximum is the left operand's, not max(m_a, m_b)",
           ("online_softmax.merge_monoid",), _hook("online_merge", "left_biased")),
    Mutant("merge_unguarded", "two empty states merged as exp(-inf - -inf) = NaN",
           ("online_softmax.fully_masked_blocks", "online_softmax.merge_monoid"),
           _hook("online_merge", "unguarded")),
    Mutant("attention_nan_on_fully_masked_row", "the subject returns NaN for a fully masked row",
           ("online_softmax.fully_masked_blocks",), _nan_on_fully_masked),
    Mutant("flash_full_scores", "the tiled loop slices a full L x L score matrix computed first",
           ("online_softmax.memory_o_block",), _hook("flash_attention", "full_scores")),
    Mutant("flash_kv_blocks_fill_sram", "B_c = M / 2d: the K and V tiles alone fill the SRAM",
           ("online_softmax.io_complexity",), _hook("flash_io_count", "kv_blocks_fill_sram")),
    Mutant("attention_ignores_mask", "the boolean mask is accepted but not applied",
           ("online_softmax.sparse_equals_masked_dense",), _ignores_mask),
    Mutant("sparse_dense_then_mask", "sparse attention computes all L^2 scores and masks them",
           ("online_softmax.sparse_cost_linear",), _hook("sparse", "dense_then_mask")),
]
