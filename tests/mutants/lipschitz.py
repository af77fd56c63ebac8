"""Mutants of the Lipschitz claims."""

from __future__ import annotations

import numpy as np

from transformer_theory.impl import attention as A

from . import Mutant, replacing


def _cosine_attention(q, k, v, **kw):
    """Queries and keys normalised to unit length before the dot product (QK-norm)."""
    q, k = np.asarray(q), np.asarray(k)
    qn = q / (np.linalg.norm(q, axis=-1, keepdims=True) + 1e-6)
    kn = k / (np.linalg.norm(k, axis=-1, keepdims=True) + 1e-6)
    return A.attention(qn.astype(q.dtype), kn.astype(k.dtype), v, **kw)


MUTANTS = [
    Mutant("attention_cosine_logits", "queries and keys l2-normalised before the dot product "
           "(cosine attention): bounded logits, a bounded Jacobian",
           claims=("lipschitz.dot_product_unbounded_jacobian",),
           build=replacing(attention=_cosine_attention)),
]
