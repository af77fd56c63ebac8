"""Mutants of the rank-collapse claims (pure self-attention against skip connections)."""

from __future__ import annotations

import numpy as np

from transformer_theory.impl import attention as A

from . import Mutant, replacing


def _self_leak(alpha):
    def attention(q, k, v, **kw):
        out = A.attention(q, k, v, **kw)
        v = np.asarray(v)
        if np.asarray(q).shape[-2] != v.shape[-2]:
            return out
        return ((1 - alpha) * out + alpha * v).astype(out.dtype)   # weights (1-a) P + a I
    return attention


def _cancels_values(q, k, v, **kw):
    """The kernel subtracts its values (out = P v - v): a block x + attn(x) keeps no skip."""
    out = A.attention(q, k, v, **kw)
    return (out - np.asarray(v)).astype(out.dtype)


MUTANTS = [
    Mutant("attention_self_leak", "attention weights (1 - a) softmax + a I, a = 0.05: "
           "row-stochastic, but a hard-wired attend-to-self share",
           claims=("depth.rank_collapse_doubly_exponential",),
           build=replacing(attention=_self_leak(0.05))),
    Mutant("attention_self_leak_small", "the same attend-to-self share with a = 1e-3",
           claims=("depth.rank_collapse_doubly_exponential",),
           build=replacing(attention=_self_leak(1e-3))),
    Mutant("attention_cancels_values", "attention returns P v - v, cancelling the skip path",
           claims=("depth.skip_connections_keep_rank",),
           build=replacing(attention=_cancels_values)),
]
