"""Mutants of Chiang & Cholak's PARITY and FIRST transformers: broken weight builders (the
subject's ``build_parity_transformer``) and a layer norm that drops ``eps``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from transformer_theory.impl import attention as A
from transformer_theory.impl import layers as L
from transformer_theory.impl.constructions import parity as PT

from . import Mutant


def _with_ffn(model, layer: int, edit):
    """``model`` with ``edit(w1, w2, layout)`` applied to copies of one layer's FFN weights."""
    target = model.layers[layer]
    ffn = target.ffns[0]
    w1, w2 = ffn.w1.copy(), ffn.w2.copy()
    edit(w1, w2, model.layout)
    layers = list(model.layers)
    layers[layer] = replace(target, ffns=(replace(ffn, w1=w1, w2=w2),) + target.ffns[1:])
    return replace(model, layers=tuple(layers))


def build_bump_off_by_one(language="parity", *, layer_norm=False, beta=1.0, eps=0.0):
    """PARITY's bump centred on position k + 1: relu((k-i)/N) - 2 relu((k-i+1)/N) + ...

    Every unit reads ``1/N`` once more, so the mark lands one position late and
    the second layer reads the parity of ``k + 1``.
    """
    model = PT.build_parity_transformer(language, layer_norm=layer_norm, beta=beta, eps=eps)
    if language != "parity":
        return model

    def edit(w1, w2, lay):
        w1[lay.index("inv")] += 1.0
    return _with_ffn(model, 0, edit)


def build_first_value_uncentred(language="parity", *, layer_norm=False, beta=1.0, eps=0.0):
    """FIRST's value reads the bit without subtracting 1/2 at position 1: never negative."""
    model = PT.build_parity_transformer(language, layer_norm=layer_norm, beta=beta, eps=eps)
    if language != "first":
        return model
    layer = model.layers[1]
    head = layer.heads[0]
    w_v = head.w_v.copy()
    w_v[model.layout.index("first")] = 0.0
    layers = (model.layers[0], replace(layer, heads=(replace(head, w_v=w_v),)))
    return replace(model, layers=layers)


def build_not_doubled(language="parity", *, layer_norm=False, beta=1.0, eps=0.0):
    """The LayerNorm variant on the plain stream x instead of [x, -x]: LayerNorm's centring
    now mixes every coordinate into the output."""
    if not layer_norm:
        return PT.build_parity_transformer(language, beta=beta)
    full = PT.build_parity_transformer(language, layer_norm=True, beta=beta, eps=eps)
    w = full.layout.width                                          # the undoubled width
    layers = []
    for layer in full.layers:
        heads = tuple(replace(h, w_q=h.w_q[:w], w_k=h.w_k[:w], w_v=h.w_v[:w], w_o=h.w_o[:, :w])
                      for h in layer.heads)
        ffns = tuple(replace(f, w1=f.w1[:w], w2=f.w2[:, :w],
                             b2=None if f.b2 is None else f.b2[:w]) for f in layer.ffns)
        layers.append(replace(layer, heads=heads, ffns=ffns))
    return replace(full, layers=tuple(layers), doubled=False)


def layer_norm_fixed_eps(x, gamma=None, beta=None, *, eps=1e-5):
    """LayerNorm that accepts ``eps`` and always uses 1e-5 (a hard-coded epsilon)."""
    return L.layer_norm(x, gamma, beta, eps=1e-5)


def _builder(build):
    return lambda ref: ref.replace(build_parity_transformer=build)


MUTANTS = [
    Mutant("parity_bump_off_by_one",
           "PARITY's position mark lands on k + 1: the parity of k + 1 is read",
           ("parity.recognizers_exact", "parity.confidence_fades_without_layernorm",
            "parity.layernorm_restores_confidence"),
           _builder(build_bump_off_by_one)),
    Mutant("first_value_uncentred",
           "FIRST's value is the bit, not the bit minus 1/2: every string is accepted",
           ("parity.recognizers_exact", "parity.confidence_fades_without_layernorm"),
           _builder(build_first_value_uncentred)),
    Mutant("parity_layernorm_not_doubled",
           "the LayerNorm variant without the doubled stream [x, -x]",
           ("parity.layernorm_restores_confidence",),
           _builder(build_not_doubled)),
    Mutant("layer_norm_ignores_eps",
           "layer norm accepts eps= but always uses 1e-5: eps = 0 never arrives",
           ("parity.layernorm_restores_confidence",),
           lambda ref: ref.replace(layer_norm=layer_norm_fixed_eps)),
]


def hard_attention_is_softmax(q, k, v, *, mask=None, causal=False, scale=None):
    """'Hard' attention that is the softmax at temperature 1."""
    return A.attention(q, k, v, mask=mask, causal=causal, scale=scale)


def hard_attention_argmin(q, k, v, *, mask=None, causal=False, scale=None):
    """Hard attention to the key of *smallest* score (a sign slip in the scores)."""
    return A.hard_attention(-np.asarray(q), k, v, mask=mask, causal=causal, scale=scale)


MUTANTS += [
    Mutant("hard_attention_is_softmax",
           "the hard attention is a softmax at temperature 1: the free bits get through",
           ("parity.hard_attention_restriction",),
           lambda ref: ref.replace(hard_attention=hard_attention_is_softmax)),
    Mutant("hard_attention_argmin",
           "hard attention to the smallest score (the scores' sign slipped)",
           ("parity.hard_attention_restriction",),
           lambda ref: ref.replace(hard_attention=hard_attention_argmin)),
]
