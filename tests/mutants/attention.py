"""Mutants of the attention definition and its softmax."""

from __future__ import annotations

import numpy as np
from ._build import attention_from, naive_weights

from transformer_theory.impl import attention as A

from . import Mutant


def _with_weights(ref, weights):
    return ref.replace(attention_weights=weights, attention=attention_from(weights))


def _missing_scale(ref):
    def weights(q, k, *, mask=None, causal=False, scale=None, bias=None):
        return naive_weights(q, k, mask=mask, causal=causal, scale=1.0 if scale is None else scale,
                             bias=bias)
    return _with_weights(ref, weights)


def _ignores_explicit_scale(ref):
    def weights(q, k, *, mask=None, causal=False, scale=None, bias=None):
        return naive_weights(q, k, mask=mask, causal=causal, scale=None, bias=bias)
    return _with_weights(ref, weights)


def _unnormalized(ref):
    def exp_only(s, axis=-1):
        m = np.max(np.where(np.isfinite(s), s, -np.inf), axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        return np.exp(s - m)

    def weights(q, k, **kw):
        return naive_weights(q, k, softmax=exp_only, **kw)
    return _with_weights(ref, weights)


def _softmax_plus_one(s, axis=-1):
    """'softmax1': exp(s) / (1 + sum exp(s)), an extra zero logit in the denominator."""
    s = np.asarray(s)
    m = np.maximum(np.max(s, axis=axis, keepdims=True), 0.0)
    e = np.exp(s - m)
    return e / (np.exp(-m) + e.sum(axis=axis, keepdims=True))


def _no_max_subtraction(s, axis=-1):
    e = np.exp(np.asarray(s))
    return e / e.sum(axis=axis, keepdims=True)


def _naive_softmax_subject(ref):
    def weights(q, k, **kw):
        return naive_weights(q, k, softmax=_no_max_subtraction, **kw)
    return ref.replace(softmax=_no_max_subtraction, attention_weights=weights,
                       attention=attention_from(weights))


def _nan_rows(ref):
    def masked_softmax(s, axis=-1):
        m = np.max(s, axis=axis, keepdims=True)                 # -inf on a fully masked row
        e = np.exp(s - m)
        return e / e.sum(axis=axis, keepdims=True)

    def weights(q, k, **kw):
        return naive_weights(q, k, softmax=masked_softmax, **kw)
    return _with_weights(ref, weights)


def _smoothed_softmax(s, axis=-1):
    p = A.softmax(s, axis=axis)
    n = np.asarray(s).shape[axis]
    return (1 - 1e-3) * p + 1e-3 / n


def _softmax_over_queries(ref):
    def weights(q, k, *, mask=None, causal=False, scale=None, bias=None):
        q, k = np.asarray(q), np.asarray(k)
        scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
        s = np.einsum("...qe,...ke->...qk", q, k) * scale
        return A.softmax(s, axis=-2).astype(q.dtype)           # wrong axis
    return _with_weights(ref, weights)


MUTANTS = [
    Mutant("missing_scale", "scores not divided by sqrt(d_k) when no scale is given",
           ("attention.scaled_dot_product", "attention.unit_logit_variance"), _missing_scale),
    Mutant("ignores_explicit_scale", "the scale argument is accepted but ignored",
           ("attention.explicit_scale",), _ignores_explicit_scale),
    Mutant("unnormalized_weights", "exp of the scores without dividing by their sum",
           ("attention.rows_are_distributions", "attention.convex_hull"), _unnormalized),
    Mutant("softmax_plus_one", "softmax with an implicit extra zero logit ('softmax1')",
           ("attention.softmax_shift_invariance",),
           lambda ref: ref.replace(softmax=_softmax_plus_one)),
    Mutant("no_max_subtraction", "softmax as exp(s)/sum exp(s) without subtracting the max",
           ("attention.extreme_logits_finite",), _naive_softmax_subject),
    Mutant("nan_on_fully_masked", "a fully masked row computes exp(-inf - -inf) = NaN",
           ("attention.fully_masked_row_zero",), _nan_rows),
    Mutant("smoothed_softmax", "softmax mixed with 0.1% of the uniform distribution",
           ("attention.temperature_limit",), lambda ref: ref.replace(softmax=_smoothed_softmax)),
    Mutant("softmax_over_queries", "softmax taken over the query axis instead of the keys",
           ("attention.dictionary_lookup", "attention.scaled_dot_product"), _softmax_over_queries),
]
