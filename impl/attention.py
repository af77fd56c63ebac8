"""Attention: scaled dot-product, multi-head, grouped-query, cross-attention, KV cache.

The reference implementation of the attention contract of DESIGN.md, in three
modules gathered here (every name is re-exported, so
``from transformer_theory.impl import attention as A; A.multi_head_attention``
and ``from transformer_theory.impl.attention import attention`` work as they
always have):

* :mod:`.sdpa` -- softmax, causal and sliding-window masks, scaled
  dot-product attention and its weights, averaging hard attention;
* :mod:`.heads` -- multi-head, grouped-query (MQA/GQA) and cross-attention,
  and the initialisation of their weights;
* :mod:`.kv_cache` -- the KV cache and incremental decoding.

:mod:`.heads` builds on :mod:`.sdpa` and :mod:`.kv_cache` on both, so the
three are separate modules and this one only gathers them (a module that
defined scaled dot-product attention and also re-exported :mod:`.heads`
would import in a circle).

Shapes follow PyTorch's ``scaled_dot_product_attention``: queries
``(..., Lq, E)``, keys ``(..., Lk, E)``, values ``(..., Lk, Ev)``, with
leading batch/head dims that must be *equal* (never broadcast silently).
Attention as a soft dictionary look-up (seed 004,
shared/seeds/004_d5b314f5ea1e15da.txt):

.. math::  \\mathrm{Attention}(Q, K, V) = \\mathrm{softmax}(s\\, Q K^T + B) V,
           \\qquad s = 1/\\sqrt{E} \\text{ by default.}

Masks are boolean, ``True`` = may attend; ``causal=True`` is top-left aligned
(PyTorch ``is_causal``), ``causal="bottom-right"`` aligns the last query with
the last key (FlashAttention, KV-cache decoding). A fully masked query row
returns zeros, never NaN; keys no query may attend may hold NaN or inf (NaN
poisoning, issue 14). Query head ``h`` of grouped-query attention reads kv
group ``h // (H // G)``. The details are in the three modules' docstrings.

The parameter types (``MultiHeadParams``, ``GroupedQueryParams``,
``KVCache``) and the validators are those of :mod:`.contract`; the types are
re-exported here.

References
----------
Vaswani et al. 2017, Attention Is All You Need, §3.2.1 (scaled dot-product
attention), §3.2.2 (multi-head attention), §3.2.3 (masking in the decoder).
Shazeer 2019, Fast Transformer Decoding: One Write-Head is All You Need (MQA).
Ainslie et al. 2023, GQA: Training Generalized Multi-Query Transformer Models
from Multi-Head Checkpoints, §2.
Pope et al. 2023, Efficiently Scaling Transformer Inference, §2 (KV cache).
Pérez, Barceló & Marinkovic 2021, Attention is Turing-Complete, §2 (averaging
hard attention); Hahn 2020, Theoretical Limitations of Self-Attention in Neural
Sequence Models, §3 (hard attention).
Seed 003 (shared/seeds/003_8876c6ab28e0baf8.txt): separate Q/K/V matrices per
head, concatenate the heads, multiply by W^O.
"""

from __future__ import annotations

from .contract.params import (  # noqa: F401  (re-exported: the contract's types)
    AttentionParams,
    GroupedQueryParams,
    KVCache,
    MultiHeadParams,
    check_attention_params,
    check_decode_args,
)
from .heads import (  # noqa: F401  (re-exported)
    cross_attention,
    gqa_to_mha_params,
    grouped_query_attention,
    init_grouped_query,
    init_multi_head,
    kv_group_of_head,
    mha_to_gqa_params,
    multi_head_attention,
    multi_head_attention_per_head,
    self_attention,
)
# The per-head building blocks under the names the mutant catalogue uses
# (tests/mutants/heads.py, tests/mutants/masking.py: ``A._project``, ``A._merge_heads``).
from .heads import merge_heads as _merge_heads  # noqa: F401
from .heads import project_heads as _project  # noqa: F401
from .kv_cache import (  # noqa: F401  (re-exported)
    decode_sequence,
    decode_step,
    init_kv_cache,
    kv_cache_bytes,
)
from .sdpa import (  # noqa: F401  (re-exported)
    HARD_ATTENTION_TIE_RTOL,
    attention,
    attention_weights,
    causal_mask,
    hard_attention,
    sliding_window_mask,
    softmax,
    window_mask,
)

__all__ = [
    "softmax",
    "causal_mask",
    "sliding_window_mask",
    "window_mask",
    "attention_weights",
    "attention",
    "hard_attention",
    "MultiHeadParams",
    "init_multi_head",
    "multi_head_attention",
    "multi_head_attention_per_head",
    "self_attention",
    "cross_attention",
    "GroupedQueryParams",
    "init_grouped_query",
    "kv_group_of_head",
    "grouped_query_attention",
    "gqa_to_mha_params",
    "mha_to_gqa_params",
    "KVCache",
    "init_kv_cache",
    "decode_step",
    "decode_sequence",
    "kv_cache_bytes",
]
