"""Broken Performer pieces."""

from __future__ import annotations

import functools

import numpy as np

from transformer_theory.impl.performer import favor_attention


def orthogonal_unsigned_qr(m, d, rng, *, scaling="chi"):
    """Blocks Q of np.linalg.qr(G) without the sign correction Q diag(sign(diag R)).

    Householder QR fixes the signs of R's diagonal, so Q is not Haar: entry
    (0, 0) of every block always has the same sign.
    """
    blocks = []
    for _ in range(-(-m // d)):
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        blocks.append(q)
    directions = np.concatenate(blocks)[:m]
    norms = np.sqrt(rng.chisquare(d, size=m)) if scaling == "chi" else np.full(m, np.sqrt(d))
    return directions * norms[:, None]


#: Causal FAVOR+ whose key stabiliser is the maximum over the whole sequence:
#: a future key that raises it underflows the earlier keys' features.
favor_sequence_stabilizer = functools.partial(favor_attention, key_stabilizer="sequence")
