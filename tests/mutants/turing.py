"""Mutants of the Turing-machine construction: a too-soft attention, and two bugs inside
the construction reached through its documented ``_mutation`` hook."""

from __future__ import annotations

import numpy as np

from transformer_theory.impl import attention as A

from . import Mutant, with_construction_mutation


def _ignores_scale(ref):
    def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
        return A.attention(q, k, v, mask=mask, causal=causal, bias=bias)   # scale dropped
    return ref.replace(attention=attention)


def _hardmax(ref):
    def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
        s = np.asarray(q) @ np.swapaxes(np.asarray(k), -1, -2)
        if bias is not None:
            s = s + bias
        if mask is not None:
            s = np.where(mask, s, -np.inf)
        w = (s == s.max(axis=-1, keepdims=True)).astype(np.asarray(v).dtype)
        w /= w.sum(axis=-1, keepdims=True)
        return w @ np.asarray(v)
    return ref.replace(attention=attention)


MUTANTS = [
    Mutant("turing_attention_ignores_scale",
           "attention accepts scale= but uses 1/sqrt(d): the construction's beta never arrives",
           ("turing.simulation",), _ignores_scale),
    Mutant("turing_no_rebinarise",
           "transition FFN built from plain ReLU ANDs without step units: softmax errors accumulate",
           ("turing.simulation",),
           lambda ref: with_construction_mutation(ref, "turing", "no_rebinarise")),
    Mutant("turing_swap_neighbours",
           "left and right neighbour heads swapped: the head moves the wrong way",
           ("turing.simulation",),
           lambda ref: with_construction_mutation(ref, "turing", "swap_neighbours")),
    Mutant("attention_is_hardmax",
           "'softmax' attention implemented as an argmax, whatever the temperature",
           ("turing.small_beta_fails",), _hardmax),
]
