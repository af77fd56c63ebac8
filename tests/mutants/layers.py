"""Mutants of the position-wise layers and activations."""

from __future__ import annotations

import numpy as np

from mutants import Mutant


def make_ffn_reshape_bug(ref):
    def feed_forward_reshape(x, params, *, activation="relu"):
        """(..., L, E) read as (..., E, L) by reshape instead of transpose: mixes positions."""
        x = np.asarray(x)
        if x.ndim >= 2:
            x = x.reshape(*x.shape[:-2], x.shape[-1], x.shape[-2]).swapaxes(-1, -2)
        return ref.feed_forward(np.ascontiguousarray(x), params, activation=activation)
    return feed_forward_reshape


def sigmoid_naive(x):
    """exp(x) / (1 + exp(x)): inf / inf = NaN once exp overflows."""
    x = np.asarray(x)
    e = np.exp(x)
    return (e / (1 + e)).astype(x.dtype)


MUTANTS = [
    Mutant("ffn_reshape_mixes_positions", "reshape used where a transpose was meant",
           claims=("layers.ffn_position_wise",),
           build=lambda ref: ref.replace(feed_forward=make_ffn_reshape_bug(ref))),
    Mutant("sigmoid_naive_exp", "sigmoid as exp(x) / (1 + exp(x)), NaN for large x",
           claims=("layers.tanh_sigmoid",),
           build=lambda ref: ref.replace(sigmoid=sigmoid_naive)),
]
