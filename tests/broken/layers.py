"""Broken softmax and LayerNorm implementations."""

from __future__ import annotations

import numpy as np


def softmax_no_max_subtraction(x, axis=-1):
    """exp(x) / sum exp(x): inf / inf = NaN once a logit passes ~88 in float32."""
    x = np.asarray(x)
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(x)
        return e / e.sum(axis=axis, keepdims=True)


def layer_norm_unbiased_variance(x, gamma=None, beta=None, *, eps=1e-5):
    """np.var(..., ddof=1) / torch.std(unbiased=True): divides by E - 1, not E."""
    x = np.asarray(x)
    y = (x - x.mean(axis=-1, keepdims=True)) / np.sqrt(x.var(axis=-1, ddof=1, keepdims=True) + eps)
    y = y if gamma is None else y * gamma
    return (y if beta is None else y + beta).astype(x.dtype)


def layer_norm_eps_outside_sqrt(x, gamma=None, beta=None, *, eps=1e-5):
    """(x - mean) / (std + eps) (the annotated-transformer form), not / sqrt(var + eps)."""
    x = np.asarray(x)
    y = (x - x.mean(axis=-1, keepdims=True)) / (x.std(axis=-1, keepdims=True) + eps)
    y = y if gamma is None else y * gamma
    return (y if beta is None else y + beta).astype(x.dtype)


def layer_norm_over_batch(x, gamma=None, beta=None, *, eps=1e-5):
    """Statistics over the batch axis (a BatchNorm called LayerNorm)."""
    x = np.asarray(x)
    axes = (0,) if x.ndim > 1 else (-1,)
    y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    y = y if gamma is None else y * gamma
    return (y if beta is None else y + beta).astype(x.dtype)
