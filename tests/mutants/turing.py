"""Mutants of the Turing-machine construction: a too-soft attention, and two broken weight
builders (the subject's ``build_turing_transformer``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from transformer_theory.impl.constructions import turing as TM

from . import Mutant
from ._build import attention_dropping


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


def build_without_rebinarising(machine, n_cells):
    """The transition FFN built from plain ReLU ANDs without step units."""
    return TM.build_turing_transformer(machine, n_cells, rebinarise=False)


def build_with_neighbours_swapped(machine, n_cells):
    """The left and right neighbour heads' queries swapped: the head moves the wrong way."""
    model = TM.build_turing_transformer(machine, n_cells)
    read, left, right = model.heads
    heads = (read, replace(left, w_q=right.w_q), replace(right, w_q=left.w_q))
    swapped = replace(model, heads=heads, stacked=())
    return replace(swapped, stacked=TM.stacked_heads(swapped))


MUTANTS = [
    Mutant("turing_attention_ignores_scale",
           "attention accepts scale= but uses 1/sqrt(d): the construction's beta never arrives",
           ("turing.simulation",), attention_dropping("scale")),
    Mutant("turing_no_rebinarise",
           "transition FFN built from plain ReLU ANDs without step units: softmax errors accumulate",
           ("turing.simulation",),
           lambda ref: ref.replace(build_turing_transformer=build_without_rebinarising)),
    Mutant("turing_swap_neighbours",
           "left and right neighbour heads swapped: the head moves the wrong way",
           ("turing.simulation",),
           lambda ref: ref.replace(build_turing_transformer=build_with_neighbours_swapped)),
    Mutant("attention_is_hardmax",
           "'softmax' attention implemented as an argmax, whatever the temperature",
           ("turing.small_beta_fails", "parity.confidence_fades_without_layernorm"), _hardmax),
]
