"""Mutants of half-precision numerics: the bugs of kernel and port authors.

A claim id with a dtype in brackets (``precision.long_row_accumulation[bfloat16]``)
names the half-precision run that must reject the mutant.
"""

from __future__ import annotations

import functools

import ml_dtypes
import numpy as np

from mutants import Mutant, replacing
from transformer_theory.impl.contract import allowed_keys

BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)


def _scores(q, k, scale=None):
    """Scaled scores in float32 (the shared first step of the broken attentions)."""
    q32, k32 = np.asarray(q, np.float32), np.asarray(k, np.float32)
    s = 1.0 / np.sqrt(q32.shape[-1]) if scale is None else scale
    return np.matmul(q32, np.swapaxes(k32, -1, -2)) * np.float32(s)       # (..., Lq, Lk)


def _biased_scores(q, k, mask, causal, scale, bias):
    """Float32 scores with the bias added, and the allowed-key mask (or None)."""
    s = _scores(q, k, scale)
    if bias is not None:
        s = s + np.asarray(bias, np.float32)
    return s, allowed_keys(mask, causal, np.shape(q)[:-2], np.shape(q)[-2], np.shape(k)[-2])


def exp_without_max(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
    """softmax as exp(s) / sum exp(s): overflows to inf / inf = NaN for large logits."""
    dt = np.asarray(q).dtype
    s, allowed = _biased_scores(q, k, mask, causal, scale, bias)
    e = np.exp(s) if allowed is None else np.where(allowed, np.exp(s), 0.0)
    p = e / e.sum(axis=-1, keepdims=True)
    return np.matmul(p, np.asarray(v, np.float32)).astype(dt)


def finfo_min_mask_plus_bias(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
    """An additive mask of finfo(dtype).min plus the bias, added in the input dtype.

    In float16, -65504 plus a bias of -1e4 overflows to -inf: a fully masked row is
    all -inf and its softmax is NaN.
    """
    dt = np.asarray(q).dtype
    s = _scores(q, k, scale).astype(dt)                                     # (..., Lq, Lk)
    allowed = allowed_keys(mask, causal, np.shape(q)[:-2], np.shape(q)[-2], np.shape(k)[-2])
    if allowed is not None:
        s = s + np.where(allowed, 0, np.finfo(dt).min).astype(dt)
    if bias is not None:
        s = s + np.asarray(bias).astype(dt)
    s32 = s.astype(np.float32)
    e = np.exp(s32 - s32.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    return np.matmul(p, np.asarray(v, np.float32)).astype(dt)


def low_dtype_accumulation(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
    """The softmax denominator and P V summed one key at a time in the input dtype."""
    dt = np.asarray(q).dtype
    s, allowed = _biased_scores(q, k, mask, causal, scale, bias)
    if allowed is not None:
        s = np.where(allowed, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0.0)).astype(dt)            # (..., Lq, Lk)
    z = np.add.accumulate(e, axis=-1)[..., -1:]                            # summed in dt
    p = (e / np.where(z == 0, 1, z)).astype(dt)
    terms = p[..., :, :, None] * np.asarray(v).astype(dt)[..., None, :, :]  # (..., Lq, Lk, Ev)
    return np.add.accumulate(terms.astype(dt), axis=-2)[..., -1, :].astype(dt)


def _through_float16(attention):
    """bfloat16 inputs cast to float16, attended, and cast back (loses float32's range)."""
    @functools.wraps(attention)
    def broken(q, k, v, **kw):
        if np.asarray(q).dtype == BF16:
            q, k, v = (np.asarray(a).astype(np.float32).astype(F16) for a in (q, k, v))
            return np.asarray(attention(q, k, v, **kw)).astype(np.float32).astype(BF16)
        return attention(q, k, v, **kw)
    return broken


def _float32_for_half(attention):
    """A float16/bfloat16 input answered in float32."""
    @functools.wraps(attention)
    def broken(q, k, v, **kw):
        out = attention(q, k, v, **kw)
        return np.asarray(out).astype(np.float32) if np.asarray(q).dtype in (F16, BF16) else out
    return broken


def _nan_rows_in_float16(attention):
    """Fully masked rows are zeros in float32 and float64 but NaN in float16."""
    @functools.wraps(attention)
    def broken(q, k, v, *, mask=None, causal=False, **kw):
        out = np.asarray(attention(q, k, v, mask=mask, causal=causal, **kw))
        if np.asarray(q).dtype != F16 or mask is None:
            return out
        allowed = allowed_keys(mask, causal, np.shape(q)[:-2], np.shape(q)[-2], np.shape(k)[-2])
        dead = ~np.broadcast_to(allowed, out.shape[:-1] + (np.shape(k)[-2],)).any(axis=-1)
        out = out.copy()
        out[dead] = np.nan
        return out
    return broken


def _wrapping(wrap):
    def build(ref):
        return ref.replace(attention=wrap(ref.attention))
    return build


MUTANTS = [
    Mutant("exp_without_max", "softmax without the row maximum subtracted (exp overflows)",
           ("precision.extreme_logits_finite", "precision.extreme_logits_finite[float16]",
            "precision.extreme_logits_finite[bfloat16]"),
           replacing(attention=exp_without_max)),
    Mutant("finfo_min_mask_plus_bias",
           "additive mask built from finfo(dtype).min, bias added in the input dtype",
           ("precision.mask_with_bias_finite[float16]",),
           replacing(attention=finfo_min_mask_plus_bias)),
    Mutant("low_dtype_accumulation",
           "softmax denominator and P V accumulated in the input dtype",
           ("precision.long_row_accumulation[float16]",
            "precision.long_row_accumulation[bfloat16]"),
           replacing(attention=low_dtype_accumulation)),
    Mutant("bfloat16_through_float16", "bfloat16 inputs silently computed in float16",
           ("precision.large_values_survive[bfloat16]",),
           _wrapping(_through_float16)),
    Mutant("float32_for_half", "a float32 result for float16 and bfloat16 input",
           ("contract.attention_output_dtype[float16]",
            "contract.attention_output_dtype[bfloat16]"),
           _wrapping(_float32_for_half)),
    Mutant("nan_rows_in_float16", "fully masked rows NaN in float16 only (zeros elsewhere)",
           ("contract.fully_masked_row[float16]",),
           _wrapping(_nan_rows_in_float16)),
]
