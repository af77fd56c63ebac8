"""Mutants of the online-softmax claims: attention bugs in the subject, and broken versions of
the blockwise algorithms (the subject's ``online_merge``, ``flash_attention``,
``flash_io_count``, ``sliding_window_attention``, ``block_sparse_attention``)."""

from __future__ import annotations

import math

import numpy as np

from transformer_theory.impl import attention as A
from transformer_theory.impl import online_softmax as OS

from . import Mutant
from ._build import attention_from, naive_weights


def _missing_scale(ref):
    def weights(q, k, *, mask=None, causal=False, scale=None, bias=None):
        return naive_weights(q, k, mask=mask, causal=causal, scale=1.0 if scale is None else scale,
                             bias=bias)
    return ref.replace(attention=attention_from(weights))


def _nan_on_fully_masked(ref):
    def masked_softmax(s, axis=-1):
        m = np.max(s, axis=axis, keepdims=True)                 # -inf on a fully masked row
        e = np.exp(s - m)
        return e / e.sum(axis=axis, keepdims=True)

    def weights(q, k, **kw):
        return naive_weights(q, k, softmax=masked_softmax, **kw)
    return ref.replace(attention=attention_from(weights))


def _ignores_mask(ref):
    def attention(q, k, v, *, mask=None, causal=False, scale=None, bias=None):
        return A.attention(q, k, v, causal=causal, scale=scale, bias=bias)   # mask dropped
    return ref.replace(attention=attention)


# --- the (m, l, o) merge -------------------------------------------------------------------

def merge_no_rescale(a: OS.OnlineState, b: OS.OnlineState) -> OS.OnlineState:
    """``l`` and ``o`` added without rescaling to the common maximum."""
    return OS.OnlineState(np.maximum(a.m, b.m), a.l + b.l, a.o + b.o)


def merge_left_biased(a: OS.OnlineState, b: OS.OnlineState) -> OS.OnlineState:
    """Both states rescaled to ``a``'s maximum instead of ``max(m_a, m_b)`` (guarded)."""
    m = a.m                                                            # the bug
    empty = np.isneginf(m)
    m_safe = np.where(empty, 0, m)
    alpha = np.where(empty, 0, np.exp(a.m - m_safe))
    beta = np.where(empty, 0, np.exp(b.m - m_safe))
    return OS.OnlineState(m, alpha * a.l + beta * b.l,
                          alpha[..., None] * a.o + beta[..., None] * b.o)


def merge_unguarded(a: OS.OnlineState, b: OS.OnlineState) -> OS.OnlineState:
    """The rescaling without the guard for two empty states: ``exp(-inf - -inf) = NaN``."""
    m = np.maximum(a.m, b.m)
    with np.errstate(invalid="ignore"):
        alpha, beta = np.exp(a.m - m), np.exp(b.m - m)
    return OS.OnlineState(m, alpha * a.l + beta * b.l,
                          alpha[..., None] * a.o + beta[..., None] * b.o)


def _with(**callables):
    return lambda ref: ref.replace(**callables)


# --- tiling, IO, sparsity ------------------------------------------------------------------

def flash_full_scores(q, k, v, *, block_q=16, block_k=16, mask=None, causal=False, scale=None,
                      tracker=None):
    """The tiled loop run after the full ``Lq x Lk`` score matrix was computed (and kept)."""
    q_arr, k_arr = np.asarray(q), np.asarray(k)
    scale_ = 1.0 / math.sqrt(q_arr.shape[-1]) if scale is None else scale
    full = scale_ * (q_arr @ np.swapaxes(k_arr, -1, -2))              # (..., Lq, Lk): the bug
    if tracker is not None:
        tracker.observe("full scores", full)
    return OS.flash_attention(q, k, v, block_q=block_q, block_k=block_k, mask=mask,
                              causal=causal, scale=scale, tracker=tracker)


def flash_io_kv_blocks_fill_sram(n, d, m_words, **kw):
    """Algorithm 1 with ``B_c = floor(M / 2d)``: the K and V tiles alone fill the SRAM."""
    block_c = m_words // (2 * d)
    return OS.flash_io_count(n, d, m_words, block_sizes=(min(block_c, d), block_c), **kw)


def _dense_cost(counter, q, k, v):
    if counter is not None:
        q = np.asarray(q)
        counter.add(int(np.prod(q.shape[:-2])) * q.shape[-2] * np.shape(k)[-2], q.shape[-1],
                    np.shape(v)[-1])


def sliding_window_dense(q, k, v, window, *, scale=None, counter=None):
    """All ``L^2`` scores computed, then the window applied as a mask."""
    _dense_cost(counter, q, k, v)
    return A.attention(q, k, v, scale=scale, window=window)


def block_sparse_dense(q, k, v, block, layout, *, scale=None, counter=None):
    """All ``L^2`` scores computed, then the block pattern applied as a mask."""
    _dense_cost(counter, q, k, v)
    return A.attention(q, k, v, scale=scale,
                       mask=OS.block_sparse_mask(np.shape(q)[-2], block, layout))


MUTANTS = [
    Mutant("online_attention_missing_scale", "scores not divided by sqrt(d) in the subject",
           ("online_softmax.any_split_any_order",), _missing_scale),
    Mutant("merge_no_rescale", "block statistics added without rescaling to the common maximum",
           ("online_softmax.any_split_any_order",), _with(online_merge=merge_no_rescale)),
    Mutant("merge_left_biased", "the merged maximum is the left operand's, not max(m_a, m_b)",
           ("online_softmax.merge_monoid",), _with(online_merge=merge_left_biased)),
    Mutant("merge_unguarded", "two empty states merged as exp(-inf - -inf) = NaN",
           ("online_softmax.fully_masked_blocks", "online_softmax.merge_monoid"),
           _with(online_merge=merge_unguarded)),
    Mutant("attention_nan_on_fully_masked_row", "the subject returns NaN for a fully masked row",
           ("online_softmax.fully_masked_blocks",), _nan_on_fully_masked),
    Mutant("flash_full_scores", "the tiled loop slices a full L x L score matrix computed first",
           ("online_softmax.memory_o_block",), _with(flash_attention=flash_full_scores)),
    Mutant("flash_kv_blocks_fill_sram", "B_c = M / 2d: the K and V tiles alone fill the SRAM",
           ("online_softmax.io_complexity",),
           _with(flash_io_count=flash_io_kv_blocks_fill_sram)),
    Mutant("attention_ignores_mask", "the boolean mask is accepted but not applied",
           ("online_softmax.sparse_equals_masked_dense", "online_softmax.factorized_paths"),
           _ignores_mask),
    Mutant("sparse_dense_then_mask", "sparse attention computes all L^2 scores and masks them",
           ("online_softmax.sparse_cost_linear",),
           _with(sliding_window_attention=sliding_window_dense,
                 block_sparse_attention=block_sparse_dense)),
]
