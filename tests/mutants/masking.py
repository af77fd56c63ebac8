"""Mutants of masking and incremental decoding.

The stand-alone kernels (causal masks, mask polarity, padding, a post-softmax mask,
KV-cache decoders) are also loaded by target (``mutants.masking:causal_off_by_one
--as attention``) and run through ``check``.
"""

from __future__ import annotations

import math

import numpy as np
from ._build import allowed as _allowed
from ._build import attend as _attend
from ._build import merge as _merge
from ._build import project as _proj
from ._build import softmax_rows as _softmax_rows

from transformer_theory.impl import attention as A
from transformer_theory.impl import transformer as T
from transformer_theory.impl.attention import KVCache

from . import Mutant, replacing

_ATTENTION = "attention.*,masking.*"




def _bottom_right_as_top_left(ref):
    def attention(q, k, v, *, causal=False, **kw):
        return A.attention(q, k, v, causal=bool(causal), **kw)
    return ref.replace(attention=attention)








def _encoder_ignores_causal(ref):
    def encoder(x, params, *, mask=None, causal=False):
        return T.encoder(x, params, mask=mask)
    return ref.replace(encoder=encoder)


def _cache_reset_each_step(ref):
    def incremental(src, tgt, params):
        tgt = np.asarray(tgt)
        steps = [T.seq2seq_logits(src, tgt[:, t:t + 1], params) for t in range(tgt.shape[1])]
        return np.concatenate(steps, axis=1)
    return ref.replace(seq2seq_logits_incremental=incremental)



# --------------------------------------------------------------------------
# stand-alone broken kernels (also loaded by target)
# --------------------------------------------------------------------------

def causal_off_by_one(q, k, v, *, mask=None, causal=False, scale=None):
    """torch.triu(..., diagonal=1) vs diagonal=2: position i also sees i + 1."""
    q, k = np.asarray(q), np.asarray(k)
    s = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    return _attend(q, k, v, _allowed(q, k, mask, causal, shift=1), s)


def causal_transposed(q, k, v, *, mask=None, causal=False, scale=None):
    """An upper-triangular causal mask: each position sees the future, not the past."""
    q, k = np.asarray(q), np.asarray(k)
    lq, lk = q.shape[-2], k.shape[-2]
    allowed = np.ones(q.shape[:-2] + (lq, lk), dtype=bool)
    if mask is not None:
        allowed &= np.broadcast_to(mask, allowed.shape)
    if causal:
        allowed &= np.triu(np.ones((lq, lk), dtype=bool))
    s = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    return _attend(q, k, v, allowed, s)


def causal_always_bottom_right(q, k, v, *, mask=None, causal=False, scale=None):
    """causal=True aligned bottom-right (a FlashAttention habit) where the contract says top-left."""
    q, k = np.asarray(q), np.asarray(k)
    s = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    return _attend(q, k, v, _allowed(q, k, mask, "bottom-right" if causal else False), s)


def mask_polarity_inverted(q, k, v, *, mask=None, causal=False, scale=None):
    """A boolean mask read as True = masked out (nn.MultiheadAttention's polarity)."""
    q, k = np.asarray(q), np.asarray(k)
    s = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    inverted = None if mask is None else ~np.asarray(mask)
    return _attend(q, k, v, _allowed(q, k, inverted, causal), s)


def padding_on_values_only(q, k, v, *, mask=None, causal=False, scale=None):
    """Padding applied by zeroing the padded values; their keys still take softmax weight."""
    q, k, v = (np.asarray(a) for a in (q, k, v))
    s = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    if mask is not None:
        keep = np.broadcast_to(mask, q.shape[:-2] + (q.shape[-2], k.shape[-2]))
        v = v * keep.any(axis=-2)[..., None]                      # zero padded values only
    return _attend(q, k, v, _allowed(q, k, None, causal), s)


def _unrenormalized_weights(q, k, *, mask=None, causal=False, scale=None):
    q, k = np.asarray(q), np.asarray(k)
    s = (1.0 / np.sqrt(q.shape[-1]) if scale is None else scale) * (q @ np.swapaxes(k, -1, -2))
    p = _softmax_rows(np.where(_allowed(q, k, None, causal), s, -np.inf))
    if mask is not None:
        p = p * np.broadcast_to(mask, p.shape)                     # masked after the softmax
    return p.astype(q.dtype)


