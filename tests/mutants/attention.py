"""Mutants of the attention definition and its softmax.

The stand-alone kernels below (``missing_scale`` ... ``softmax_no_max_subtraction``)
follow the contract ``attention(q, k, v, *, mask=None, causal=False, scale=None)``
except for one bug, named by the function; they are also loaded by target
(``mutants.attention:missing_scale --as attention``) and run through ``check``.
"""

from __future__ import annotations

import numpy as np
from ._build import allowed as _allowed
from ._build import attend as _attend
from ._build import attention_from, naive_weights
from ._build import softmax_rows as _softmax_rows

from transformer_theory.impl import attention as A

from . import Mutant, replacing

_ATTENTION = "attention.*,masking.*"


def _with_weights(ref, weights):
    return ref.replace(attention_weights=weights, attention=attention_from(weights))






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






def _smoothed_softmax(s, axis=-1):
    p = A.softmax(s, axis=axis)
    n = np.asarray(s).shape[axis]
    return (1 - 1e-3) * p + 1e-3 / n





# --------------------------------------------------------------------------
# stand-alone broken kernels (also loaded by target)
# --------------------------------------------------------------------------

def missing_scale(q, k, v, *, mask=None, causal=False, scale=None):
    """Scores never divided by sqrt(d) (the default scale forgotten)."""
    q, k = np.asarray(q), np.asarray(k)
    return _attend(q, k, v, _allowed(q, k, mask, causal), 1.0 if scale is None else scale)


def _missing_scale_weights(q, k, *, mask=None, causal=False, scale=None, bias=None):
    """The weights of :func:`missing_scale` (the same bug in ``attention_weights``)."""
    return naive_weights(q, k, mask=mask, causal=causal, scale=1.0 if scale is None else scale,
                         bias=bias)


def scale_by_d(q, k, v, *, mask=None, causal=False, scale=None):
    """Scores divided by d instead of sqrt(d)."""
    q, k = np.asarray(q), np.asarray(k)
    s = 1.0 / q.shape[-1] if scale is None else scale
    return _attend(q, k, v, _allowed(q, k, mask, causal), s)


def scale_ignored(q, k, v, *, mask=None, causal=False, scale=None):
    """The scale argument is accepted and ignored (always 1/sqrt(d))."""
    q, k = np.asarray(q), np.asarray(k)
    return _attend(q, k, v, _allowed(q, k, mask, causal), 1.0 / np.sqrt(q.shape[-1]))


def softmax_over_queries(q, k, v, *, mask=None, causal=False, scale=None):
    """softmax(..., dim=-2): normalised over the queries instead of the keys."""
    q, k, v = (np.asarray(a) for a in (q, k, v))
    s = (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale) * (q @ np.swapaxes(k, -1, -2))
    s = np.where(_allowed(q, k, mask, causal), s, -np.inf)
    p = np.swapaxes(_softmax_rows(np.swapaxes(s, -1, -2)), -1, -2)
    return (p @ v).astype(q.dtype)


def nan_on_fully_masked_row(q, k, v, *, mask=None, causal=False, scale=None):
    """masked_fill(-inf) then softmax: a fully masked row is exp(-inf - -inf) = NaN."""
    q, k, v = (np.asarray(a) for a in (q, k, v))
    s = (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale) * (q @ np.swapaxes(k, -1, -2))
    s = np.where(_allowed(q, k, mask, causal), s, -np.inf)
    with np.errstate(invalid="ignore"):
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True) @ v).astype(q.dtype)


def additive_mask_minus_1e4(q, k, v, *, mask=None, causal=False, scale=None):
    """Masking by adding -10000 (the BERT-era constant): a fully masked row becomes uniform."""
    q, k, v = (np.asarray(a) for a in (q, k, v))
    s = (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale) * (q @ np.swapaxes(k, -1, -2))
    s = s + np.where(_allowed(q, k, mask, causal), 0.0, -1e4)
    return (_softmax_rows(s) @ v).astype(q.dtype)


