"""Mutants of the Dyck_{k,D} constructions.

Two kinds: a subject whose callable is broken (the construction is built with
it), and a deliberately broken construction selected through the test hook (the
construction mutation ``"dyck"``) that ``theory/claims/dyck.py`` passes to
``build_recognizer(..., _mutation=...)`` / ``build_generator``.
"""

from __future__ import annotations

import numpy as np

from transformer_theory.impl import attention as A
from transformer_theory.impl import layers as N

from . import Mutant, with_construction_mutation


def _hook(name: str):
    return lambda ref: with_construction_mutation(ref, "dyck", name)


def _attention_is_hard(ref):
    def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
        return A.hard_attention(q, k, v, mask=mask, causal=causal, scale=scale)
    return ref.replace(attention=attention)


def _unnormalised(ref):
    def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
        q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
        s = (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale) * q @ np.swapaxes(k, -1, -2)
        w = np.exp(s)                                                # no division by the row sum
        if mask is not None:
            w = w * np.asarray(mask)
        return w @ v
    return ref.replace(attention=attention)


def _mask_widened(ref):
    def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
        if mask is not None:
            m = np.asarray(mask)
            if m.ndim >= 2 and m.shape[-1] == m.shape[-2]:
                m = m | np.eye(m.shape[-1], dtype=bool)              # j > i becomes j >= i
            mask = m
        return A.attention(q, k, v, mask=mask, causal=causal, scale=scale, bias=bias)
    return ref.replace(attention=attention)


def _ffn_drops_first_bias(ref):
    def feed_forward(x, params, *, activation="relu"):
        return N.feed_forward(x, N.FFNParams(params.w1, None, params.w2, params.b2),
                              activation=activation)
    return ref.replace(feed_forward=feed_forward)


def _layer_norm_default_eps(ref):
    def layer_norm(x, gamma=None, beta=None, *, eps=1e-5):
        return N.layer_norm(x, gamma, beta, eps=1e-5)                # eps=0 ignored
    return ref.replace(layer_norm=layer_norm)


MUTANTS = [
    Mutant("dyck_no_type_check",
           "the matching FFN marks an opener/closer pair without comparing the types",
           ("dyck.recognizer_exact", "dyck.type_mismatch", "dyck.soft_recognizer"),
           _hook("no_type_check")),
    Mutant("dyck_non_strict_mask",
           "matching heads use j >= i / j <= i, so a token attends to itself",
           ("dyck.recognizer_exact", "dyck.depth_boundary"), _hook("non_strict_mask")),
    Mutant("dyck_one_layer_fewer", "D - 1 matching layers (off by one)",
           ("dyck.recognizer_exact", "dyck.depth_boundary"), _hook("one_layer_fewer")),
    Mutant("dyck_extra_layer", "one matching layer too many (range(D + 1))",
           ("dyck.recognizer_exact", "dyck.depth_boundary", "dyck.layers_necessary"),
           _hook("extra_layer")),
    Mutant("dyck_small_beta", "softmax scale ln(n + 2) instead of ~ n ln n",
           ("dyck.soft_recognizer",), _hook("small_beta")),
    Mutant("dyck_one_hot_codes", "bracket types coded one-hot (width linear in k)",
           ("dyck.width_logarithmic",), _hook("one_hot_codes")),
    Mutant("dyck_generator_earliest_opener",
           "layer 2 breaks ties towards the earliest opener of the current depth",
           ("dyck.generator_allowed_sets",), _hook("earliest_opener")),
    Mutant("dyck_attention_is_hard", "the 'soft' attention returns the argmax (no temperature)",
           ("dyck.small_beta_fails",), _attention_is_hard),
    Mutant("dyck_attention_unnormalised", "attention weights exp(q.k) not divided by their sum",
           ("dyck.hahn_sensitivity",), _unnormalised),
    Mutant("dyck_mask_widened", "the attention adds the diagonal to every square mask",
           ("dyck.soft_recognizer",), _mask_widened),
    Mutant("dyck_ffn_drops_first_bias", "the FFN ignores b1",
           ("dyck.recognizer_exact", "dyck.type_mismatch", "dyck.generator_allowed_sets"),
           _ffn_drops_first_bias),
    Mutant("dyck_layer_norm_default_eps", "layer_norm ignores eps=0 and uses 1e-5",
           ("dyck.generator_allowed_sets",), _layer_norm_default_eps),
]