def _unrenormalized_attention(q, k, v, *, mask=None, causal=False, scale=None):
    return (_unrenormalized_weights(q, k, mask=mask, causal=causal, scale=scale)
            @ np.asarray(v)).astype(np.asarray(q).dtype)


def _window_band(lq, lk, window, offset, widen_left=0):
    """A hand-written band i - left <= j - offset <= i + right (Lq, Lk); None sides unbounded."""
    left, right = window
    d = np.arange(lk)[None, :] - offset - np.arange(lq)[:, None]
    band = np.ones((lq, lk), dtype=bool)
    if left is not None:
        band &= d >= -(left + widen_left)
    if right is not None:
        band &= d <= right
    return band


def _windowed(bug: str):
    def attention(q, k, v, *, mask=None, causal=False, scale=None, window=None):
        """A window kernel with one bug (see the catalogue's description)."""
        q, k = np.asarray(q), np.asarray(k)
        s = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
        allowed = _allowed(q, k, mask, causal)
        if window is not None and bug != "ignored":
            if isinstance(window, int):
                raise TypeError("window: expected a (left, right) pair")
            lq, lk = q.shape[-2], k.shape[-2]
            offset = lk - lq if causal == "bottom-right" and bug != "top_left" else 0
            allowed = allowed & _window_band(lq, lk, window, offset,
                                             widen_left=1 if bug == "off_by_one" else 0)
        return _attend(q, k, v, allowed, s)
    return attention


#: |i - j| <= left where |i - j| < w was meant: the left edge one key too far back.
window_off_by_one = _windowed("off_by_one")
#: The window always aligned top-left, also under causal="bottom-right".
window_always_top_left = _windowed("top_left")
#: window= accepted and ignored.
window_ignored = _windowed("ignored")


#: A mapping of contract names to callables is a subject too (module:object).
post_softmax_mask = {
    "attention": _unrenormalized_attention,
    "attention_weights": _unrenormalized_weights,
}


def _decode(x_t, params, cache, *, keep_newest: bool, write_at):
    x_t = np.asarray(x_t)
    t = cache.length
    dtype = np.result_type(x_t, cache.k)
    k_all, v_all = cache.k.astype(dtype, copy=True), cache.v.astype(dtype, copy=True)
    pos = write_at(t)
    k_all[..., pos:pos + 1, :] = _proj(x_t, params.w_k, params.b_k)
    v_all[..., pos:pos + 1, :] = _proj(x_t, params.w_v, params.b_v)
    q = _proj(x_t, params.w_q, params.b_q)                        # (..., H, 1, Dh)
    r = params.n_heads // params.n_kv_heads
    upto = t + 1 if keep_newest else t
    k = np.repeat(k_all[..., :upto, :], r, axis=-3)
    v = np.repeat(v_all[..., :upto, :], r, axis=-3)
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(params.d_head)
    o = _softmax_rows(s) @ v                                      # (..., H, 1, Dv)
    return _merge(o, params), KVCache(k_all, v_all, t + 1)


def decode_drops_newest_key(x_t, params, cache):
    """The new token's key and value are written to the cache but attention reads cache[:t]."""
    return _decode(x_t, params, cache, keep_newest=False, write_at=lambda t: t)


def decode_writes_one_ahead(x_t, params, cache):
    """The new key is written at position t + 1 (length counted after the write)."""
    return _decode(x_t, params, cache, keep_newest=True,
                   write_at=lambda t: min(t + 1, cache.max_len - 1))

def _packed(bug: str):
    """The reference attention with the document mask of a packed batch built wrongly."""
    def attention(q, k, v, *, mask=None, causal=False, segment_ids=None, **kw):
        if segment_ids is None:
            return A.attention(q, k, v, mask=mask, causal=causal, **kw)
        seg = np.asarray(segment_ids)
        if bug == "ignored":
            return A.attention(q, k, v, mask=mask, causal=causal, **kw)
        # "off_by_one": each key is read as belonging to the next token's document, so the
        # last token of a document is seen by the next one and not by its own
        shifted = np.concatenate([seg[..., 1:], seg[..., -1:]], axis=-1)
        same = seg[..., :, None] == shifted[..., None, :]                     # (..., L, L)
        both = same if mask is None else same & np.asarray(mask, dtype=bool)
        return A.attention(q, k, v, mask=both, causal=causal, **kw)
    return attention