def no_max_subtraction(q, k, v, *, mask=None, causal=False, scale=None):
    """exp(s) / sum exp(s) without subtracting the row max: overflows for large logits."""
    q, k, v = (np.asarray(a) for a in (q, k, v))
    s = (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale) * (q @ np.swapaxes(k, -1, -2))
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.where(_allowed(q, k, mask, causal), np.exp(s), 0.0)
        z = e.sum(axis=-1, keepdims=True)
        p = np.divide(e, z, out=np.zeros_like(e), where=z > 0)
    return (p @ v).astype(q.dtype)


def float32_accumulation(q, k, v, *, mask=None, causal=False, scale=None):
    """Everything computed in float32 (a hard-coded .float()), also for float64 inputs."""
    q, k, v = (np.asarray(a) for a in (q, k, v))
    s = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    out = _attend(q.astype(np.float32), k.astype(np.float32), v.astype(np.float32),
                  _allowed(q, k, mask, causal), np.float32(s))
    return out.astype(np.result_type(q, k, v))


_DROPOUT = np.random.default_rng()


def dropout_at_inference(q, k, v, *, mask=None, causal=False, scale=None):
    """Attention dropout (p = 0.1) left on outside training."""
    q, k, v = (np.asarray(a) for a in (q, k, v))
    s = (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale) * (q @ np.swapaxes(k, -1, -2))
    p = _softmax_rows(np.where(_allowed(q, k, mask, causal), s, -np.inf))
    keep = _DROPOUT.random(p.shape) >= 0.1
    return ((p * keep / 0.9) @ v).astype(q.dtype)


def softmax_no_max_subtraction(x, axis=-1):
    """exp(x) / sum exp(x): inf / inf = NaN once a logit passes ~88 in float32."""
    x = np.asarray(x)
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(x)
        return e / e.sum(axis=axis, keepdims=True)

def _softcapped(bug: str):
    """Attention and weights with logit soft-capping done wrong in one way (``bug``)."""
    def weights(q, k, *, mask=None, causal=False, scale=None, bias=None, softcap=None):
        q64, k64 = np.asarray(q, np.float64), np.asarray(k, np.float64)
        sc = 1.0 / np.sqrt(q64.shape[-1]) if scale is None else scale
        s = sc * (q64 @ np.swapaxes(k64, -1, -2))                        # (..., Lq, Lk)
        b = 0.0 if bias is None else np.asarray(bias, np.float64)
        ok = _allowed(q64, k64, mask, causal)
        if softcap is None or bug == "ignored":
            s = np.where(ok, s + b, -np.inf)
        elif bug == "after_mask":        # the masked -inf becomes -c: masked keys get weight
            s = softcap * np.tanh(np.where(ok, s + b, -np.inf) / softcap)
        elif bug == "bias_capped":       # the bias inside the cap
            s = np.where(ok, softcap * np.tanh((s + b) / softcap), -np.inf)
        elif bug == "no_inner_division":  # c tanh(s) instead of c tanh(s / c)
            s = np.where(ok, softcap * np.tanh(s) + b, -np.inf)
        return _softmax_rows(s).astype(np.asarray(q).dtype)

    def attention(q, k, v, *, softcap=None, **kw):
        w = weights(q, k, softcap=softcap, **kw)
        return (w.astype(np.float64) @ np.asarray(v, np.float64)).astype(np.asarray(q).dtype)
    return replacing(attention=attention, attention_weights=weights)


