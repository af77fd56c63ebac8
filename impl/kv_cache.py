"""KV cache and incremental (causal) decoding.

Autoregressive decoding computes one position at a time. The keys and values
of the positions already decoded do not change, so they are kept in a cache
``(..., G, Lmax, D)`` (``G`` kv heads: grouped-query attention shrinks the
cache by ``H / G``), and each step projects only the new token, writes its key
and value, and attends with one query over the cached prefix -- the
bottom-right causal alignment of :mod:`.sdpa`. Step ``t`` equals row ``t`` of
the causal full forward pass of :mod:`.heads`.

The cache type (``KVCache``) and the checks of a decoding step are those of
:mod:`.contract`.

References
----------
Pope et al. 2023, Efficiently Scaling Transformer Inference, §2 (the KV
cache), §3.3 (its memory); Vaswani et al. 2017, Attention Is All You Need,
§3.2.3 (masked decoder self-attention); Ainslie et al. 2023, GQA, §1; seed 004
(shared/seeds/004_d5b314f5ea1e15da.txt, note 24: teacher forcing computes all
positions at once; decoding does one at a time).
"""

from __future__ import annotations

import math

import numpy as np

from .contract.precision import accepts_half, computes_in_float32
from .contract.params import (KVCache, check_attended_slots_finite, check_attention_params,
                              check_decode_args, check_decode_positions,
                              check_real_tokens_finite)
from .contract.validate import (
    as_float_array,
    check_float_dtype,
    check_positive_int,
    common_float_dtype,
)
from .heads import check_rope_base, grouped_attend, merge_heads, project_heads
from .positional import rope

__all__ = [
    "init_kv_cache",
    "decode_step",
    "decode_sequence",
    "kv_cache_bytes",
]


def _batch_shape(batch_shape) -> tuple:
    if isinstance(batch_shape, (int, np.integer)) and not isinstance(batch_shape, (bool, np.bool_)):
        batch_shape = (batch_shape,)
    if not isinstance(batch_shape, (tuple, list)):
        raise TypeError(
            f"batch_shape: expected a tuple of ints, got {type(batch_shape).__name__}")
    return tuple(check_positive_int(b, "batch_shape", minimum=0) for b in batch_shape)


@accepts_half
def init_kv_cache(params, batch_shape, max_len: int, dtype=np.float64, *,
                  window: int | None = None) -> KVCache:
    """An empty KV cache for ``params`` (multi-head or grouped-query).

    Parameters
    ----------
    params : MultiHeadParams or GroupedQueryParams
        ``G`` is ``n_heads`` for multi-head and ``n_kv_heads`` for grouped-query.
    batch_shape : tuple of int (or int)
        Leading dims of the inputs that will be decoded.
    max_len : int
        Capacity in positions (>= 1).
    dtype : float32 or float64
    window : int, optional
        Sliding-window cache for attention with the window ``(window, 0)``:
        only the last ``window + 1`` keys and values are kept, so it holds
        ``min(max_len, window + 1)`` slots however long the decoding runs
        (``max_len`` then bounds only the memory, not the length).

    Returns
    -------
    KVCache
        Zero arrays ``k (*batch_shape, G, slots, Dh)``,
        ``v (*batch_shape, G, slots, Dv)``, ``length = 0``.

    References
    ----------
    Pope et al. 2023, Efficiently Scaling Transformer Inference, §2; Mistral AI
    2023, mistral-src README (the rolling buffer cache of sliding window
    attention).
    """
    check_attention_params(params)
    batch = _batch_shape(batch_shape)
    max_len = check_positive_int(max_len, "max_len")
    dt = check_float_dtype(dtype)
    if window is not None:
        window = check_positive_int(window, "window", minimum=0)
        max_len = min(max_len, window + 1)
    g = params.n_kv_heads
    k = np.zeros(batch + (g, max_len, params.d_head), dtype=dt)    # (..., G, Lmax, Dh)
    v = np.zeros(batch + (g, max_len, params.d_value), dtype=dt)   # (..., G, Lmax, Dv)
    return KVCache(k, v, 0, window)


