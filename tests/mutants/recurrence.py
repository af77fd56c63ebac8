"""Mutants of the recurrence claims: an attention that ignores the causal flag, and bugs inside
the reference constructions reached through their ``_mutation`` hooks."""

from __future__ import annotations

from transformer_theory.impl import attention as A

from . import Mutant, with_construction_mutation


def _ignores_causal(ref):
    def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
        return A.attention(q, k, v, mask=mask, scale=scale, bias=bias)   # causal dropped
    return ref.replace(attention=attention)


MUTANTS = [
    Mutant("attention_ignores_causal", "causal=True accepted but not applied",
           ("recurrence.linear_attention_rnn",), _ignores_causal),
    Mutant("linear_rnn_read_before_write",
           "the RNN reads its state before adding position i (output i sees only j < i)",
           ("recurrence.linear_attention_rnn",),
           lambda ref: with_construction_mutation(ref, "linear_attention", "read_before_write")),
    Mutant("sequential_softmax_row",
           "each softmax row accumulated by a left-to-right scan over the keys",
           ("recurrence.critical_path",),
           lambda ref: with_construction_mutation(ref, "encoder_graph", "sequential_softmax")),
    Mutant("bptt_elementwise_product",
           "back-propagation through time multiplies Jacobians elementwise (W * J, not W @ J)",
           ("recurrence.gradient_spectral_radius",),
           lambda ref: with_construction_mutation(ref, "rnn_jacobian", "elementwise_product")),
]
