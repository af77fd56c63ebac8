"""Mutants of the residual-ODE claims."""

from __future__ import annotations

from transformer_theory.impl import layers as N

from . import Mutant, with_construction_mutation


def _drops_output_bias(ref):
    def feed_forward(x, params, *, activation="relu"):
        out = N.feed_forward(x, params, activation=activation)
        return out - params.b2 if params.b2 is not None else out     # b2 dropped
    return ref.replace(feed_forward=feed_forward)


MUTANTS = [
    Mutant("ffn_drops_output_bias", "the feed-forward network forgets its output bias b2",
           ("ode.residual_euler_convergence",), _drops_output_bias),
    Mutant("iid_layers_reseeded", "per-layer weights drawn after re-seeding the generator with "
           "a constant inside the loop: every layer gets the same weights",
           ("ode.random_weights_no_limit",),
           lambda ref: with_construction_mutation(ref, "residual_iid", "reseed_each_layer")),
]
