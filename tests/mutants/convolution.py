"""Mutants of convolution-as-attention: an attention that drops the relative-position bias or
silently restricts itself to a local window, and a construction with a misplaced kernel anchor
(the subject's ``conv1d_as_attention`` and ``conv2d_as_attention``)."""

from __future__ import annotations

import numpy as np

from transformer_theory.impl import attention as A
from transformer_theory.impl.constructions import convolution as CV

from . import Mutant
from ._build import attention_dropping


def _local_window(ref):
    def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
        lq, lk = np.shape(q)[-2], np.shape(k)[-2]
        local = A.sliding_window_mask(lq, lk, 5, causal=False)               # |i - j| < 5 only
        mask = local if mask is None else (np.asarray(mask) & local)
        return A.attention(q, k, v, mask=mask, causal=causal, scale=scale, bias=bias)
    return ref.replace(attention=attention)


def conv1d_anchor_off_by_one(x, kernel, **kw):
    """Kernel offsets ``k - a - 1``: every head one position too far to the left."""
    width = np.shape(kernel)[-1]
    return CV.conv1d_as_attention(x, kernel, anchor=(width - 1) // 2 + 1, **kw)


def conv2d_anchor_off_by_one(x, kernel, **kw):
    """As :func:`conv1d_anchor_off_by_one`, along both axes."""
    k1, k2 = np.shape(kernel)[-2:]
    return CV.conv2d_as_attention(x, kernel, anchor=((k1 - 1) // 2 + 1, (k2 - 1) // 2 + 1), **kw)


MUTANTS = [
    Mutant("attention_ignores_bias", "the additive logit bias is accepted but not added",
           ("convolution.conv1d_interior", "convolution.conv2d_interior",
            "convolution.zero_padding_exact", "convolution.receptive_field"),
           attention_dropping("bias")),
    Mutant("attention_local_window", "attention silently restricted to a window |i - j| < 5",
           ("convolution.receptive_field",), _local_window),
    Mutant("conv_anchor_off_by_one", "kernel offsets anchored one position too far (k - a - 1)",
           ("convolution.conv1d_interior", "convolution.conv2d_interior",
            "convolution.zero_padding_exact"),
           lambda ref: ref.replace(conv1d_as_attention=conv1d_anchor_off_by_one,
                                   conv2d_as_attention=conv2d_anchor_off_by_one)),
]


def conv1d_tied_to_length_8(x, kernel, **kw):
    """Weights tied to one training length: the kernel scaled by 8 / L (exact at L = 8 only)."""
    return CV.conv1d_as_attention(x, np.asarray(kernel) * (8 / np.shape(x)[-2]), **kw)


MUTANTS += [
    Mutant("conv_tied_to_length", "a layer whose weights are only right at the length 8 it was "
           "built for (kernel scaled by 8 / L)",
           ("convolution.fewer_parameters_any_length",),
           lambda ref: ref.replace(conv1d_as_attention=conv1d_tied_to_length_8)),
]
