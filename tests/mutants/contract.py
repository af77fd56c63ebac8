"""Mutants of the contract topic: outputs that lose the input dtype, and a fully
masked row that breaks the declared convention (NaN rows under the contract's zeros
are ``nan_on_fully_masked_row`` in ``mutants/attention.py``)."""

from __future__ import annotations

import numpy as np

from mutants import Mutant
from transformer_theory.theory.conventions import dead_query_rows

#: The callables the contract.<name>_output_dtype claims cover.
DTYPE_CALLABLES = ("attention", "attention_weights", "softmax", "multi_head_attention",
                   "grouped_query_attention", "layer_norm", "feed_forward", "rope",
                   "random_features", "favor_attention")


def _float32_output(fn):
    """Computes in the input dtype and returns float32 (a missing cast back)."""
    def broken(*args, **kwargs):
        return np.asarray(fn(*args, **kwargs), dtype=np.float32)
    return broken




def _uniform_rows_declared_nan(fn):
    """A finite mask value (uniform rows) where the subject declares NaN rows."""
    def broken(q, k, v, *, mask=None, causal=False, **kw):
        out = np.array(fn(q, k, v, mask=mask, causal=causal, **kw))
        dead = np.broadcast_to(dead_query_rows(np.shape(q)[-2], np.shape(k)[-2], mask, causal),
                               out.shape[:-1])
        out[dead] = np.broadcast_to(np.mean(v, axis=-2, keepdims=True), out.shape)[dead]
        return out
    return broken


def _output_mutant(name):
    return Mutant(f"{name}_returns_float32", f"{name} returns float32 for float64 input",
                  (f"contract.{name}_output_dtype",),
                  lambda ref: ref.replace(**{name: _float32_output(ref.callables[name])}))


MUTANTS = [_output_mutant(n) for n in DTYPE_CALLABLES] + [
    Mutant("fully_masked_uniform_declared_nan", "uniform rows where the subject declares NaN",
           ("contract.fully_masked_row",),
           lambda ref: ref.replace(attention=_uniform_rows_declared_nan(
               ref.callables["attention"])).with_options(fully_masked_row="nan")),
]
