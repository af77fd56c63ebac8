"""Mutants of decoding with a KV cache: rotary offsets, left padding, unwritten slots."""

from __future__ import annotations

import math

import numpy as np

from transformer_theory.impl import attention as A
from transformer_theory.impl.attention import KVCache
from transformer_theory.impl.positional import rope

from . import Mutant, replacing
from ._build import merge, project


def _decoder(bug: str):
    def decode_step(x_t, params, cache, *, positions=None, rope_base=None):
        """A decode step with one bug (see the catalogue's description)."""
        x_t = np.asarray(x_t)
        t, batch = cache.length, cache.k.shape[:-3]
        pos = np.full(batch, t) if positions is None else np.broadcast_to(positions, batch)
        start = t - pos                                                   # (B,) first real slot
        q_pos = pos
        if bug == "offset_from_padded_start":
            q_pos = np.full(batch, t)                 # the query at its slot, padding counted
        if bug == "offset_plus_one":
            q_pos = pos + 1                           # the query one position ahead of its key
        real = start <= t
        x = x_t if bug == "multiplies_by_mask" else np.where(real[..., None, None], x_t, 0)
        q = project(x, params.w_q, params.b_q)                           # (B, H, 1, Dh)
        k_t = project(x, params.w_k, params.b_k)                         # (B, G, 1, Dh)
        if rope_base is not None:
            p = pos[..., None, None].astype(np.float64)
            p_q = q_pos[..., None, None].astype(np.float64)
            q, k_t = rope(q, p_q, base=rope_base), rope(k_t, p, base=rope_base)
        k_all, v_all = np.array(cache.k, copy=True), np.array(cache.v, copy=True)
        k_all[..., t:t + 1, :] = k_t
        v_all[..., t:t + 1, :] = project(x, params.w_v, params.b_v)
        span = cache.k.shape[-2] if bug == "whole_buffer" else t + 1
        r = params.w_q.shape[0] // params.w_k.shape[0]
        k = np.repeat(k_all[..., :span, :], r, axis=-3)                  # (B, H, span, Dh)
        v = np.repeat(v_all[..., :span, :], r, axis=-3)
        keep = (np.arange(span) >= start[..., None]) & (np.arange(span) <= t)   # (B, span)
        keep = keep[..., None, None, :]
        with np.errstate(invalid="ignore"):
            s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])      # (B, H, 1, span)
            s = np.where(keep, s, -np.inf)
            w = np.exp(s - np.max(s, axis=-1, keepdims=True))
            w = w / w.sum(axis=-1, keepdims=True) * keep                 # multiplied, not selected
            y = merge(w @ v, params)
        y = np.where(real[..., None, None], y, 0).astype(x_t.dtype)
        return y, KVCache(k_all, v_all, t + 1)
    return decode_step


MUTANTS = [
    Mutant("decode_rope_offset_plus_one",
           "the decoded query rotated one position ahead of its key (a constant shift of "
           "queries and keys together is invisible: RoPE is relative)",
           ("decoding.prefill_then_decode",), replacing(decode_step=_decoder("offset_plus_one"))),
    Mutant("decode_offset_from_padded_start",
           "the query rotated at its slot in the padded buffer, the keys at positions from "
           "the first real token",
           ("decoding.left_padded_batch",),
           replacing(decode_step=_decoder("offset_from_padded_start"))),
    Mutant("decode_multiplies_by_mask",
           "padding tokens computed and their weights multiplied by a zero mask: 0 * NaN",
           ("decoding.left_padded_batch",), replacing(decode_step=_decoder("multiplies_by_mask"))),
    Mutant("decode_whole_buffer", "attention over the whole preallocated cache, masked by "
                                  "multiplication: unwritten NaN slots leak",
           ("decoding.unfilled_cache_ignored",), replacing(decode_step=_decoder("whole_buffer"))),
]


def _window_cache_keeps(n_extra: int):
    """A rolling cache that drops one key too many (keeps w) or never drops (keeps all)."""
    from transformer_theory.impl import kv_cache as K

    def init(params, batch_shape, max_len, dtype=np.float64, *, window=None):
        if window is None:
            return K.init_kv_cache(params, batch_shape, max_len, dtype)
        if n_extra < 0 and window == 0:
            return K.init_kv_cache(params, batch_shape, max_len, dtype, window=0)
        if n_extra < 0:
            return K.init_kv_cache(params, batch_shape, max_len, dtype, window=window - 1)
        return K.init_kv_cache(params, batch_shape, max_len, dtype)     # the whole sequence
    return init


MUTANTS += [
    Mutant("window_cache_keeps_w", "a window-w cache keeping w keys instead of w + 1",
           ("decoding.window_cache", "heads.kv_cache_size"),
           replacing(init_kv_cache=_window_cache_keeps(-1))),
    Mutant("window_cache_never_drops", "a window cache that keeps every key",
           ("decoding.window_cache", "heads.kv_cache_size"),
           replacing(init_kv_cache=_window_cache_keeps(0))),
]


def softmax_over_first_axis(x, axis=-1):
    """A softmax that normalises over axis 0 whatever ``axis`` says."""
    return A.softmax(x, axis=0)


MUTANTS += [
    Mutant("softmax_ignores_axis",
           "softmax accepts axis= but always normalises over the first axis",
           ("decoding.parallel_outputs_independent",),
           lambda ref: ref.replace(softmax=softmax_over_first_axis)),
]
