"""Mutants of the Dyck_{k,D} constructions.

Two kinds: a subject whose attention, feed-forward or layer-norm callable is
broken (the construction runs on it), and a subject whose weight builder
(``build_dyck_recognizer`` / ``build_dyck_generator``) builds a broken network:
the reference builder with a dishonest parameter, or its weights altered.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from transformer_theory.impl import attention as A
from transformer_theory.impl import layers as N
from transformer_theory.impl.constructions import dyck as DY

from . import Mutant


def recognizer_without_type_check(k, D, attention="hard", n_max=None, **kw):
    """The matching FFNs pair an opener with a closer of any type."""
    return DY.build_recognizer(k, D, attention, n_max, **{**kw, "type_check": False})


def recognizer_non_strict_masks(k, D, attention="hard", n_max=None, **kw):
    """The matching heads use ``j >= i`` / ``j <= i``: a token attends to itself."""
    return DY.build_recognizer(k, D, attention, n_max, **{**kw, "strict_masks": False})


def recognizer_small_beta(k, D, attention="hard", n_max=None, **kw):
    """Softmax scale ``ln(n + 2)`` = O(log n) instead of ~ n ln n."""
    return DY.build_recognizer(k, D, attention, n_max,
                               **{**kw, "beta": lambda n: math.log(n + 2.0)})


def recognizer_one_hot_codes(k, D, attention="hard", n_max=None, **kw):
    """Bracket types coded one-hot: width linear in k."""
    return DY.build_recognizer(k, D, attention, n_max, **{**kw, "codes": "one_hot"})


def recognizer_one_layer_fewer(k, D, attention="hard", n_max=None, *, matching_layers=None,
                               **kw):
    """One matching layer fewer than asked for (D - 1 by default)."""
    n = D if matching_layers is None else matching_layers
    return DY.build_recognizer(k, D, attention, n_max, matching_layers=max(n - 1, 0), **kw)


def recognizer_extra_layer(k, D, attention="hard", n_max=None, *, matching_layers=None, **kw):
    """One matching layer more than asked for (D + 1 by default)."""
    n = D if matching_layers is None else matching_layers
    return DY.build_recognizer(k, D, attention, n_max, matching_layers=n + 1, **kw)


def generator_earliest_opener(k, D, attention="hard", n_max=None, **kw):
    """Layer 2's recency weight epsilon negated: ties go to the earliest opener of a depth."""
    gen = DY.build_generator(k, D, attention, n_max, **kw)
    layer1, layer2 = gen.layers
    [head] = layer2.heads
    w_k = head.w_k.copy()                                            # (W, 3)
    w_k[gen.layout.index("pos"), 2] *= -1.0                          # + epsilon p_j -> - epsilon p_j
    return replace(gen, layers=[layer1, replace(layer2, heads=(replace(head, w_k=w_k),))])


def _recognizer(build):
    return lambda ref: ref.replace(build_dyck_recognizer=build)


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
           _recognizer(recognizer_without_type_check)),
    Mutant("dyck_non_strict_mask",
           "matching heads use j >= i / j <= i, so a token attends to itself",
           ("dyck.recognizer_exact", "dyck.depth_boundary"),
           _recognizer(recognizer_non_strict_masks)),
    Mutant("dyck_one_layer_fewer", "D - 1 matching layers (off by one)",
           ("dyck.recognizer_exact", "dyck.depth_boundary"),
           _recognizer(recognizer_one_layer_fewer)),
    Mutant("dyck_extra_layer", "one matching layer too many (range(D + 1))",
           ("dyck.recognizer_exact", "dyck.depth_boundary", "dyck.layers_necessary"),
           _recognizer(recognizer_extra_layer)),
    Mutant("dyck_small_beta", "softmax scale ln(n + 2) instead of ~ n ln n",
           ("dyck.soft_recognizer",), _recognizer(recognizer_small_beta)),
    Mutant("dyck_one_hot_codes", "bracket types coded one-hot (width linear in k)",
           ("dyck.width_logarithmic",), _recognizer(recognizer_one_hot_codes)),
    Mutant("dyck_generator_earliest_opener",
           "layer 2 breaks ties towards the earliest opener of the current depth",
           ("dyck.generator_allowed_sets",),
           lambda ref: ref.replace(build_dyck_generator=generator_earliest_opener)),
    Mutant("dyck_attention_is_hard", "the 'soft' attention returns the argmax (no temperature)",
           ("dyck.small_beta_fails", "dyck.hahn_sensitivity_depth"), _attention_is_hard),
    Mutant("dyck_attention_unnormalised", "attention weights exp(q.k) not divided by their sum",
           ("dyck.hahn_sensitivity", "dyck.hahn_sensitivity_depth"), _unnormalised),
    Mutant("dyck_mask_widened", "the attention adds the diagonal to every square mask",
           ("dyck.soft_recognizer",), _mask_widened),
    Mutant("dyck_ffn_drops_first_bias", "the FFN ignores b1",
           ("dyck.recognizer_exact", "dyck.type_mismatch", "dyck.generator_allowed_sets"),
           _ffn_drops_first_bias),
    Mutant("dyck_layer_norm_default_eps", "layer_norm ignores eps=0 and uses 1e-5",
           ("dyck.generator_allowed_sets",), _layer_norm_default_eps),
]
