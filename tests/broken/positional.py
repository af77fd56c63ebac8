"""Broken positional encodings."""

from __future__ import annotations

import numpy as np


def sinusoidal_sin_cos_swapped(n_positions, d_model):
    """cos at even and sin at odd coordinates."""
    p = np.arange(n_positions)[:, None]
    i = np.arange(d_model // 2)[None, :]
    angle = p / 10000.0 ** (2 * i / d_model)
    pe = np.zeros((n_positions, d_model))
    pe[:, 0::2] = np.cos(angle)
    pe[:, 1::2] = np.sin(angle)
    return pe


def sinusoidal_exponent_without_two(n_positions, d_model):
    """10000^(i/d) instead of 10000^(2i/d): the frequencies only reach 10000^(-1/2)."""
    p = np.arange(n_positions)[:, None]
    i = np.arange(d_model // 2)[None, :]
    angle = p / 10000.0 ** (i / d_model)
    pe = np.zeros((n_positions, d_model))
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle)
    return pe


def rope_ignores_positions(x, positions=None, *, base=10000.0):
    """Rotates row l by angle l * theta whatever positions are passed (breaks with a KV cache)."""
    x = np.asarray(x)
    d = x.shape[-1]
    pos = np.arange(x.shape[-2], dtype=np.float64)[:, None]        # positions argument ignored
    theta = base ** (-2.0 * np.arange(d // 2) / d)
    a = pos * theta                                                 # (L, d/2)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * np.cos(a) - odd * np.sin(a)
    out[..., 1::2] = even * np.sin(a) + odd * np.cos(a)
    return out
