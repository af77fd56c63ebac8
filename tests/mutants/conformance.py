"""Mutants of the conformance topic: whole sequence maps and LayerNorm, each with one
bug seen in real model code (a leaked position, batch statistics, a decoder without
its mask, eps outside the square root)."""

from __future__ import annotations

import numpy as np

from mutants import Mutant
from transformer_theory.impl import transformer as T

WIDTH = 8


def _encoder(causal: bool):
    config = T.EncoderConfig(d_model=WIDTH, n_heads=2, d_ff=16, n_layers=1)
    params = T.init_encoder(config, np.random.default_rng(0))

    def f(x):
        p = params if np.asarray(x).dtype == np.float64 else T.init_encoder(
            config, np.random.default_rng(0), dtype=np.float32)
        return T.encoder(x, p, causal=causal)
    return f


def _with_map(ref, name, fn):
    return ref.replace(**{name: fn}).with_options(d_model=WIDTH)


def _position_leak(ref):
    base = _encoder(False)
    return _with_map(ref, "encoder_map", lambda x: base(x + np.arange(x.shape[-2])[:, None]
                                                      .astype(x.dtype) * 0.1))


def _batch_statistics(ref):
    base = _encoder(False)

    def f(x):
        y = base(x)
        return y - y.mean(axis=0, keepdims=True)           # normalised across the batch
    return _with_map(ref, "encoder_map", f)


def _decoder_without_mask(ref):
    return _with_map(ref, "causal_map", _encoder(False))


def _layer_norm_eps_outside(x, gamma=None, beta=None, *, eps=1e-5):
    x = np.asarray(x)
    mu = x.mean(axis=-1, keepdims=True)
    y = (x - mu) / (np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True)) + eps)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y.astype(x.dtype)


MUTANTS = [
    Mutant("encoder_map_position_leak", "a positional ramp added inside an encoder declared "
           "position-free", ("conformance.encoder_map_permutation_equivariance",),
           _position_leak),
    Mutant("encoder_map_batch_statistics", "outputs centred over the batch axis (batch "
           "statistics at inference)", ("conformance.encoder_map_batch_independence",),
           _batch_statistics),
    Mutant("causal_map_unmasked", "a decoder run without its causal mask",
           ("conformance.causal_map_future_invariance",
            "conformance.causal_map_prefix_consistency"), _decoder_without_mask),
    Mutant("layer_norm_eps_outside_sqrt", "(x - mean) / (std + eps) instead of "
           "/ sqrt(var + eps)", ("conformance.layer_norm_definition",),
           lambda ref: ref.replace(layer_norm=_layer_norm_eps_outside)),
]


def _masked_fill_zero(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
    """Masked scores set to 0 instead of -inf: padded keys keep a weight."""
    q, k, v = (np.asarray(a) for a in (q, k, v))
    s = q @ np.swapaxes(k, -1, -2) * (1 / np.sqrt(q.shape[-1]) if scale is None else scale)
    allowed = np.ones(s.shape, dtype=bool)
    if mask is not None:
        allowed = allowed & np.broadcast_to(mask, s.shape)
    if causal:
        lq, lk = s.shape[-2:]
        allowed = allowed & np.tril(np.ones((lq, lk), bool), k=(lk - lq) if causal == "bottom-right"
                                    else 0)
    s = np.where(allowed, s, 0.0)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    return ((p / p.sum(axis=-1, keepdims=True)) @ v).astype(q.dtype)


def _weights_times_values(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
    """softmax(scores) @ v without dropping masked keys: 0 * NaN reaches the output."""
    from transformer_theory.impl.attention import attention_weights

    k = np.where(np.isfinite(k), k, 0.0).astype(np.asarray(k).dtype)   # scores stay finite
    w = attention_weights(q, k, mask=mask, causal=causal, scale=scale)
    return (w @ np.asarray(v)).astype(np.asarray(q).dtype)


MUTANTS += [
    Mutant("masked_fill_zero", "masked scores filled with 0 instead of -inf",
           ("conformance.padding_invariance",), lambda ref: ref.replace(attention=_masked_fill_zero)),
    Mutant("weights_times_nan_values", "masked weights multiplied by NaN padding values",
           ("conformance.nan_poisoning",), lambda ref: ref.replace(attention=_weights_times_values)),
]