@computes_in_float32
def decode_step(x_t, params, cache: KVCache, *, positions=None, rope_base=None):
    """One step of incremental (causal) self-attention decoding with a KV cache.

    Projects the new token, writes its key and value at slot ``t =
    cache.length`` and attends over slots ``[start, t]``. Without padding
    (``start = 0``) the result equals row ``t`` of the causal full forward
    pass; with one query against ``t + 1`` keys this is the bottom-right
    causal alignment. The input cache is not modified: a new cache is returned.

    Left-padded batches: ``positions`` gives, per sequence, the position of
    this token counted from the sequence's first real token, so that slots
    before ``start = t - positions`` hold its left padding. Padding slots are
    never attended and may hold anything (NaN included, the NaN-poisoning rule
    of the contract); a padding token (negative position) may be non-finite
    and gets a zero output row. Decoding a left-padded batch then equals
    decoding each sequence alone.

    Parameters
    ----------
    x_t : array_like, (..., 1, E)
        The new token's input; leading dims equal to the cache's batch shape.
        Finite unless it is a padding token.
    params : MultiHeadParams or GroupedQueryParams
        Self-attention weights (``d_kv == d_model``).
    cache : KVCache
        From :func:`init_kv_cache` or a previous step; must not be full.
    positions : array_like of int, optional
        Broadcastable to the batch shape; at most ``cache.length``. Default:
        ``cache.length`` for every sequence (no padding).
    rope_base : float, optional
        Rotary embedding (RoFormer, interleaved pairs) of queries and keys at
        their positions; the cache holds rotated keys. Equal to
        ``multi_head_attention(..., causal=True, rope_base=rope_base)`` row
        by row. None for none.

    Returns
    -------
    y_t : np.ndarray, (..., 1, E)
    new_cache : KVCache
        ``length`` increased by one. Its arrays have the output dtype.

    Raises
    ------
    ValueError
        A non-finite real token, or ``positions`` past the cache length.

    References
    ----------
    Vaswani et al. 2017, Attention Is All You Need, §3.2.3 (masked decoder
    self-attention); Pope et al. 2023, Efficiently Scaling Transformer
    Inference, §2; Su et al. 2021, RoFormer, §3.4.2 (the rotation applied at
    each position); seed 004 (shared/seeds/004_d5b314f5ea1e15da.txt, note 24:
    teacher forcing computes all positions at once; decoding does one at a time).
    """
    x_t = check_decode_args(x_t, params, cache, finite=False, windowed=True)
    start = check_decode_positions(positions, cache)                # (...,) first real position
    t = cache.length
    real = start <= t                                                # (...,) not a padding token
    check_real_tokens_finite(x_t, real)
    rope_base = check_rope_base(rope_base, 1, 1, params.d_head)
    x_t = np.where(real[..., None, None], x_t, 0)                    # (..., 1, E) padding -> 0
    dtype = common_float_dtype(x_t, cache.k, cache.v, *params.arrays())
    w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o = params.cast(dtype)
    x_t = x_t.astype(dtype, copy=False)
    q = project_heads(x_t, w_q, b_q)                         # (..., H, 1, Dh)
    k_t = project_heads(x_t, w_k, b_k)                       # (..., G, 1, Dh)
    if rope_base is not None:
        pos = (t - start)[..., None, None]                   # (..., 1, 1) this token's position
        q, k_t = rope(q, pos, base=rope_base), rope(k_t, pos, base=rope_base)
    kept, full, allowed = attended_slots(cache, start)      # allowed: (..., n)
    n = kept + 1                                             # slots attended: positions t-kept .. t
    k_all = cache.k.astype(dtype, copy=True)                 # (..., G, Lmax, Dh)
    v_all = cache.v.astype(dtype, copy=True)                 # (..., G, Lmax, Dv)
    if full:
        k_all = np.roll(k_all, -1, axis=-2)
        v_all = np.roll(v_all, -1, axis=-2)
    k_all[..., kept:kept + 1, :] = k_t
    v_all[..., kept:kept + 1, :] = project_heads(x_t, w_v, b_v)    # (..., G, 1, Dv)
    keys = np.where(allowed[..., None, :, None], k_all[..., :n, :], 0)    # (..., G, n, Dh)
    values = np.where(allowed[..., None, :, None], v_all[..., :n, :], 0)  # (..., G, n, Dv)
    o = grouped_attend(q, keys, values, allowed[..., None, :],
                       1.0 / math.sqrt(params.d_head), None)  # (..., H, 1, Dv)
    y_t = merge_heads(o, w_o, b_o)                           # (..., 1, E)
    y_t = np.where(real[..., None, None], y_t, 0)            # padding tokens: zero rows
    return y_t, KVCache(k_all, v_all, t + 1, cache.window)


