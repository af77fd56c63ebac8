"""Broken whole models, checked as sequence maps (--as encoder, --as causal).

Each is a one-layer transformer of width 8 built from the reference with fixed
weights, plus one realistic mistake.
"""

from __future__ import annotations

import functools

import numpy as np

from transformer_theory.impl.positional import sinusoidal_encoding
from transformer_theory.impl.transformer import EncoderConfig, encoder, init_encoder

D_MODEL = 8


@functools.lru_cache(maxsize=None)
def _params():
    config = EncoderConfig(d_model=D_MODEL, n_heads=2, d_ff=16, n_layers=1)
    return init_encoder(config, np.random.default_rng(8))


def encoder_with_positions(x):
    """Adds the sinusoidal encoding inside the model, yet is declared permutation equivariant."""
    x = np.asarray(x)
    return encoder(x + sinusoidal_encoding(x.shape[-2], D_MODEL).astype(x.dtype), _params())


def encoder_with_batch_norm(x):
    """Normalises each feature over the batch and positions before the block (BatchNorm)."""
    x = np.asarray(x)
    mean = x.mean(axis=(0, 1), keepdims=True)
    std = x.std(axis=(0, 1), keepdims=True) + 1e-5
    return encoder((x - mean) / std, _params())


def causal_lm_sees_next_token(x):
    """The decoder's mask lets position i attend to i + 1 (triu(diagonal=2) for diagonal=1)."""
    x = np.asarray(x)
    length = x.shape[-2]
    allowed = np.tril(np.ones((length, length), dtype=bool), k=1)
    return encoder(x, _params(), mask=allowed)


def causal_lm_global_mean(x):
    """Adds the mean over the whole sequence ("global context") to every position."""
    x = np.asarray(x)
    return encoder(x + x.mean(axis=-2, keepdims=True), _params(), causal=True)