_WINDOW_CLAIMS = ("masking.window_equals_band_mask", "masking.window_key_count")

MUTANTS = [
    Mutant("window_off_by_one", "a window one key too wide on the left (i - left - 1 <= j)",
           _WINDOW_CLAIMS + ("masking.window_locality", "masking.window_receptive_field"),
           replacing(attention=window_off_by_one),
           "mutants.masking:window_off_by_one", "attention", "masking.window*"),
    Mutant("window_always_top_left", "the window aligned top-left under causal='bottom-right'",
           _WINDOW_CLAIMS, replacing(attention=window_always_top_left),
           "mutants.masking:window_always_top_left", "attention", "masking.window*"),
    Mutant("window_ignored", "window= accepted and ignored: every key attended",
           _WINDOW_CLAIMS + ("masking.window_locality", "masking.window_receptive_field"),
           replacing(attention=window_ignored),
           "mutants.masking:window_ignored", "attention", "masking.window*"),
    Mutant("packed_segments_ignored", "segment_ids accepted and ignored: documents see each other",
           ("masking.packed_documents_separate", "masking.packed_no_cross_document"),
           replacing(attention=_packed("ignored"))),
    Mutant("packed_boundary_off_by_one", "document boundaries shifted by one token",
           ("masking.packed_documents_separate", "masking.packed_no_cross_document"),
           replacing(attention=_packed("off_by_one"))),
    Mutant("causal_off_by_one", "an off-by-one causal mask: position i sees i + 1",
           ("masking.causal_future_invariance", "masking.causal_alignment"),
           replacing(attention=causal_off_by_one),
           "mutants.masking:causal_off_by_one", "attention", "masking.*"),
    Mutant("causal_transposed", "an upper-triangular causal mask (sees the future)",
           ("masking.causal_future_invariance", "masking.causal_alignment"),
           replacing(attention=causal_transposed),
           "mutants.masking:causal_transposed", "attention", "masking.*"),
    Mutant("causal_always_bottom_right", "causal=True aligned bottom-right where top-left is meant",
           ("masking.causal_future_invariance", "masking.causal_alignment"),
           replacing(attention=causal_always_bottom_right),
           "mutants.masking:causal_always_bottom_right", "attention", "masking.*"),
    Mutant("mask_polarity_inverted", "boolean mask read as True = masked out",
           ("masking.masked_keys_ignored", "attention.fully_masked_row_zero",
            "online_softmax.factorized_paths"),
           replacing(attention=mask_polarity_inverted),
           "mutants.masking:mask_polarity_inverted", "attention", _ATTENTION),
    Mutant("padding_on_values_only", "padding applied to the values only, not to the scores",
           ("masking.masked_keys_ignored",), replacing(attention=padding_on_values_only),
           "mutants.masking:padding_on_values_only", "attention", _ATTENTION),
    Mutant("post_softmax_mask", "an unrenormalised mask applied after the softmax",
           ("masking.post_softmax_renormalized", "masking.post_softmax_unrenormalized",
            "online_softmax.factorized_paths"),
           replacing(**post_softmax_mask),
           "mutants.masking:post_softmax_mask", None, _ATTENTION),
    Mutant("decode_drops_newest_key", "a decoder whose KV cache drops the newest key",
           ("masking.kv_cache_equals_full",), replacing(decode_step=decode_drops_newest_key),
           "mutants.masking:decode_drops_newest_key", "decode_step", "masking.*"),
    Mutant("decode_writes_one_ahead", "a KV cache written one position ahead",
           ("masking.kv_cache_equals_full",), replacing(decode_step=decode_writes_one_ahead),
           "mutants.masking:decode_writes_one_ahead", "decode_step", "masking.*"),
    Mutant("bottom_right_as_top_left", "causal='bottom-right' silently treated as top-left",
           ("masking.causal_alignment",), _bottom_right_as_top_left),
    Mutant("encoder_ignores_causal", "the causal flag is not passed down to the attention layers",
           ("masking.causal_prefix_consistency",), _encoder_ignores_causal),
    Mutant("decoder_cache_reset", "incremental decoding forgets previous target tokens",
           ("masking.teacher_forcing_equals_incremental",), _cache_reset_each_step),
]
