"""Mutants of the residual-ODE claims."""

from __future__ import annotations

import math

import numpy as np

from transformer_theory.impl import layers as N
from transformer_theory.impl import residual_ode as RO

from . import Mutant


def _drops_output_bias(ref):
    def feed_forward(x, params, *, activation="relu"):
        out = N.feed_forward(x, params, activation=activation)
        return out - params.b2 if params.b2 is not None else out     # b2 dropped
    return ref.replace(feed_forward=feed_forward)


def stack_reseeded_each_layer(x0, horizon, depth, width, rng, *, scaling="1/L",
                              feed_forward=None):
    """``residual_stack_iid`` re-creating its generator with a constant seed in every layer:
    all layers (and all depths) get the same weights, a shared-weight stack in disguise."""
    x = np.asarray(x0, dtype=np.float64)
    step = horizon / depth if scaling == "1/L" else math.sqrt(horizon / depth)
    for _ in range(depth):
        params = N.init_ffn(x.shape[-1], width, np.random.default_rng(0), dtype=x.dtype)  # the bug
        x = N.residual(x, step * RO.vector_field(x, params, feed_forward=feed_forward))
    return x


MUTANTS = [
    Mutant("ffn_drops_output_bias", "the feed-forward network forgets its output bias b2",
           ("ode.residual_euler_convergence",), _drops_output_bias),
    Mutant("iid_layers_reseeded", "per-layer weights drawn after re-seeding the generator with "
           "a constant inside the loop: every layer gets the same weights",
           ("ode.random_weights_no_limit",),
           lambda ref: ref.replace(residual_stack_iid=stack_reseeded_each_layer)),
]
