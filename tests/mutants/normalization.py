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


def _mean_square(x, denominator=None):
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1] if denominator is None else denominator
    return np.sum(x * x, axis=-1, keepdims=True) / n


def _gain(y, x, gamma):
    return (y if gamma is None else y * gamma).astype(np.result_type(x, *(
        [] if gamma is None else [gamma])))


def rms_norm_eps_outside(x, gamma=None, *, eps=1e-6):
    """x / (sqrt(mean(x^2)) + eps): eps added outside the square root."""
    return _gain(np.asarray(x) / (np.sqrt(_mean_square(x)) + eps), x, gamma)


def rms_norm_subtracts_mean(x, gamma=None, *, eps=1e-6):
    """LayerNorm declared as RMSNorm: the mean is subtracted first."""
    return _gain(_standardise(np.asarray(x, dtype=np.float64), -1, eps), x, gamma)


def rms_norm_without_gamma(x, gamma=None, *, eps=1e-6):
    """The gain is accepted and never applied."""
    return _gain(np.asarray(x) / np.sqrt(_mean_square(x) + eps), x, None)


def rms_norm_eps_zero_means_default(x, gamma=None, *, eps=1e-6):
    """``eps = eps or 1e-6``: eps = 0 silently becomes the default."""
    eps = eps or 1e-6
    return _gain(np.asarray(x) / np.sqrt(_mean_square(x) + eps), x, gamma)


def rms_norm_over_e_minus_1(x, gamma=None, *, eps=1e-6):
    """The sum of squares divided by E - 1 (an unbiased-variance habit)."""
    e = np.shape(x)[-1]
    return _gain(np.asarray(x) / np.sqrt(_mean_square(x, max(e - 1, 1)) + eps), x, gamma)


_RMS_NORM = "normalization.rmsnorm*"

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
    Mutant("rms_norm_eps_outside", "RMSNorm with eps outside the square root, undeclared",
           claims=("normalization.rmsnorm_eps_inside", "normalization.rmsnorm_definition",
                   "normalization.rmsnorm_scale_invariance"),
           build=replacing(rms_norm=rms_norm_eps_outside),
           target="mutants.normalization:rms_norm_eps_outside", as_kind="rms_norm",
           check_claims=_RMS_NORM),
    Mutant("rms_norm_subtracts_mean", "LayerNorm declared as RMSNorm (the mean subtracted)",
           claims=("normalization.rmsnorm_definition", "normalization.rmsnorm_eps_inside"),
           build=replacing(rms_norm=rms_norm_subtracts_mean),
           target="mutants.normalization:rms_norm_subtracts_mean", as_kind="rms_norm",
           check_claims=_RMS_NORM),
    Mutant("rms_norm_target_as_layer_norm", "RMSNorm declared as LayerNorm (no centring)",
           claims=("conformance.layer_norm_definition",),
           build=replacing(layer_norm=rms_norm),
           target="mutants.normalization:rms_norm", as_kind="layer_norm",
           check_claims=_LAYER_NORM),
    Mutant("rms_norm_without_gamma", "RMSNorm that never applies its gain",
           claims=("normalization.rmsnorm_definition",
                   "normalization.rmsnorm_is_layernorm_on_zero_mean"),
           build=replacing(rms_norm=rms_norm_without_gamma)),
    Mutant("rms_norm_eps_zero_means_default", "RMSNorm with eps = eps or 1e-6 (0 ignored)",
           claims=("normalization.rmsnorm_scale_invariance", "normalization.rmsnorm_definition"),
           build=replacing(rms_norm=rms_norm_eps_zero_means_default)),
    Mutant("rms_norm_over_e_minus_1", "RMSNorm dividing the sum of squares by E - 1",
           claims=("normalization.rmsnorm_is_layernorm_on_zero_mean",
                   "normalization.rmsnorm_definition"),
           build=replacing(rms_norm=rms_norm_over_e_minus_1)),
    Mutant("batch_norm_per_sample", "BatchNorm statistics per sample, not over the batch",
           claims=("normalization.batchnorm_couples_batch",),
           build=lambda ref: ref.replace(batch_norm=batch_norm_per_sample)),
]