def slot_plan(cache: KVCache, start) -> tuple[int, bool, slice, np.ndarray, np.ndarray]:
    """The cache slots the next decode step attends (not checked: see :func:`attended_slots`).

    Before step ``t = cache.length`` the first ``min(t, max_len)`` slots are filled; a
    full sliding window drops its oldest slot, so the step attends ``kept + 1`` slots,
    positions ``t - kept .. t``, the new token's last.

    Parameters
    ----------
    cache : KVCache
    start : np.ndarray of int, (...,)
        The first real position of each batch member (left padding before it).

    Returns
    -------
    kept : int
        Earlier slots still attended; the new key goes to slot ``kept``.
    full : bool
        The window was full: the slots move one to the front, dropping the oldest.
    previous : slice
        The slots of ``cache`` that stay attended.
    index : np.ndarray of int, (kept + 1,)
        The position of each attended slot, the new one last.
    allowed : np.ndarray of bool, (..., kept + 1)
        False at left padding.

    References
    ----------
    Mistral AI 2023, mistral-src README (the rolling buffer cache of sliding window
    attention); Pope et al. 2023, Efficiently Scaling Transformer Inference, §2.
    """
    t = cache.length
    kept = min(t, cache.max_len)                             # slots filled before this step
    full = kept == cache.max_len                             # a full window: drop the oldest
    previous = slice(1, kept) if full else slice(0, kept)    # the earlier slots still attended
    kept -= int(full)
    index = t - kept + np.arange(kept + 1)                   # (n,) position of each slot
    allowed = index >= start[..., None]                      # (..., n) not padding
    return kept, full, previous, index, allowed


def attended_slots(cache: KVCache, start) -> tuple[int, bool, np.ndarray]:
    """:func:`slot_plan`, with the attended earlier slots checked finite.

    Parameters
    ----------
    cache : KVCache
    start : np.ndarray of int, (...,)
        The first real position of each batch member.

    Returns
    -------
    kept : int
    full : bool
    allowed : np.ndarray of bool, (..., kept + 1)
        As :func:`slot_plan`.

    Raises
    ------
    ValueError
        NaN or inf in an earlier slot that is attended (:func:`check_attended_slots_finite`).
    """
    kept, full, previous, index, allowed = slot_plan(cache, start)
    check_attended_slots_finite(cache, previous, index, allowed)
    return kept, full, allowed


def decode_sequence(x, params) -> np.ndarray:
    """Causal self-attention computed token by token with :func:`decode_step`.

    Equals ``multi_head_attention(x, x, params, causal=True)`` (or the
    grouped-query version) up to rounding.

    Parameters
    ----------
    x : array_like, (..., L, E)
    params : MultiHeadParams or GroupedQueryParams

    Returns
    -------
    np.ndarray, (..., L, E)

    References
    ----------
    Pope et al. 2023, Efficiently Scaling Transformer Inference, §2;
    Vaswani et al. 2017, §3.2.3.
    """
    return decode_with(decode_step, x, params)


def decode_with(step, x, params) -> np.ndarray:
    """Decode ``x (..., L, E)`` token by token with ``step`` (a ``decode_step``) from an
    empty :func:`init_kv_cache`: the loop of :func:`decode_sequence`, shared by the fast path."""
    check_attention_params(params)
    x = as_float_array(x, "x", ndim_min=2)
    length = x.shape[-2]
    if length == 0:
        raise ValueError(f"x: expected at least one position, got shape {x.shape}")
    dtype = common_float_dtype(x, *params.arrays())
    cache = init_kv_cache(params, x.shape[:-2], length, dtype=dtype)
    outputs = []
    for t in range(length):       # inherently sequential: one position per step
        y_t, cache = step(x[..., t:t + 1, :], params, cache)          # (..., 1, E)
        outputs.append(y_t)
    return np.concatenate(outputs, axis=-2)                           # (..., L, E)


def kv_cache_bytes(n_layers: int, n_kv_heads: int, d_head: int, seq_len: int, batch: int,
                   dtype=np.float64) -> int:
    """Memory of a KV cache: ``2 * layers * kv_heads * d_head * seq_len * batch * itemsize``.

    The factor 2 counts keys and values (value width taken equal to ``d_head``).
    Grouped-query attention shrinks it by ``H / G`` relative to multi-head.

    Parameters
    ----------
    n_layers, n_kv_heads, d_head, seq_len, batch : int
    dtype : float32 or float64 (or any numpy dtype, for its itemsize)

    Returns
    -------
    int
        Bytes.

    References
    ----------
    Pope et al. 2023, Efficiently Scaling Transformer Inference, §3.3;
    Ainslie et al. 2023, GQA, §1.
    """
    n_layers = check_positive_int(n_layers, "n_layers")
    n_kv_heads = check_positive_int(n_kv_heads, "n_kv_heads")
    d_head = check_positive_int(d_head, "d_head")
    seq_len = check_positive_int(seq_len, "seq_len", minimum=0)
    batch = check_positive_int(batch, "batch")
    try:
        itemsize = np.dtype(dtype).itemsize
    except TypeError:
        raise TypeError(f"dtype: expected a numpy dtype, got {dtype!r}") from None
    return 2 * n_layers * n_kv_heads * d_head * seq_len * batch * itemsize