MUTANTS = [
    Mutant("softcap_after_masking", "tanh cap applied after the mask: masked keys get weight",
           ("attention.softcap_definition",), _softcapped("after_mask")),
    Mutant("softcap_ignored", "the softcap keyword accepted and ignored",
           ("attention.softcap_definition", "attention.softcap_bounds_logits"),
           _softcapped("ignored")),
    Mutant("softcap_bias_capped", "the bias added before the cap",
           ("attention.softcap_definition",), _softcapped("bias_capped")),
    Mutant("softcap_no_inner_division", "c tanh(s) instead of c tanh(s / c)",
           ("attention.softcap_definition", "attention.softcap_limit"),
           _softcapped("no_inner_division")),
    Mutant("missing_scale", "scores not divided by sqrt(d_k) when no scale is given",
           ("attention.scaled_dot_product", "attention.unit_logit_variance"),
           replacing(attention=missing_scale, attention_weights=_missing_scale_weights),
           "mutants.attention:missing_scale", "attention", _ATTENTION),
    Mutant("scale_by_d", "scores divided by d_k instead of sqrt(d_k)",
           ("attention.scaled_dot_product", "attention.dictionary_lookup"),
           replacing(attention=scale_by_d),
           "mutants.attention:scale_by_d", "attention", _ATTENTION),
    Mutant("scale_ignored", "the scale argument accepted and ignored",
           ("attention.explicit_scale",), replacing(attention=scale_ignored),
           "mutants.attention:scale_ignored", "attention", _ATTENTION),
    Mutant("softmax_over_queries", "softmax over the wrong axis (dim=-2)",
           ("attention.dictionary_lookup", "attention.scaled_dot_product",
            "attention.convex_hull"), replacing(attention=softmax_over_queries),
           "mutants.attention:softmax_over_queries", "attention", _ATTENTION),
    Mutant("nan_on_fully_masked_row", "masked_fill(-inf) + softmax: NaN for a fully masked row",
           ("attention.fully_masked_row_zero", "contract.fully_masked_row"),
           replacing(attention=nan_on_fully_masked_row),
           "mutants.attention:nan_on_fully_masked_row", "attention", "attention.*"),
    Mutant("additive_mask_minus_1e4", "masking by adding -1e4: a fully masked row is uniform",
           ("attention.fully_masked_row_zero",), replacing(attention=additive_mask_minus_1e4),
           "mutants.attention:additive_mask_minus_1e4", "attention", "attention.*"),
    Mutant("no_max_subtraction", "no max-subtraction in the softmax: overflow to NaN",
           ("attention.extreme_logits_finite",), replacing(attention=no_max_subtraction),
           "mutants.attention:no_max_subtraction", "attention", "attention.*"),
    Mutant("float32_accumulation", "float32 accumulation of float64 inputs",
           ("attention.scaled_dot_product",), replacing(attention=float32_accumulation),
           "mutants.attention:float32_accumulation", "attention", "attention.*"),
    Mutant("dropout_at_inference", "attention dropout left on at inference",
           ("attention.scaled_dot_product",), replacing(attention=dropout_at_inference),
           "mutants.attention:dropout_at_inference", "attention", "attention.*"),
    Mutant("softmax_no_max_subtraction", "softmax exp(x)/sum exp(x) without the max",
           ("attention.extreme_logits_finite",),
           replacing(softmax=softmax_no_max_subtraction),
           "mutants.attention:softmax_no_max_subtraction", "softmax", "attention.*"),
    Mutant("unnormalized_weights", "exp of the scores without dividing by their sum",
           ("attention.rows_are_distributions", "attention.convex_hull"), _unnormalized),
    Mutant("softmax_plus_one", "softmax with an implicit extra zero logit ('softmax1')",
           ("attention.softmax_shift_invariance", "attention.seed004_softmax_example",
            "decoding.parallel_outputs_independent"),
           lambda ref: ref.replace(softmax=_softmax_plus_one)),
    Mutant("smoothed_softmax", "softmax mixed with 0.1% of the uniform distribution",
           ("attention.temperature_limit",), lambda ref: ref.replace(softmax=_smoothed_softmax)),
]


def _first_max_one_hot(s, axis=-1):
    """Hard attention: all weight on the first largest score (ties go to the first key)."""
    s = np.asarray(s)
    return (np.arange(s.shape[axis]) == np.argmax(s, axis=axis)[..., None]).astype(s.dtype)


MUTANTS += [
    Mutant("hard_attention_first_max", "argmax (hard) attention, ties broken by the first key",
           ("attention.midpoint_loses_pairs",),
           lambda ref: ref.replace(attention=attention_from(
               lambda q, k, **kw: naive_weights(q, k, softmax=_first_max_one_hot, **kw)))),
]
