"""Mutants of layer and batch normalisation.

``layer_norm_unbiased_variance`` and ``layer_norm_over_batch`` are also loaded by
target (``mutants.normalization:layer_norm_over_batch --as layer_norm``) and run
through ``check``.
"""

from __future__ import annotations

import numpy as np

from mutants import Mutant, replacing

_LAYER_NORM = "normalization.*,conformance.layer_norm*"


def _standardise(x, axes, eps, ddof=0):
    x = np.asarray(x)
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True, ddof=ddof)
    return ((x - mean) / np.sqrt(var + eps)).astype(x.dtype)


def _affine(y, gamma, beta):
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y


def layer_norm_unbiased_variance(x, gamma=None, beta=None, *, eps=1e-5):
    """np.var(..., ddof=1) / torch.std(unbiased=True): divides by E - 1, not E."""
    return _affine(_standardise(x, -1, eps, ddof=1), gamma, beta)


def rms_norm(x, gamma=None, beta=None, *, eps=1e-5):
    """RMSNorm in place of LayerNorm: no centring."""
    x = np.asarray(x)
    rms = np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return _affine((x / rms).astype(x.dtype), gamma, beta)


def layer_norm_over_batch(x, gamma=None, beta=None, *, eps=1e-5):
    """Statistics over the batch axis (a BatchNorm called LayerNorm)."""
    x = np.asarray(x)
    return _affine(_standardise(x, (0,) if x.ndim > 1 else (-1,), eps), gamma, beta)


def batch_norm_per_sample(x, gamma=None, beta=None, *, eps=1e-5):
    """Statistics over the positions of each sample only (instance norm), not the batch."""
    x = np.asarray(x)
    axes = tuple(range(1, x.ndim - 1)) or (0,)
    return _affine(_standardise(x, axes, eps), gamma, beta)


MUTANTS = [
    Mutant("layer_norm_unbiased_variance", "LayerNorm with the unbiased (E - 1) variance",
           claims=("normalization.layernorm_standardizes",),
           build=replacing(layer_norm=layer_norm_unbiased_variance),
           target="mutants.normalization:layer_norm_unbiased_variance", as_kind="layer_norm",
           check_claims=_LAYER_NORM),
    Mutant("layer_norm_is_rms_norm", "RMSNorm (no mean subtraction) used as LayerNorm",
           claims=("normalization.layernorm_standardizes", "normalization.layernorm_invariances"),
           build=lambda ref: ref.replace(layer_norm=rms_norm)),
    Mutant("layer_norm_over_batch", "LayerNorm statistics over the batch axis",
           claims=("normalization.layernorm_standardizes",
                   "normalization.layernorm_weight_vector_limitation",
                   "normalization.layernorm_batch_independent"),
           build=replacing(layer_norm=layer_norm_over_batch),
           target="mutants.normalization:layer_norm_over_batch", as_kind="layer_norm",
           check_claims=_LAYER_NORM),
    Mutant("batch_norm_per_sample", "BatchNorm statistics per sample, not over the batch",
           claims=("normalization.batchnorm_couples_batch",),
           build=lambda ref: ref.replace(batch_norm=batch_norm_per_sample)),
]
