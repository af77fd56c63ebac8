"""Mutants of the conformance topic: whole sequence maps and LayerNorm, each with one
bug seen in real model code (a leaked position, batch statistics, a decoder without
its mask or seeing the next token, eps outside the square root).

The whole models below are one-layer transformers of width 8 built from the
reference with fixed weights (:func:`model_params`), plus one mistake; they are also
loaded by target (``mutants.conformance:encoder_with_positions --as encoder
--option d_model=8``) and run through ``check``.
"""

from __future__ import annotations

import functools

import numpy as np

from mutants import Mutant, replacing
from transformer_theory.impl import transformer as T
from transformer_theory.impl.positional import sinusoidal_encoding

WIDTH = 8
_MAP = {"d_model": WIDTH}


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






def _decoder_without_mask(ref):
    return _with_map(ref, "causal_map", _encoder(False))





def layer_norm_eps_outside_sqrt(x, gamma=None, beta=None, *, eps=1e-5):
    """(x - mean) / (std + eps) (the annotated-transformer form), not / sqrt(var + eps)."""
    x = np.asarray(x)
    y = (x - x.mean(axis=-1, keepdims=True)) / (x.std(axis=-1, keepdims=True) + eps)
    y = y if gamma is None else y * gamma
    return (y if beta is None else y + beta).astype(x.dtype)


@functools.lru_cache(maxsize=None)
def model_params():
    """The fixed weights of the whole-model mutants (and of the correct maps in the tests)."""
    config = T.EncoderConfig(d_model=WIDTH, n_heads=2, d_ff=16, n_layers=1)
    return T.init_encoder(config, np.random.default_rng(8))


def encoder_with_positions(x):
    """Adds the sinusoidal encoding inside the model, yet is declared permutation equivariant."""
    x = np.asarray(x)
    return T.encoder(x + sinusoidal_encoding(x.shape[-2], WIDTH).astype(x.dtype), model_params())


def encoder_with_batch_norm(x):
    """Normalises each feature over the batch and positions before the block (BatchNorm)."""
    x = np.asarray(x)
    mean = x.mean(axis=(0, 1), keepdims=True)
    std = x.std(axis=(0, 1), keepdims=True) + 1e-5
    return T.encoder((x - mean) / std, model_params())


def causal_lm_sees_next_token(x):
    """The decoder's mask lets position i attend to i + 1 (triu(diagonal=2) for diagonal=1)."""
    x = np.asarray(x)
    length = x.shape[-2]
    allowed = np.tril(np.ones((length, length), dtype=bool), k=1)
    return T.encoder(x, model_params(), mask=allowed)


def causal_lm_global_mean(x):
    """Adds the mean over the whole sequence ("global context") to every position."""
    x = np.asarray(x)
    return T.encoder(x + x.mean(axis=-2, keepdims=True), model_params(), causal=True)


MUTANTS = [
    Mutant("encoder_with_positions", "an 'equivariant' encoder that adds positional encodings",
           ("conformance.encoder_map_permutation_equivariance",),
           replacing(_MAP, encoder_map=encoder_with_positions),
           "mutants.conformance:encoder_with_positions", "encoder", "conformance.*", _MAP),
    Mutant("encoder_with_batch_norm", "a model normalising over the batch (BatchNorm)",
           ("conformance.encoder_map_batch_independence",),
           replacing(_MAP, encoder_map=encoder_with_batch_norm),
           "mutants.conformance:encoder_with_batch_norm", "encoder", "conformance.*", _MAP),
    Mutant("causal_lm_sees_next_token", "a decoder mask that lets position i see i + 1",
           ("conformance.causal_map_future_invariance",),
           replacing(_MAP, causal_map=causal_lm_sees_next_token),
           "mutants.conformance:causal_lm_sees_next_token", "causal", "conformance.*", _MAP),
    Mutant("causal_lm_global_mean", "a 'causal' model mixing in the sequence mean",
           ("conformance.causal_map_future_invariance",),
           replacing(_MAP, causal_map=causal_lm_global_mean),
           "mutants.conformance:causal_lm_global_mean", "causal", "conformance.*", _MAP),
    Mutant("causal_map_unmasked", "a decoder run without its causal mask",
           ("conformance.causal_map_future_invariance",
            "conformance.causal_map_prefix_consistency"), _decoder_without_mask),
    Mutant("layer_norm_eps_outside_sqrt", "LayerNorm with eps in the wrong place: / (std + eps)",
           ("conformance.layer_norm_definition",),
           replacing(layer_norm=layer_norm_eps_outside_sqrt),
           "mutants.conformance:layer_norm_eps_outside_sqrt", "layer_norm",
           "normalization.*,conformance.layer_norm*"),
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


def _heads_times_nan_values(x_q, x_kv, params, *, mask=None, causal=False, bias=None):
    """Multi-head/GQA whose masked scores are dropped (-inf) but whose values are not:
    the zero weights of padded keys meet their NaN values (0 * NaN = NaN)."""
    from mutants._build import merge, project

    x_q, x_kv = np.asarray(x_q), np.asarray(x_kv)
    q = project(x_q, params.w_q, params.b_q)                                  # (..., H, Lq, Dh)
    r = params.w_q.shape[0] // params.w_k.shape[0]
    k = np.repeat(project(x_kv, params.w_k, params.b_k), r, axis=-3)          # (..., H, Lk, Dh)
    v = np.repeat(project(x_kv, params.w_v, params.b_v), r, axis=-3)          # (..., H, Lk, Dv)
    with np.errstate(invalid="ignore"):
        s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])                 # (..., H, Lq, Lk)
        if mask is not None:
            s = np.where(np.asarray(mask)[..., None, :, :], s, -np.inf)
        m = np.max(s, axis=-1, keepdims=True)
        w = np.exp(s - m)
        w = w / w.sum(axis=-1, keepdims=True)
        return merge(w @ v, params).astype(x_q.dtype)


MUTANTS += [
    Mutant("heads_times_nan_values", "MHA/GQA: masked scores dropped, NaN padding values kept",
           ("conformance.nan_poisoning_heads",),
           lambda ref: ref.replace(multi_head_attention=_heads_times_nan_values,
                                   grouped_query_attention=_heads_times_nan_values)),
]
